"""Persistence of charge lines (the `charges` table): what each act billed, credited or could
not bill, and what the accounting feed made of it.

A row is one line of an act:
- a charge (`type` CG) or a credit (`type` CD, `credit_of` = the FT1-2 it reverses), with
  `message_control_id` the batch (DFT MSH-10 / CSV file) that carries it and `status`
  `sent` -> `acknowledged` (the feed answered AA) or `refused` (AE, with the reason);
- a line that may not be billed: `status` `not_billable`, `type` "", amount 0, the rule's
  `reason`, no batch; its `transaction_id` is `engine.not_billable_id(...)`, never sent.

`transaction_id` is unique: recording the same line twice is impossible, which is what makes a
replayed report or a retried step bill nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from ..domain.model import Charge, TransactionTypeValues
from .schema import cases, charges

STATUSES = ("sent", "acknowledged", "refused", "not_billable")


@dataclass(frozen=True)
class Line:
    """Where a line belongs: the act's accession, kind, level, billing round, patient and the
    facility whose codes it is billed with."""

    accession: str
    kind: str
    patient_id: str
    facility: str
    level: int | None = None
    billing_round: int = 0


def record_charge(conn: Connection, line: Line, charge: Charge, *, control_id: str, now: str,
                  credit_of: str | None = None, reason: str = "") -> None:
    """Insert a CG or CD line, status `sent`, carried by batch `control_id`."""
    conn.execute(charges.insert().values(
        accession=line.accession, transaction_id=charge.transaction_id, code=charge.code,
        role=charge.role, type=charge.type, amount_cents=charge.amount_cents,
        act_date=charge.act_date, performed_by=charge.performed_by.id,
        performed_by_name=charge.performed_by.name.hl7(),
        performed_by_authority=charge.performed_by.authority,
        performed_by_id_type=charge.performed_by.id_type,
        ordered_by=charge.ordered_by.id if charge.ordered_by else "",
        message_control_id=control_id, created_at=now, status="sent", reason=reason,
        facility=line.facility, kind=line.kind, level=line.level,
        billing_round=line.billing_round, patient_id=line.patient_id, credit_of=credit_of))


def record_not_billable(conn: Connection, line: Line, *, transaction_id: str, code: str,
                        role: str, reason: str, act_date: str, performed_by: str,
                        performed_by_name: str, ordered_by: str, now: str) -> None:
    """Insert a line the rules do not let the act bill, with the rule's reason; never sent."""
    conn.execute(charges.insert().values(
        accession=line.accession, transaction_id=transaction_id, code=code, role=role, type="",
        amount_cents=0, act_date=act_date, performed_by=performed_by,
        performed_by_name=performed_by_name, ordered_by=ordered_by, message_control_id="",
        created_at=now, status="not_billable", reason=reason, facility=line.facility,
        kind=line.kind, level=line.level, billing_round=line.billing_round,
        patient_id=line.patient_id))


def recorded_ids(conn: Connection, accession: str) -> set[str]:
    return set(conn.execute(select(charges.c.transaction_id).where(
        charges.c.accession == accession)).scalars())


def of_case(conn: Connection, accession: str) -> list:
    """Every line of the case, oldest first."""
    return conn.execute(select(charges).where(charges.c.accession == accession)
                        .order_by(charges.c.id)).all()


def of_patient(conn: Connection, accession: str) -> list:
    """Every line of the other cases of this case's patient (same identifier and issuer)."""
    patient = select(cases.c.patient_pk).where(cases.c.accession == accession).scalar_subquery()
    same = select(cases.c.accession).where(cases.c.patient_pk == patient,
                                           cases.c.accession != accession)
    return conn.execute(select(charges).where(charges.c.accession.in_(same))
                        .order_by(charges.c.id)).all()


def next_batch(conn: Connection, accession: str) -> int:
    """1 + the number of batches already made for the case (batch numbers in MSH-10)."""
    done = conn.execute(select(func.count(func.distinct(charges.c.message_control_id))).where(
        charges.c.accession == accession, charges.c.message_control_id != "")).scalar()
    return done + 1


def mark(conn: Connection, control_id: str, status: str, *, reason: str = "",
         only: tuple[str, ...] = ("sent",)) -> int:
    """Set the status (and reason) of the lines of batch `control_id` whose status is in
    `only`; returns how many changed. Lines of other batches and not-billable lines never
    change."""
    if status not in STATUSES or not control_id:
        raise ValueError(f"cannot mark batch {control_id!r} {status!r}")
    values = {"status": status}
    if reason:
        values["reason"] = reason
    return conn.execute(update(charges).where(
        charges.c.message_control_id == control_id, charges.c.status.in_(only),
        charges.c.type.in_([t.value for t in TransactionTypeValues])).values(**values)).rowcount
