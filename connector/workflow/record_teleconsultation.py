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

from sqlalchemy.engine import Connection

from ..billing.engine import Act
from ..domain.model import ActKind, Case, Order
from ..domain.states import CaseEvent
from ..hl7.orm import ReportedTeleconsultation
from ..store import audit, cases
from . import open_case, post_charges
from .bootstrap import Services


def handle(conn: Connection, services: Services, order: Order, act: ReportedTeleconsultation,
           *, received_on: str, hl7_now: str, now: str, actor: str) -> tuple[Case, str | None]:
    """Open, complete and charge the case; returns it and the batch's MSH-10 (or None)."""
    case = open_case.handle(conn, order, now=now, actor=actor, worklist=False)
    case.apply(CaseEvent.ACT_REPORTED)
    cases.save_status(conn, case, now)
    day = act.performed_on or received_on
    billed = Act(kind=ActKind.TELECONSULTATION.value,
                 date=dt.date(int(day[:4]), int(day[4:6]), int(day[6:8])),
                 patient=order.patient.id, requester=order.requester, specialist=act.performer,
                 requester_site=post_charges.requester_site(order),
                 specialist_site=services.config.facility_id,
                 patient_hospitalised=order.patient_hospitalised,
                 specialist_is_gp=act.specialist_is_gp, majorations=act.majorations,
                 prior_acts=post_charges.prior_acts(conn, case.accession),
                 accession=case.accession)
    dft = post_charges.charge_act(conn, services, case, billed, hl7_now=hl7_now, now=now)
    audit.append(conn, at=now, actor=actor, action="act.reported", accession=case.accession,
                 detail={"kind": ActKind.TELECONSULTATION.value, "code": act.code,
                         "majorations": list(act.majorations), "act_date": day, "dft": dft})
    return case, dft
