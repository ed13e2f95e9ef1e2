"""Step 1: an order opens a case, with its accession number and Study Instance UID, and queues
its worklist entries (XC and DMS) in the same transaction.

The case keeps what the order carried: the patient's identity (INS and its status), the
structured request (questionnaire answers), the consent and the triage (score and level) that
the worklist entries and `GET /api/cases?sort=triage` order cases by. The audit row records the
triage and where the consent came from, never the answers themselves."""

from __future__ import annotations

import dataclasses

from ..dicom import uids
from ..domain.errors import DomainError
from ..domain.model import Case
from ..store.uow import UnitOfWork
from . import assign_case, notify_status, publish_worklist, update_patient
from .commands import OpenCase


def handle(cmd: OpenCase, uow: UnitOfWork) -> Case:
    """Persist a new case for the order.

    The patient is found by any of their identifiers (`update_patient.identify`): an order
    whose identity contradicts the known patient (identifiers of two patients, another
    identifier of one authority, another name, birth date or sex) raises `IdentityConflict`
    and opens nothing; identifiers it brings (an INS now qualified) join the record, and the
    earlier cases follow (archive, worklist) as after an A08.

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
    patient_pk, patient = update_patient.identify(uow, order.patient)
    earlier = uow.cases.patient_accessions(patient_pk) if patient_pk is not None else []
    case = Case(accession=uow.cases.next_accession(),
                study_uid=uids.study_uid(order.sender, order.placer_order_number),
                order=dataclasses.replace(order, patient=patient))
    if earlier and uow.cases.update_patient(patient_pk, patient):
        update_patient.propagate(uow, earlier, key=f"order:{case.accession}")
    uow.cases.insert(case, now, patient_pk)
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
