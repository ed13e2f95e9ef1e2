"""Step 1b: the EHR reports a teleconsultation as done (an order whose OBR-4 carries a
teleconsultation code, `hl7.orm.teleconsultation_from_orm`). In the order's transaction: a case
is opened and completed at once (OPEN -> ANSWERED, no worklist entry, no images), and the act
bills TC or TCG with the majorations it claims (`post_charges.charge_act`).

The act: kind teleconsultation, dated the day it took place (else the day it was reported),
performed by the message's performer (PV1-7, else the ordering provider), ordered by the
requester, GP or not from the procedure code. Its placer order number is the act's key: the
same act reported again under another MSH-10 is a duplicate order (ERR 205), never a second
charge.
"""

from __future__ import annotations

import datetime as dt

from ..billing.engine import Act
from ..domain.model import ActKind, Case
from ..domain.states import CaseEvent
from ..store.uow import UnitOfWork
from . import open_case, post_charges
from .commands import OpenCase, RecordTeleconsultation


def handle(cmd: RecordTeleconsultation, uow: UnitOfWork) -> tuple[Case, str | None]:
    """Open, complete and charge the case; returns it and the batch's MSH-10 (or None)."""
    order, act, now = cmd.order, cmd.act, uow.moment.iso
    case = open_case.handle(OpenCase(order, cmd.actor, worklist=False, route=False), uow)
    case.apply(CaseEvent.ACT_REPORTED)
    uow.cases.save_status(case, now)
    day = act.performed_on or uow.moment.day
    billed = Act(kind=ActKind.TELECONSULTATION.value,
                 date=dt.date(int(day[:4]), int(day[4:6]), int(day[6:8])),
                 patient=order.patient.id, requester=order.requester, specialist=act.performer,
                 requester_site=post_charges.requester_site(order),
                 specialist_site=uow.services.config.facility.id,
                 patient_hospitalised=order.patient_hospitalised,
                 specialist_is_gp=act.specialist_is_gp, majorations=act.majorations,
                 prior_acts=post_charges.prior_acts(uow, case.accession),
                 accession=case.accession)
    dft = post_charges.charge_act(uow, case, billed)
    uow.audit.append(at=now, actor=cmd.actor, action="act.reported", accession=case.accession,
                     detail={"kind": ActKind.TELECONSULTATION.value, "code": act.code,
                             "majorations": list(act.majorations), "act_date": day, "dft": dft})
    return case, dft
