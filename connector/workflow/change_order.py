"""The requester changes an order (ORC-1 XO) while the opinion is not given yet.

The case's order details take the message's values: the question (OBR-13 and the NTE after the
OBR, as for a new order), the priority, the requester and the inpatient flag (PV1-2). The
patient in PID is checked as a new order's is (`update_patient.identify`): an order is no
identity feed, so its identifiers may add to the record (an INS, its status) but its name,
birth date and sex must be the record's; what it adds is applied with the archive and worklist
follow-up of an identity update. The worklist entries are rewritten when the case still takes
images. Everything commits with the ACK and is audited (the names of what changed, no values).

Refused: an order no case has (unknown-order -> ERR 204 at ORC-2); a case already answered,
amended, closed, cancelled or rejected (state-conflict -> AE 207 at ORC-1: send a new order);
a change naming another patient (AE 207 at PID-3: merge the patients with ADT^A40, or cancel and
order again); a change whose name, birth date or sex differ from the record's
(`IdentityConflict`: AE 207 at PID-5, PID-7 or PID-8, recorded as an identity incident by the
HL7 route: the identity server corrects demographics, with ADT^A08).
"""

from __future__ import annotations

from ..domain import identity
from ..domain.errors import NotFound, StateConflict
from ..domain.model import Case
from ..domain.states import CaseStatus
from ..hl7.errors import Hl7Error
from ..store.uow import UnitOfWork
from . import update_patient
from .commands import ChangeOrder, UpdatePatient

CHANGEABLE = frozenset({CaseStatus.OPEN, CaseStatus.IMAGES_PENDING, CaseStatus.READY,
                        CaseStatus.IN_REVIEW})


def handle(cmd: ChangeOrder, uow: UnitOfWork) -> Case:
    order, key, now = cmd.order, cmd.key, uow.moment.iso
    accession = uow.cases.find_by_placer(order.sender, order.placer_order_number)
    if accession is None:
        raise NotFound("no case has this placer order number", code="unknown-order",
                       where="placer_order_number",
                       hint="change an order with the placer order number of the original order")
    case = uow.cases.load(accession)
    if case.status not in CHANGEABLE:
        raise StateConflict(f"a case in state {case.status.value} can no longer be changed",
                            where="case.status",
                            hint="the opinion was given or the order ended: send a new order")
    known = case.order.patient
    if (known.id, known.issuer) not in identity.keys(order.patient):
        raise Hl7Error("the change names another patient than the order", hl7_code=207,
                       location="PID^1^3", ack_code="AE",
                       hint="merge the patients (ADT^A40), or cancel and order again")
    update_patient.identify(uow, order.patient)  # raises IdentityConflict: nothing written
    changed = uow.cases.update_order(accession, order, now)
    if order.patient != known:  # same person, identifiers added
        update_patient.handle(UpdatePatient(order.patient, "XO", key, cmd.actor), uow)
    if changed:
        update_patient.refresh_worklist(uow, accession, key=key)
    uow.audit.append(at=now, actor=cmd.actor, action="order.changed", accession=accession,
                     detail={"changed": changed})
    return uow.cases.load(accession)
