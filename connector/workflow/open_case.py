"""Step 1: an order opens a case, with its accession number and Study Instance UID, and queues
its worklist entries (XC and DMS) in the same transaction."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from ..dicom.uids import uid_from
from ..domain.errors import DomainError
from ..domain.model import Case, Order
from ..store import audit, cases
from . import publish_worklist


def handle(conn: Connection, order: Order, *, now: str, actor: str,
           worklist: bool = True) -> Case:
    """Persist a new case for `order` in the caller's transaction.

    The Study Instance UID derives from (sender, placer order number), so the same order
    always maps to the same study, even if it were re-created after a restore. The worklist
    entries are published by the outbox worker (`publish_worklist`), after this commits;
    `worklist=False` publishes none (an act already done takes no images).
    """
    if cases.find_by_placer(conn, order.sender, order.placer_order_number):
        raise DomainError("this placer order number already has a case", code="duplicate-order",
                          where="placer_order_number",
                          hint="send a new placer order number, or ORC-1 XO to change the order")
    case = Case(accession=cases.next_accession(conn),
                study_uid=uid_from("study", order.sender, order.placer_order_number),
                order=order)
    cases.insert(conn, case, now)
    if worklist:
        publish_worklist.enqueue(conn, case.accession, now=now)
    audit.append(conn, at=now, actor=actor, action="case.opened", accession=case.accession,
                 detail={"priority": order.priority.value})
    return case
