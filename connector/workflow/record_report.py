"""Step 4: the dermatologist's answer becomes a PDF signed PAdES with the facility's key
(`Services.signer`; unsigned when none is configured), an Encapsulated PDF in the case's study,
an ORU for the requester and the act's charges, all in one unit of work.

`handle` runs in the caller's unit of work (the API request's, or the HL7 message's, so a
report received over HL7 commits with its ACK). A correction (`RecordReport.correction`,
OBX-11 C) of an answered case is a new version with status C: the case becomes AMENDED, the
requester gets the corrected ORU, its Encapsulated PDF references the one it replaces, and
nothing is charged again (the act was billed by the final report). A conduct that calls for an
in-person visit asks the scheduling systems for it (`request_follow_up`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..dicom.images import preview_jpeg
from ..dicom.pdf import encapsulate_pdf
from ..dicom.uids import report_series_uid, report_uid
from ..dicom.wrap import to_bytes
from ..domain.model import Report, ResultStatusValues
from ..domain.errors import ImageError, StateConflict
from ..domain.states import IMAGES_NOT_STABLE, CaseEvent, CaseStatus
from ..reports.conducts import conduct as find_conduct
from ..reports.pdf import render_report_pdf, report_digest
from ..store.uow import UnitOfWork
from . import post_charges, request_follow_up, send_report, study
from .commands import RecordReport


@dataclass(frozen=True)
class RecordedReport:
    accession: str
    version: int
    status: str
    digest: str
    oru_control_id: str | None
    dft_control_id: str | None


def handle(cmd: RecordReport, uow: UnitOfWork) -> RecordedReport:
    """Record a final report (or, with `cmd.correction`, a corrected one)."""
    services, accession, text, conduct = uow.services, cmd.accession, cmd.text, cmd.conduct
    specialist, correction = cmd.specialist, cmd.correction
    conduct_entry = find_conduct(services.mappings.conducts, conduct)
    lang = services.config.reports.language
    conduct_label = getattr(conduct_entry, lang)
    now, signed_at = uow.moment.iso, uow.moment.hl7
    report = Report(text=text, conduct=conduct, specialist=specialist, signed_at=signed_at,
                    status=ResultStatusValues.CORRECTED if correction
                    else ResultStatusValues.FINAL)
    case = uow.cases.load(accession)
    _check_answerable(case.status, correction)
    replaced = uow.reports.latest(accession) if correction else None
    if correction and replaced is None:
        raise StateConflict("this case has no report to correct", where="case.status",
                            hint="a teleconsultation reported as done has no report")
    # REPORT_FINAL refuses a second final report or a cancelled case; REPORT_CORRECTED
    # takes an answered (or already amended) case only.
    case.apply(CaseEvent.REPORT_CORRECTED if correction else CaseEvent.REPORT_FINAL)
    version = uow.reports.count(accession) + 1
    references = uow.images.references(accession)
    digest = report_digest(accession=accession, report=report)
    pdf = render_report_pdf(order=case.order, accession=accession, report=report,
                            conduct_label=conduct_label, labels=services.mappings.labels,
                            lang=lang, images=len(references),
                            created=uow.moment.local, facility=services.config.facility.name,
                            signed=services.signer is not None,
                            thumbnails=_thumbnails(uow.images.files(accession)))
    if services.signer is not None:
        pdf = services.signer.sign(pdf, reason=services.mappings.labels[lang]["title"])
    sop_uid = report_uid(case.study_uid, version)
    series_uid = report_series_uid(case.study_uid)
    ds = encapsulate_pdf(
        pdf, patient=case.order.patient, **study.of_case(uow, case).attributes(),
        series_uid=series_uid, series_number=uow.counters.series_number(accession, series_uid),
        sop_uid=sop_uid, instance_number=version,
        title=services.mappings.labels[lang]["title"], content_datetime=signed_at,
        source_images=references,
        replaces=replaced.sop_uid if replaced is not None else "")
    path = services.config.data_dir / "reports" / accession / f"{sop_uid}.dcm"
    services.files.write(path, to_bytes(ds))
    uow.reports.insert(
        accession=accession, version=version, status=report.status, text=text,
        conduct=conduct, specialist_id=specialist.id,
        specialist_family=specialist.name.family, specialist_given=specialist.name.given,
        specialist_authority=specialist.authority, specialist_id_type=specialist.id_type,
        signed_at=signed_at, digest=digest, sop_uid=sop_uid, pdf=pdf)
    uow.cases.save_status(case, now)
    uow.outbox.enqueue(kind="archive.store", destination="archive", key=f"archive:{sop_uid}",
                       payload=str(path).encode(), accession=accession, now=now)
    follow_ups = request_follow_up.request(uow, case, report, conduct_entry, version=version)
    oru = send_report.queue(uow, case, report, version=version, conduct_label=conduct_label,
                            pdf=pdf, reason=cmd.reason,
                            follow_up=conduct_entry.follow_up if follow_ups else "")
    dft = None if correction else post_charges.handle(uow, case, specialist,
                                                      act_date=uow.moment.day)
    uow.audit.append(at=now, actor=cmd.actor,
                     action="report.corrected" if correction else "report.final",
                     accession=accession,
                     detail={"version": version, "digest": digest, "conduct": conduct,
                             "oru": oru, "dft": dft, "signed": services.signer is not None,
                             "follow_ups": follow_ups}
                     | ({"reason": cmd.reason} if cmd.reason else {}))
    return RecordedReport(accession, version, case.status.value, digest, oru, dft)


MAX_THUMBNAILS = 6  # one row in the PDF; the image count says how many there are in all


def _thumbnails(paths: list[str]) -> list[bytes]:
    """Small JPEGs of the case's first images from their stored files; a file gone (an
    identity update rewrites them) or unreadable is left out rather than blocking the
    answer."""
    shown = []
    for path in paths:
        if len(shown) == MAX_THUMBNAILS:
            break
        try:
            shown.append(preview_jpeg(path))
        except ImageError:
            continue
    return shown


def _check_answerable(status: CaseStatus, correction: bool) -> None:
    """A report needs the case's images stable, a correction an answer to correct; both said
    in words rather than as a refused transition."""
    if not correction and status in IMAGES_NOT_STABLE:
        raise StateConflict(
            f"the case's images are not stable yet (it is {status.value}): a report is "
            "accepted once the archive holds them all (READY or IN_REVIEW)",
            where="case.status", code="images-not-stable",
            hint="wait until GET /api/cases/{accession} shows READY, then send the report")
    if correction and status not in (CaseStatus.ANSWERED, CaseStatus.AMENDED):
        raise StateConflict(f"this case has no answer to correct (it is {status.value})",
                            where="case.status",
                            hint="send the report first (POST /api/cases/{accession}/report)")
