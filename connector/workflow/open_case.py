"""Step 1: an order opens a case, with its accession number and Study Instance UID, and queues
its worklist entries (XC and DMS) in the same transaction.

The case keeps what the order carried: the patient's identity (INS and its status), the
structured request (questionnaire answers), the consent and the triage (score and level) that
the worklist entries and `GET /api/cases?sort=triage` order cases by. The audit row records the
triage and where the consent came from, never the answers themselves."""

from __future__ import annotations

from ..dicom import uids
from ..domain.errors import DomainError
from ..domain.model import Case
from ..store.uow import UnitOfWork
from . import assign_case, notify_status, publish_worklist
from .commands import OpenCase


def handle(cmd: OpenCase, uow: UnitOfWork) -> Case:
    """Persist a new case for the order.

    The Study Instance UID derives from (sender, placer order number), so the same order
    always maps to the same study, even if it were re-created after a restore. The worklist
    entries are published by the outbox worker (`publish_worklist`), after this commits;
    `cmd.worklist` False publishes none (an act already done takes no images), nor does a site
    whose `[worklist] enabled` is false. Requesters that take order status messages are told
    the order is accepted (ORC-1 OK, `notify_status`). The case then gets its pool, specialist
    and deadline (`assign_case.route`), unless `cmd.route` is false.
    """
    order, now = cmd.order, uow.moment.iso
    if uow.cases.find_by_placer(order.sender, order.placer_order_number):
        raise DomainError("this placer order number already has a case", code="duplicate-order",
                          where="placer_order_number",
                          hint="send a new placer order number, or ORC-1 XO to change the order")
    case = Case(accession=uow.cases.next_accession(),
                study_uid=uids.study_uid(order.sender, order.placer_order_number),
                order=order)
    uow.cases.insert(case, now)
    if cmd.worklist and uow.services.config.worklist.enabled:
        publish_worklist.enqueue(uow, case.accession)
    detail = {"priority": order.priority.value}
    if order.triage.level:
        detail.update(triage=order.triage.level, triage_score=order.triage.score,
                      red_flags=len(order.triage.red_flags))
    if order.consent is not None:
        detail["consent"] = order.consent.source
    uow.audit.append(at=now, actor=cmd.actor, action="case.opened", accession=case.accession,
                     detail=detail)
    notify_status.accepted(uow, case)  # ORC-1 OK
    if cmd.route:
        assign_case.route(uow, case, actor=cmd.actor)
    return case
