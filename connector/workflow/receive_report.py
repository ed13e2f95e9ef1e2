"""The dermatologist's answer arrives from a reporting system (ORU^R01, MDM^T02, MDM^T10) and
takes the report path of `POST /api/cases/{accession}/report` (`record_report.record`), in the
message's transaction: PDF, Encapsulated PDF, ORU to the requester and, for a final report,
the act's charges, all committed with the ACK.

- Which case: our accession (OBR-3 ...) else the placer order number (ORC-2 ...); when both
  are given they must name the same case. Unknown -> AE 204 where the number was read.
- Final (OBX-11 F, TXA-17 AU/LA): the case must be answerable (images received, not answered,
  not cancelled ...), else AE 207. The same report resent under a new MSH-10 (same text,
  conduct and dermatologist as the latest one) changes nothing and is answered AA.
- Correction (OBX-11 C, or MDM^T10): for an answered case, an amended report (version n+1,
  status C, case AMENDED, corrected ORU, nothing charged again); for a case not answered yet it
  is its first report, recorded as final.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ..domain.errors import StateConflict
from ..domain.states import CaseStatus
from ..hl7.errors import Hl7Error
from ..hl7.parse import ParsedMessage
from ..hl7.report_in import InboundReport, read_report
from ..store import audit, cases
from ..store.schema import reports
from . import record_report
from ..bootstrap import Services

ANSWERED = frozenset({CaseStatus.ANSWERED, CaseStatus.AMENDED})


def handle(conn: Connection, services: Services, msg: ParsedMessage, *, now: str,
           actor: str) -> str:
    """Record the report; returns the case's accession."""
    report = read_report(msg, conducts=services.mappings.conducts)
    accession = _case(conn, report)
    case = cases.load(conn, accession)
    latest = conn.execute(select(reports).where(reports.c.accession == accession)
                          .order_by(reports.c.version.desc())).first()
    if case.status in ANSWERED and latest is not None and _same(latest, report):
        audit.append(conn, at=now, actor=actor, action="report.resent", accession=accession,
                     detail={"version": latest.version, "outcome": "same as the latest report"})
        return accession
    correction = report.correction and case.status in ANSWERED
    if correction and latest is None:
        raise Hl7Error("this case has no report to correct", hl7_code=207, ack_code="AE",
                       location=report.status_location,
                       hint="a teleconsultation reported as done has no report")
    try:
        record_report.record(conn, services, accession, text=report.text,
                             conduct=report.conduct, specialist=report.specialist, actor=actor,
                             correction=correction)
    except StateConflict as err:
        raise Hl7Error(err.text, hl7_code=207, ack_code="AE", location=report.accession_location,
                       hint="answered cases take a correction (OBX-11 C or MDM^T10); a case "
                            "takes a report once it has images and is not cancelled") from None
    return accession


def _case(conn: Connection, report: InboundReport) -> str:
    if report.accession:
        if not cases.exists(conn, report.accession):
            raise Hl7Error("no case has this accession number", hl7_code=204,
                           location=report.accession_location,
                           hint="send the accession number (filler order number) we sent")
        placer = cases.placer_of(conn, report.accession)
        if report.placer_order_number and report.placer_order_number != placer:
            raise Hl7Error("the placer order number is not the one of this accession number",
                           hl7_code=204, location=report.placer_location,
                           hint="check which request this report answers")
        return report.accession
    found = cases.find_by_placer_any(conn, report.placer_order_number)
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
