"""The dermatologist's answer arrives from a reporting system (ORU^R01, MDM^T02, MDM^T10) and
takes the report path of `POST /api/cases/{accession}/report` (`record_report.handle`), in the
message's unit of work: PDF, Encapsulated PDF, ORU to the requester and, for a final report,
the act's charges, all committed with the ACK.

- Which case: our accession (OBR-3 ...) else the placer order number (ORC-2 ...); when both
  are given they must name the same case. Unknown -> AE 204 where the number was read.
- Final (OBX-11 F, TXA-17 AU/LA): the case must be answerable (images stable: READY or
  IN_REVIEW; not answered, not cancelled ...), else AE 207 whose ERR text says why. The same report resent under a new MSH-10 (same text,
  conduct and dermatologist as the latest one) changes nothing and is answered AA.
- Correction (OBX-11 C, or MDM^T10): for an answered case, an amended report (version n+1,
  status C, case AMENDED, corrected ORU, nothing charged again); for a case not answered yet it
  is its first report, recorded as final.
"""

from __future__ import annotations

from ..domain.errors import StateConflict
from ..domain.states import CaseStatus
from ..hl7.errors import Hl7Error
from ..hl7.report_in import InboundReport
from ..store.uow import UnitOfWork
from . import record_report
from .commands import ReceiveReport, RecordReport

ANSWERED = frozenset({CaseStatus.ANSWERED, CaseStatus.AMENDED})


def handle(cmd: ReceiveReport, uow: UnitOfWork) -> str:
    """Record the report; returns the case's accession."""
    report, actor = cmd.report, cmd.actor
    accession = _case(uow, report)
    case = uow.cases.load(accession)
    latest = uow.reports.latest(accession)
    if case.status in ANSWERED and latest is not None and _same(latest, report):
        uow.audit.append(at=uow.moment.iso, actor=actor, action="report.resent",
                         accession=accession,
                         detail={"version": latest.version, "outcome": "same as the latest report"})
        return accession
    correction = report.correction and case.status in ANSWERED
    if correction and latest is None:
        raise Hl7Error("this case has no report to correct", hl7_code=207, ack_code="AE",
                       location=report.status_location,
                       hint="a teleconsultation reported as done has no report")
    try:
        record_report.handle(RecordReport(accession, report.text, report.conduct,
                                          report.specialist, actor, correction=correction), uow)
    except StateConflict as err:
        hint = ("send the report again once the case is READY (GET /api/cases/{accession})"
                if err.code == "images-not-stable" else
                "answered cases take a correction (OBX-11 C or MDM^T10); a case takes a report "
                "once its images are stable and it is not cancelled")
        raise Hl7Error(err.text, hl7_code=207, ack_code="AE", location=report.accession_location,
                       hint=hint) from None
    return accession


def _case(uow: UnitOfWork, report: InboundReport) -> str:
    if report.accession:
        if not uow.cases.exists(report.accession):
            raise Hl7Error("no case has this accession number", hl7_code=204,
                           location=report.accession_location,
                           hint="send the accession number (filler order number) we sent")
        placer = uow.cases.placer_of(report.accession)
        if report.placer_order_number and report.placer_order_number != placer:
            raise Hl7Error("the placer order number is not the one of this accession number",
                           hl7_code=204, location=report.placer_location,
                           hint="check which request this report answers")
        return report.accession
    found = uow.cases.find_by_placer_any(report.placer_order_number)
    if report.placer_namespace and len(found) > 1:
        found = [f for f in found if f[1].split("|")[0] == report.placer_namespace] or found
    if not found:
        raise Hl7Error("no case has this placer order number", hl7_code=204,
                       location=report.placer_location,
                       hint="send the accession number (filler order number) we sent")
    if len(found) > 1:
        raise Hl7Error("several requesters use this placer order number", hl7_code=204,
                       location=report.placer_location,
                       hint="send our accession number (filler order number) in OBR-3")
    return found[0][0]


def _same(row, report: InboundReport) -> bool:
    return (row.text == report.text and row.conduct == report.conduct
            and row.specialist_id == report.specialist.id)
