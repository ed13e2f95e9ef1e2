"""Step 8: the requester cancels an order (ORC-1 CA). The case is CANCELLED; when its act was
already charged (an answered tele-expertise, a teleconsultation reported as done), what was
charged is credited (CD lines, one DFT^P03 / CSV batch) in the same transaction.

A CA for a case already cancelled changes nothing (a resent cancel is not an error); a CA for
a closed or rejected case is a state conflict; a CA naming no known order is refused.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from ..domain.errors import NotFound
from ..domain.model import Case, Order
from ..domain.states import CaseEvent, CaseStatus
from ..store import audit, cases
from . import notify_status, post_charges
from ..bootstrap import Services

REASON = "act cancelled by the requester (ORC-1 CA)"


def handle(conn: Connection, services: Services, order: Order, *, hl7_now: str, now: str,
           actor: str) -> Case:
    accession = cases.find_by_placer(conn, order.sender, order.placer_order_number)
    if accession is None:
        raise NotFound("no case has this placer order number", code="unknown-order",
                       where="placer_order_number",
                       hint="cancel with the placer order number of the original order")
    case = cases.load(conn, accession)
    if case.status is CaseStatus.CANCELLED:
        return case
    case.apply(CaseEvent.CANCEL)
    cases.save_status(conn, case, now)
    dft = post_charges.credit_case(conn, services, case, reason=REASON, hl7_now=hl7_now, now=now)
    audit.append(conn, at=now, actor=actor, action="case.cancelled", accession=accession,
                 detail={"dft": dft})
    notify_status.cancelled_as_requested(conn, services, case, now=now)  # ORC-1 CR
    return case
