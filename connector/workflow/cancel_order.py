"""Step 8: the requester cancels an order (ORC-1 CA). The case is CANCELLED; when its act was
already charged (an answered tele-expertise, a teleconsultation reported as done), what was
charged is credited (CD lines, one DFT^P03 / CSV batch) in the same transaction.

A CA for a case already cancelled changes nothing (a resent cancel is not an error); a CA for
a closed or rejected case is a state conflict; a CA naming no known order is refused.
"""

from __future__ import annotations

from ..domain.errors import NotFound
from ..domain.model import Case
from ..domain.states import CaseEvent, CaseStatus
from ..store.uow import UnitOfWork
from . import notify_status, post_charges
from .commands import CancelOrder

REASON = "act cancelled by the requester (ORC-1 CA)"


def handle(cmd: CancelOrder, uow: UnitOfWork) -> Case:
    order, now = cmd.order, uow.moment.iso
    accession = uow.cases.find_by_placer(order.sender, order.placer_order_number)
    if accession is None:
        raise NotFound("no case has this placer order number", code="unknown-order",
                       where="placer_order_number",
                       hint="cancel with the placer order number of the original order")
    case = uow.cases.load(accession)
    if case.status is CaseStatus.CANCELLED:
        return case
    case.apply(CaseEvent.CANCEL)
    uow.cases.save_status(case, now)
    dft = post_charges.credit_case(uow, case, reason=REASON)
    uow.audit.append(at=now, actor=cmd.actor, action="case.cancelled", accession=accession,
                     detail={"dft": dft})
    notify_status.cancelled_as_requested(uow, case)  # ORC-1 CR
    return case
