"""Step 6: a final report creates the act's charges and one DFT^P03 for the accounting feed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ..billing.teleexpertise import charges_for_final_report
from ..domain.model import Case, Practitioner
from ..hl7.dft import build_dft
from ..store.schema import charges as charges_table
from .bootstrap import Services
from .send_report import enqueue_hl7


def handle(conn: Connection, services: Services, case: Case, specialist: Practitioner, *,
           act_date: str, hl7_now: str, now: str) -> str | None:
    """Record the charges (once per act: FT1-2 ids are stable) and queue the DFT.

    Returns the DFT's MSH-10, or None when the act was already charged or no accounting
    destination is configured (the charges are still recorded for reconciliation).
    """
    lines = charges_for_final_report(tariffs=services.mappings.tariffs, accession=case.accession,
                                     act_date=act_date, requester=case.order.requester,
                                     specialist=specialist)
    known = set(conn.execute(select(charges_table.c.transaction_id).where(
        charges_table.c.accession == case.accession)).scalars())
    new = [c for c in lines if c.transaction_id not in known]
    if not new:
        return None
    control_id = f"DFT{case.accession}N{len(known) + 1}"
    for charge in new:
        conn.execute(charges_table.insert().values(
            accession=case.accession, transaction_id=charge.transaction_id, code=charge.code,
            role=charge.role, type=charge.type, amount_cents=charge.amount_cents,
            act_date=charge.act_date, performed_by=charge.performed_by.id,
            ordered_by=charge.ordered_by.id if charge.ordered_by else "",
            message_control_id=control_id, created_at=now))
    dest = services.config.destination("accounting")
    if dest is None:
        return None
    tariffs = services.mappings.tariffs
    labels = {c.code: tariffs.find(c.code, c.role, c.act_date).label_fr for c in new}
    message = build_dft(control_id=control_id, now=hl7_now, order=case.order,
                        accession=case.accession, charges=new, labels=labels,
                        sending=(services.config.facility_name, services.config.facility_id),
                        receiving=(dest.name.upper(), ""))
    enqueue_hl7(conn, destination=dest.name, control_id=control_id, message=message,
                accession=case.accession, now=now)
    return control_id
