"""Step 4: the dermatologist's answer becomes a signed read-only PDF, an Encapsulated PDF in the
case's study, an ORU for the requester and the act's charges, all in one transaction.

`handle` is the HTTP door (its own transaction); `record` runs in the caller's transaction (a
report received over HL7 commits with its ACK). A correction (`correction=True`, OBX-11 C) of
an answered case is a new version with status C: the case becomes AMENDED, the requester gets
the corrected ORU, and nothing is charged again (the act was billed by the final report)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ..dicom.pdf import encapsulate_pdf
from ..dicom.uids import report_series_uid, report_uid
from ..dicom.wrap import to_bytes
from ..domain.model import Practitioner, Report, ResultStatusValues
from ..domain.states import CaseEvent
from ..reports.conducts import conduct as find_conduct
from ..reports.pdf import render_report_pdf, report_digest
from ..store import audit, cases, outbox
from ..store.clock import iso
from ..store.schema import images, reports
from . import post_charges, send_report
from .bootstrap import Services
from .common import dicom_dt, write_durably


@dataclass(frozen=True)
class RecordedReport:
    accession: str
    version: int
    status: str
    digest: str
    oru_control_id: str | None
    dft_control_id: str | None


def handle(services: Services, accession: str, *, text: str, conduct: str,
           specialist: Practitioner, actor: str) -> RecordedReport:
    with services.engine.begin() as conn:
        return record(conn, services, accession, text=text, conduct=conduct,
                      specialist=specialist, actor=actor)


def record(conn: Connection, services: Services, accession: str, *, text: str, conduct: str,
           specialist: Practitioner, actor: str, correction: bool = False) -> RecordedReport:
    """Record a final report (or, with `correction`, a corrected one) in `conn`'s transaction."""
    conduct_entry = find_conduct(services.mappings.conducts, conduct)
    lang = services.config.report_language
    conduct_label = getattr(conduct_entry, lang)
    moment = services.now()
    now, signed_at = iso(moment), dicom_dt(moment)
    report = Report(text=text, conduct=conduct, specialist=specialist, signed_at=signed_at,
                    status=ResultStatusValues.CORRECTED if correction
                    else ResultStatusValues.FINAL)
    case = cases.load(conn, accession)
    # REPORT_FINAL refuses a second final report or a cancelled case; REPORT_CORRECTED
    # takes an answered (or already amended) case only.
    case.apply(CaseEvent.REPORT_CORRECTED if correction else CaseEvent.REPORT_FINAL)
    version = conn.execute(select(func.count()).select_from(reports).where(
        reports.c.accession == accession)).scalar() + 1
    image_rows = conn.execute(select(images.c.sop_class_uid, images.c.sop_uid).where(
        images.c.accession == accession)).all()
    digest = report_digest(accession=accession, report=report)
    pdf = render_report_pdf(order=case.order, accession=accession, report=report,
                            conduct_label=conduct_label, labels=services.mappings.labels,
                            lang=lang, images=len(image_rows),
                            now_text=moment.astimezone().strftime("%d/%m/%Y %H:%M"))
    sop_uid = report_uid(case.study_uid, version)
    ds = encapsulate_pdf(
        pdf, patient=case.order.patient, study_uid=case.study_uid, accession=accession,
        series_uid=report_series_uid(case.study_uid), sop_uid=sop_uid,
        instance_number=version, title=services.mappings.labels[lang]["title"],
        content_datetime=signed_at, referring=case.order.requester.name,
        source_images=[(r.sop_class_uid, r.sop_uid) for r in image_rows])
    path = services.config.data_dir / "reports" / accession / f"{sop_uid}.dcm"
    write_durably(path, to_bytes(ds))
    conn.execute(reports.insert().values(
        accession=accession, version=version, status=report.status, text=text,
        conduct=conduct, specialist_id=specialist.id,
        specialist_family=specialist.name.family, specialist_given=specialist.name.given,
        signed_at=signed_at, digest=digest, sop_uid=sop_uid, pdf=pdf))
    cases.save_status(conn, case, now)
    outbox.enqueue(conn, kind="archive.store", destination="archive", key=f"archive:{sop_uid}",
                   payload=str(path).encode(), accession=accession, now=now)
    oru = send_report.handle(conn, services, case, report, version=version,
                             conduct_label=conduct_label, pdf=pdf, hl7_now=signed_at, now=now)
    dft = None if correction else post_charges.handle(
        conn, services, case, specialist, act_date=signed_at[:8], hl7_now=signed_at, now=now)
    audit.append(conn, at=now, actor=actor,
                 action="report.corrected" if correction else "report.final",
                 accession=accession,
                 detail={"version": version, "digest": digest, "conduct": conduct,
                         "oru": oru, "dft": dft})
    return RecordedReport(accession, version, case.status.value, digest, oru, dft)
