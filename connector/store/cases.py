"""Persistence of the Case aggregate (cases + patients tables) and the accession sequence."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from ..domain.errors import NotFound
from ..domain.model import Case, Order, Patient, PersonName, Practitioner, Priority
from ..domain.states import CaseStatus
from .schema import cases, counters, patients


def next_accession(conn: Connection, prefix: str = "TD") -> str:
    """Allocate the next accession number (SH, ≤ 16 chars) inside the caller's transaction."""
    value = conn.execute(select(counters.c.value).where(counters.c.name == "accession")).scalar()
    if value is None:
        value = 1
        conn.execute(counters.insert().values(name="accession", value=value))
    else:
        value += 1
        conn.execute(update(counters).where(counters.c.name == "accession").values(value=value))
    return f"{prefix}{value:08d}"


def _save_patient(conn: Connection, patient: Patient) -> int:
    values = dict(family=patient.name.family, given=patient.name.given,
                  birth_date=patient.birth_date, sex=patient.sex)
    pk = conn.execute(select(patients.c.id).where(
        patients.c.patient_id == patient.id, patients.c.issuer == patient.issuer)).scalar()
    if pk is None:
        return conn.execute(patients.insert().values(
            patient_id=patient.id, issuer=patient.issuer, **values)).inserted_primary_key[0]
    conn.execute(update(patients).where(patients.c.id == pk).values(**values))
    return pk


def insert(conn: Connection, case: Case, now: str) -> None:
    order = case.order
    conn.execute(cases.insert().values(
        accession=case.accession, sender=order.sender,
        placer_order_number=order.placer_order_number, study_uid=case.study_uid,
        status=case.status.value, priority=order.priority.value,
        patient_pk=_save_patient(conn, order.patient),
        requester_id=order.requester.id, requester_family=order.requester.name.family,
        requester_given=order.requester.name.given, requester_authority=order.requester.authority,
        question=order.question, ordered_at=order.ordered_at,
        patient_hospitalised=order.patient_hospitalised, created_at=now, updated_at=now))


def find_by_placer(conn: Connection, sender: str, placer_order_number: str) -> str | None:
    return conn.execute(select(cases.c.accession).where(
        cases.c.sender == sender, cases.c.placer_order_number == placer_order_number)).scalar()


def load(conn: Connection, accession: str) -> Case:
    row = conn.execute(select(cases, patients).join(patients, cases.c.patient_pk == patients.c.id)
                       .where(cases.c.accession == accession)).mappings().first()
    if row is None:
        raise NotFound(f"no case with accession {accession}", where="accession",
                       hint="list cases with GET /api/cases")
    patient = Patient(id=row["patient_id"], issuer=row["issuer"],
                      name=PersonName(row["family"], row["given"]),
                      birth_date=row["birth_date"], sex=row["sex"])
    requester = Practitioner(row["requester_id"],
                             PersonName(row["requester_family"], row["requester_given"]),
                             row["requester_authority"])
    order = Order(sender=row["sender"], placer_order_number=row["placer_order_number"],
                  patient=patient, requester=requester, question=row["question"],
                  priority=Priority(row["priority"]), ordered_at=row["ordered_at"],
                  patient_hospitalised=bool(row["patient_hospitalised"]))
    return Case(accession=row["accession"], study_uid=row["study_uid"], order=order,
                status=CaseStatus(row["status"]))


def save_status(conn: Connection, case: Case, now: str) -> None:
    conn.execute(update(cases).where(cases.c.accession == case.accession).values(
        status=case.status.value, updated_at=now))


def accession_for_study(conn: Connection, study_uid: str) -> str | None:
    return conn.execute(select(cases.c.accession).where(cases.c.study_uid == study_uid)).scalar()
