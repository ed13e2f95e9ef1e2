"""Step 5: the report goes back to the requester's EHR, through the outbox, to every requester
destination, in the form each one takes (`[[destinations]] report_message`):

- `ORU^R01` (default): OBX-11 F (final), C (corrected), D (withdrawn); MSH-10
  `ORU<accession>V<version>`, or `ORU<accession>W<version>` for a withdrawal.
- `MDM^T02`: MDM^T02 (final), MDM^T10 (corrected, replacing the previous version), MDM^T04
  (withdrawn, with the reason); MSH-10 `MDM<accession>V<version>` / `MDM<accession>W<version>`.
  TXA-12 is the report version's document UID (`dicom.uids.report_uid`), the SOP Instance UID of its
  Encapsulated PDF in the archive.

The signed PDF goes as each destination takes it (`report_pdf`): embedded (OBX ED), by
reference (OBX RP: `GET /api/cases/<accession>/report.pdf?version=<n>` under `[http]
public_url`, fetched with the requester's token) or not at all. A PDF too large for one v2.5
field embedded goes by reference instead, which the log and the case's audit trail say.

After a final report the requesters that take order status messages also get `SC`/`CM`
(`notify_status.completed`), queued after the report.
"""

from __future__ import annotations

import logging

from ..archive.client import viewer_url
from ..dicom.uids import report_uid
from ..domain.model import Case, Report
from ..hl7.mdm import build_mdm
from ..hl7.oru import MAX_FIELD, build_oru, pdf_fits
from ..store.uow import UnitOfWork
from . import notify_status
from .outbound import enqueue_hl7, requester_of

log = logging.getLogger("connector.reports")


def queue(uow: UnitOfWork, case: Case, report: Report, *, version: int, conduct_label: str,
          pdf: bytes, reason: str = "", follow_up: str = "") -> str | None:
    """Queue the report for each requester destination; returns the MSH-10 sent to the first
    one, or None when no requester is configured. `reason` (a withdrawal's) goes into the MDM
    form (TXA-21); `follow_up` (the urgency of a visit just asked of the scheduling systems)
    into an OBX the requester reads."""
    config = uow.services.config
    dests = config.destinations_for("requester")
    if not dests:
        return None
    mark = "W" if report.status == "D" else "V"
    common = dict(now=uow.moment.hl7, case_accession=case.accession, study_uid=case.study_uid,
                  order=case.order, report=report, conduct_label=conduct_label,
                  viewer_url=viewer_url(config.orthanc.url, case.order.patient.id,
                                        case.study_uid),
                  sending=(config.facility.name, config.facility.id),
                  receiving=requester_of(case), follow_up=follow_up)
    first = None
    for dest in dests:
        common["pdf_url"] = _pdf_url(uow, case, dest, version=version, pdf=pdf)
        common["pdf"] = pdf if dest.report_pdf == "embedded" else b""
        if dest.report_message == "MDM^T02":
            control_id = f"MDM{case.accession}{mark}{version}"
            message = build_mdm(
                control_id=control_id, document_id=report_uid(case.study_uid, version),
                parent_document_id=report_uid(case.study_uid, version - 1)
                if report.status == "C" else "",
                change_reason=reason, namespace=config.facility.name, **common)
        else:
            control_id = f"ORU{case.accession}{mark}{version}"
            message = build_oru(control_id=control_id, **common)
        enqueue_hl7(uow, destination=dest.name, control_id=control_id, message=message,
                    accession=case.accession)
        first = first or control_id
    if report.status == "F":
        notify_status.completed(uow, case, tag=f"V{version}")
    return first


def pdf_path(accession: str, version: int) -> str:
    """The API path where a report version's signed PDF is fetched."""
    return f"/api/cases/{accession}/report.pdf?version={version}"


def _pdf_url(uow: UnitOfWork, case: Case, dest, *, version: int, pdf: bytes) -> str:
    """The URL the destination's report message points to for the PDF, or "" when it is
    embedded or left out; an embedded one too large for one field goes by reference."""
    if dest.report_pdf == "none" or (dest.report_pdf == "embedded" and pdf_fits(pdf)):
        return ""
    if dest.report_pdf == "embedded":
        log.warning("report %s version %s to %s: PDF of %s bytes exceeds %s characters "
                    "embedded, sent by reference", case.accession, version, dest.name,
                    len(pdf), MAX_FIELD)
        uow.audit.append(at=uow.moment.iso, actor="connector", action="report.pdf_by_reference",
                         accession=case.accession,
                         detail={"version": version, "destination": dest.name,
                                 "bytes": len(pdf), "limit": MAX_FIELD})
    return uow.services.config.http.base_url + pdf_path(case.accession, version)
