"""Step 5: the report goes back to the requester's EHR as ORU^R01, through the outbox."""

from __future__ import annotations

import json

from sqlalchemy.engine import Connection

from ..domain.model import Case, Report
from ..archive.client import viewer_url
from ..hl7.oru import build_oru
from ..store import outbox
from .bootstrap import Services


def enqueue_hl7(conn: Connection, *, destination: str, control_id: str, message: str,
                accession: str, now: str) -> bool:
    """Queue one outbound HL7 message; the key makes a replay of the same step a no-op."""
    payload = json.dumps({"control_id": control_id, "message": message}).encode("utf-8")
    return outbox.enqueue(conn, kind="hl7.send", destination=destination,
                          key=f"hl7:{destination}:{control_id}", payload=payload,
                          accession=accession, now=now)


def handle(conn: Connection, services: Services, case: Case, report: Report, *, version: int,
           conduct_label: str, pdf: bytes, hl7_now: str, now: str,
           control_id: str = "") -> str | None:
    """Queue the ORU for the requester; returns its MSH-10, or None when no requester is set.
    The MSH-10 is `ORU<accession>V<version>` unless `control_id` is given (a withdrawal)."""
    dest = services.config.destination("requester")
    if dest is None:
        return None
    control_id = control_id or f"ORU{case.accession}V{version}"
    message = build_oru(
        control_id=control_id, now=hl7_now, case_accession=case.accession,
        study_uid=case.study_uid, order=case.order, report=report, conduct_label=conduct_label,
        pdf=pdf, viewer_url=viewer_url(services.config.orthanc_url, case.order.patient.id, case.study_uid),
        sending=(services.config.facility_name, services.config.facility_id),
        receiving=tuple(case.order.sender.split("|", 1)) if "|" in case.order.sender
        else (case.order.sender, ""))
    enqueue_hl7(conn, destination=dest.name, control_id=control_id, message=message,
                accession=case.accession, now=now)
    return control_id
