"""Step 1: an order opens a case, with its accession number and Study Instance UID, and queues
its worklist entries (XC and DMS) in the same transaction.

The case keeps what the order carried: the patient's identity (INS and its status), the
structured request (questionnaire answers), the consent and the triage (score and level) that
the worklist entries and `GET /api/cases?sort=triage` order cases by. The audit row records the
triage and where the consent came from, never the answers themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from ..dicom import uids
from ..domain.errors import DomainError
from ..domain.model import Case, Order
from ..store import audit, cases
from . import notify_status, publish_worklist

if TYPE_CHECKING:
    from .bootstrap import Services


def handle(conn: Connection, order: Order, *, now: str, actor: str,
           worklist: bool = True, services: "Services | None" = None) -> Case:
    """Persist a new case for `order` in the caller's transaction.

    The Study Instance UID derives from (sender, placer order number), so the same order
    always maps to the same study, even if it were re-created after a restore. The worklist
    entries are published by the outbox worker (`publish_worklist`), after this commits;
    `worklist=False` publishes none (an act already done takes no images), nor does a site
    whose `[worklist] enabled` is false. With `services`, requesters that take order status
    messages are told the order is accepted (ORC-1 OK, `notify_status`).
    """
    if cases.find_by_placer(conn, order.sender, order.placer_order_number):
        raise DomainError("this placer order number already has a case", code="duplicate-order",
                          where="placer_order_number",
                          hint="send a new placer order number, or ORC-1 XO to change the order")
    case = Case(accession=cases.next_accession(conn),
                study_uid=uids.study_uid(order.sender, order.placer_order_number),
                order=order)
    cases.insert(conn, case, now)
    if worklist and (services is None or services.config.worklist_enabled):
        publish_worklist.enqueue(conn, case.accession, now=now)
    detail = {"priority": order.priority.value}
    if order.triage.level:
        detail.update(triage=order.triage.level, triage_score=order.triage.score,
                      red_flags=len(order.triage.red_flags))
    if order.consent is not None:
        detail["consent"] = order.consent.source
    audit.append(conn, at=now, actor=actor, action="case.opened", accession=case.accession,
                 detail=detail)
    if services is not None:
        notify_status.accepted(conn, services, case, now=now)  # ORC-1 OK
    return case
