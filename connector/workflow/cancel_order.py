"""Step 8: the requester cancels an order (ORC-1 CA). The case is CANCELLED; when its act was
already charged (an answered tele-expertise, a teleconsultation reported as done), what was
charged is credited (CD lines, one DFT^P03 / CSV batch) in the same transaction, and the case
leaves the care network (pending timers cancelled, ORC-1 CA to its pool's specialist side,
`assign_case.withdraw`).

The order is named by the placer's number (ORC-2, scoped by the sender), by our accession
(ORC-3, as our status messages gave it), or both: then both must name the same case. A cancel
comes from the system that placed the order: an accession of another sender's case is unknown.

A CA for a case already cancelled changes nothing (a resent cancel is not an error); a CA for
a closed or rejected case is a state conflict; a CA naming no known order is refused.
"""

from __future__ import annotations

from ..domain.errors import NotFound
from ..domain.model import Case
from ..domain.states import CaseEvent, CaseStatus
from ..store.uow import UnitOfWork
from . import assign_case, notify_status, post_charges
from .commands import CancelOrder

REASON = "act cancelled by the requester (ORC-1 CA)"


def handle(cmd: CancelOrder, uow: UnitOfWork) -> Case:
    now = uow.moment.iso
    case = _named_case(cmd, uow)
    accession = case.accession
    if case.status is CaseStatus.CANCELLED:
        return case
    case.apply(CaseEvent.CANCEL)
    uow.cases.save_status(case, now)
    dft = post_charges.credit_case(uow, case, reason=REASON)
    withdrawn = assign_case.withdraw(uow, case)
    uow.audit.append(at=now, actor=cmd.actor, action="case.cancelled", accession=accession,
                     detail={"dft": dft, "specialist": withdrawn})
    notify_status.cancelled_as_requested(uow, case)  # ORC-1 CR
    return case


def _named_case(cmd: CancelOrder, uow: UnitOfWork) -> Case:
    if not cmd.accession:
        accession = uow.cases.find_by_placer(cmd.sender, cmd.placer_order_number)
        if accession is None:
            raise NotFound("no case has this placer order number", code="unknown-order",
                           where="placer_order_number",
                           hint="cancel with the placer order number of the original order")
        return uow.cases.load(accession)
    case = uow.cases.load(cmd.accession) if uow.cases.exists(cmd.accession) else None
    if case is None or case.order.sender != cmd.sender:
        raise NotFound("no case of this sender has this filler order number",
                       code="unknown-filler-order", where="accession",
                       hint="send the accession our status messages returned in ORC-3, or "
                            "only the placer order number")
    if cmd.placer_order_number and cmd.placer_order_number != case.order.placer_order_number:
        raise NotFound("the placer and filler order numbers name different orders",
                       code="unknown-filler-order", where="accession",
                       hint="send the numbers of one order, or only one of them")
    return case
