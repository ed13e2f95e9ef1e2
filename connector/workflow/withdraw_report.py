"""Step 7: the specialist withdraws a final answer. In one transaction: the case goes back to
IN_REVIEW (it waits for an answer again), the requester gets an ORU whose observations are
deleted (OBX-11 D) or an MDM^T04 (document deleted, with the reason), then, when it takes
order status messages, SC/IP (the order is in progress again), and what the act charged is
credited (CD lines, one DFT^P03 / CSV batch).

A case that has no report (a teleconsultation reported as done) has nothing to withdraw: its
act is cancelled by its order (ORC-1 CA, `cancel_order`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..domain.errors import ConnectorError, StateConflict
from ..domain.model import PersonName, Practitioner, Report, ResultStatusValues, reason_text
from ..domain.states import CaseEvent
from ..reports.conducts import conduct as find_conduct
from ..store import audit, cases
from ..store import charges as lines
from ..store.clock import iso
from ..store.schema import reports
from . import notify_status, post_charges, send_report
from .bootstrap import Services
from .common import dicom_dt

@dataclass(frozen=True)
class WithdrawnReport:
    accession: str
    status: str
    version: int
    oru_control_id: str | None
    dft_control_id: str | None
    credits: int


def handle(services: Services, accession: str, *, reason: str, actor: str) -> WithdrawnReport:
    reason = reason_text(reason, hint="say why the report is withdrawn")
    moment = services.now()
    now, hl7_now = iso(moment), dicom_dt(moment)
    with services.engine.begin() as conn:
        case = cases.load(conn, accession)
        row = conn.execute(select(reports).where(reports.c.accession == accession)
                           .order_by(reports.c.version.desc())).first()
        if row is None:
            raise StateConflict("this case has no report to withdraw", where="case.status",
                                hint="an act reported without a report is cancelled by its "
                                     "order (ORC-1 CA)")
        case.apply(CaseEvent.REPORT_WITHDRAWN)  # ANSWERED or AMENDED only
        cases.save_status(conn, case, now)
        specialist = Practitioner(row.specialist_id,
                                  PersonName(row.specialist_family, row.specialist_given))
        withdrawn = Report(text=row.text, conduct=row.conduct, specialist=specialist,
                           signed_at=row.signed_at, status=ResultStatusValues.DELETED)
        oru = send_report.handle(conn, services, case, withdrawn, version=row.version,
                                 conduct_label=_conduct_label(services, row.conduct),
                                 pdf=row.pdf, hl7_now=hl7_now, now=now, reason=reason)
        notify_status.in_progress(conn, services, case, now=now, tag=f"W{row.version}")
        before = _credits(conn, accession)
        dft = post_charges.credit_case(conn, services, case, reason=f"report withdrawn: {reason}",
                                       hl7_now=hl7_now, now=now)
        credits = _credits(conn, accession) - before
        audit.append(conn, at=now, actor=actor, action="report.withdrawn", accession=accession,
                     detail={"version": row.version, "reason": reason, "oru": oru, "dft": dft,
                             "credits": credits})
    return WithdrawnReport(accession, case.status.value, row.version, oru, dft, credits)


def _credits(conn, accession: str) -> int:
    return sum(1 for r in lines.of_case(conn, accession) if r.type == "CD")


def _conduct_label(services: Services, code: str) -> str:
    """The conduct's label as the report was sent (the code itself if it left the mappings)."""
    try:
        return find_conduct(services.mappings.conducts, code).label(
            services.config.report_language)
    except ConnectorError:
        return code
