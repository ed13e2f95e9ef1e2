"""Step 2b: we refuse or cancel an order on our side, with a reason, and the requester is told
(ORC-1 OC, reason in ORC-16, when its destination takes order status messages).

- `decline`: the dermatologist declines the request (out of scope, photos unusable, needs a
  consultation...). The case is REJECTED (from OPEN, IMAGES_PENDING, READY or IN_REVIEW);
  nothing was charged yet. ORC-16 `DECLINED^<reason>^L`, ORC-19 the dermatologist.
- `cancel`: an operator cancels the case (duplicate request, wrong patient...). The case is
  CANCELLED (also an answered one: what its act charged is then credited, as for a cancel
  from the requester). ORC-16 `CANCELLED^<reason>^L`.

Either way the case leaves the care network: its pending timers are cancelled and its pool's
specialist side gets ORC-1 CA (`assign_case.withdraw`). The worklist entries of the case are
withdrawn by the worker's sweep (`publish_worklist.retire`).
HTTP: `POST /api/cases/{accession}/decline` (specialist) and `.../cancel` (admin).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.model import Practitioner, reason_text
from ..domain.states import CaseEvent
from ..store.uow import UnitOfWork
from . import assign_case, notify_status, post_charges
from .commands import CancelCase, DeclineCase

@dataclass(frozen=True)
class RefusedOrder:
    accession: str
    status: str
    status_control_id: str | None   # MSH-10 of the OC message, None when nobody takes them
    dft_control_id: str | None      # the credit batch of an answered case, else None


def decline(cmd: DeclineCase, uow: UnitOfWork) -> RefusedOrder:
    """The dermatologist declines the request: REJECTED, OC with the reason."""
    return _refuse(uow, cmd.accession, CaseEvent.REFUSE, notify_status.DECLINED,
                   reason=cmd.reason, actor=cmd.actor, action_by=cmd.specialist,
                   action="case.declined")


def cancel(cmd: CancelCase, uow: UnitOfWork) -> RefusedOrder:
    """An operator cancels the case: CANCELLED (charges credited), OC with the reason."""
    return _refuse(uow, cmd.accession, CaseEvent.CANCEL, notify_status.CANCELLED,
                   reason=cmd.reason, actor=cmd.actor, action_by=None, action="case.cancelled")


def _refuse(uow: UnitOfWork, accession: str, event: CaseEvent, code: str, *, reason: str,
            actor: str, action_by: Practitioner | None, action: str) -> RefusedOrder:
    reason = reason_text(reason, hint="say why the request is refused; the requester reads it")
    now = uow.moment.iso
    case = uow.cases.load(accession)
    case.apply(event)  # StateConflict for a closed, cancelled or rejected case
    uow.cases.save_status(case, now)
    dft = None
    if event is CaseEvent.CANCEL:
        dft = post_charges.credit_case(uow, case, reason=f"case cancelled: {reason}")
    sent = notify_status.refused(uow, case, code=code, text=reason, action_by=action_by)
    withdrawn = assign_case.withdraw(uow, case)
    uow.audit.append(at=now, actor=actor, action=action, accession=accession,
                     detail={"reason": reason, "status": sent, "dft": dft,
                             "specialist": withdrawn})
    return RefusedOrder(accession, case.status.value, sent, dft)
