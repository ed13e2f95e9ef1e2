"""Step 7: the specialist withdraws a final answer. In one unit of work: the case goes back to
IN_REVIEW (it waits for an answer again), the requester gets an ORU whose observations are
deleted (OBX-11 D) or an MDM^T04 (document deleted, with the reason), then, when it takes
order status messages, SC/IP (the order is in progress again), and what the act charged is
credited (CD lines, one DFT^P03 / CSV batch).

A case that has no report (a teleconsultation reported as done) has nothing to withdraw: its
act is cancelled by its order (ORC-1 CA, `cancel_order`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.errors import ConnectorError, StateConflict
from ..domain.model import PersonName, Practitioner, Report, ResultStatusValues, reason_text
from ..domain.states import CaseEvent
from ..reports.conducts import conduct as find_conduct
from ..store.uow import UnitOfWork
from . import notify_status, post_charges, send_report
from .commands import WithdrawReport

@dataclass(frozen=True)
class WithdrawnReport:
    accession: str
    status: str
    version: int
    oru_control_id: str | None
    dft_control_id: str | None
    credits: int


def handle(cmd: WithdrawReport, uow: UnitOfWork) -> WithdrawnReport:
    """Withdraw the case's latest report, in the caller's unit of work."""
    accession, now = cmd.accession, uow.moment.iso
    reason = reason_text(cmd.reason, hint="say why the report is withdrawn")
    case = uow.cases.load(accession)
    row = uow.reports.latest(accession)
    if row is None:
        raise StateConflict("this case has no report to withdraw", where="case.status",
                            hint="an act reported without a report is cancelled by its "
                                 "order (ORC-1 CA)")
    case.apply(CaseEvent.REPORT_WITHDRAWN)  # ANSWERED or AMENDED only
    uow.cases.save_status(case, now)
    specialist = Practitioner(row.specialist_id,
                              PersonName(row.specialist_family, row.specialist_given),
                              row.specialist_authority, id_type=row.specialist_id_type)
    withdrawn = Report(text=row.text, conduct=row.conduct, specialist=specialist,
                       signed_at=row.signed_at, status=ResultStatusValues.DELETED)
    oru = send_report.queue(uow, case, withdrawn, version=row.version,
                            conduct_label=_conduct_label(uow, row.conduct), pdf=row.pdf,
                            reason=reason)
    notify_status.in_progress(uow, case, tag=f"W{row.version}")
    before = _credits(uow, accession)
    dft = post_charges.credit_case(uow, case, reason=f"report withdrawn: {reason}")
    credits = _credits(uow, accession) - before
    uow.audit.append(at=now, actor=cmd.actor, action="report.withdrawn", accession=accession,
                     detail={"version": row.version, "reason": reason, "oru": oru, "dft": dft,
                             "credits": credits})
    return WithdrawnReport(accession, case.status.value, row.version, oru, dft, credits)


def _credits(uow: UnitOfWork, accession: str) -> int:
    return sum(1 for r in uow.charges.of_case(accession) if r.type == "CD")


def _conduct_label(uow: UnitOfWork, code: str) -> str:
    """The conduct's label as the report was sent (the code itself if it left the mappings)."""
    try:
        return find_conduct(uow.services.mappings.conducts, code).label(
            uow.services.config.reports.language)
    except ConnectorError:
        return code
