"""Persistence of the Case aggregate (cases + patients tables) and the accession sequence.

The structured request (questionnaire answers) and the consent are stored as JSON on the case,
as they were received (labels included), so a later change of mappings/questionnaire.toml does
not rewrite what a requester answered.
"""

from __future__ import annotations

import json

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from ..domain.errors import NotFound
from ..domain.model import (Answer, Case, Consent, Facility, Order, Patient, PersonName,
                            Practitioner, Priority, Triage)
from ..domain.states import CaseStatus
from .schema import cases, counters, images, patients, reports


# The statements of opening a case are built once (SQLAlchemy caches their compiled form;
# a statement built with literal values would be compiled afresh for every order).
_COUNTER = select(counters.c.value).where(counters.c.name == bindparam("counter"))
_COUNTER_INSERT = counters.insert()
_COUNTER_SET = (update(counters).where(counters.c.name == bindparam("counter"))
                .values(value=bindparam("new_value")))
_PATIENT_PK = select(patients.c.id).where(patients.c.patient_id == bindparam("pid"),
                                          patients.c.issuer == bindparam("pissuer"))
_PATIENT_INSERT = patients.insert()
_PATIENT_COLUMNS = ("family", "given", "birth_date", "sex", "ins", "ins_oid", "identity_status",
                    "identity_flags", "other_ids")
_PATIENT_UPDATE = (update(patients).where(patients.c.id == bindparam("pk"))
                   .values({name: bindparam(f"new_{name}") for name in _PATIENT_COLUMNS}))
_CASE_INSERT = cases.insert()
_BY_PLACER = select(cases.c.accession).where(cases.c.sender == bindparam("sender"),
                                             cases.c.placer_order_number == bindparam("placer"))


def next_accession(conn: Connection, prefix: str = "TD") -> str:
    """Allocate the next accession number (SH, ≤ 16 chars) inside the caller's transaction."""
    value = conn.execute(_COUNTER, {"counter": "accession"}).scalar()
    if value is None:
        value = 1
        conn.execute(_COUNTER_INSERT, {"name": "accession", "value": value})
    else:
        value += 1
        conn.execute(_COUNTER_SET, {"counter": "accession", "new_value": value})
    return f"{prefix}{value:08d}"


def _save_patient(conn: Connection, patient: Patient) -> int:
    values = dict(family=patient.name.family, given=patient.name.given,
                  birth_date=patient.birth_date, sex=patient.sex, **identity_values(patient))
    pk = conn.execute(_PATIENT_PK, {"pid": patient.id, "pissuer": patient.issuer}).scalar()
    if pk is None:
        return conn.execute(_PATIENT_INSERT, dict(patient_id=patient.id, issuer=patient.issuer,
                                                  **values)).inserted_primary_key[0]
    conn.execute(_PATIENT_UPDATE, {"pk": pk, **{f"new_{k}": v for k, v in values.items()}})
    return pk


def identity_values(patient: Patient) -> dict:
    """The patients-table columns of the French identity (INS, status, other identifiers)."""
    return dict(ins=patient.ins, ins_oid=patient.ins_oid,
                identity_status=patient.identity_status,
                identity_flags=" ".join(patient.identity_flags),
                other_ids=json.dumps([list(pair) for pair in patient.other_ids]))


def patient_from_row(row) -> Patient:
    """A Patient from a row holding the patients-table columns."""
    return Patient(id=row["patient_id"], issuer=row["issuer"],
                   name=PersonName(row["family"], row["given"]),
                   birth_date=row["birth_date"], sex=row["sex"], ins=row["ins"],
                   ins_oid=row["ins_oid"], identity_status=row["identity_status"],
                   identity_flags=tuple(row["identity_flags"].split()),
                   other_ids=tuple(tuple(pair) for pair in json.loads(row["other_ids"] or "[]")))


def answers_json(answers: tuple[Answer, ...]) -> str:
    return json.dumps([{"item": a.item, "values": list(a.values), "weight": a.weight,
                        "red_flags": list(a.red_flags), "label": list(a.label),
                        "value_labels": [list(v) for v in a.value_labels]} for a in answers],
                      ensure_ascii=False)


def answers_from_json(text: str) -> tuple[Answer, ...]:
    return tuple(Answer(item=a["item"], values=tuple(a["values"]), weight=a["weight"],
                        red_flags=tuple(a["red_flags"]), label=tuple(a["label"]),
                        value_labels=tuple(tuple(v) for v in a["value_labels"]))
                 for a in json.loads(text or "[]"))


def insert(conn: Connection, case: Case, now: str) -> None:
    order = case.order
    facility = order.facility or Facility()
    consent = (json.dumps({"source": order.consent.source, "given_at": order.consent.given_at})
               if order.consent else "")
    conn.execute(_CASE_INSERT, dict(
        accession=case.accession, sender=order.sender,
        placer_order_number=order.placer_order_number, study_uid=case.study_uid,
        status=case.status.value, priority=order.priority.value,
        patient_pk=_save_patient(conn, order.patient),
        requester_id=order.requester.id, requester_family=order.requester.name.family,
        requester_given=order.requester.name.given, requester_authority=order.requester.authority,
        question=order.question, ordered_at=order.ordered_at,
        patient_hospitalised=order.patient_hospitalised, created_at=now, updated_at=now,
        requester_id_type=order.requester.id_type, requester_rpps=order.requester.rpps,
        facility_finess=facility.finess, facility_name=facility.name,
        facility_kind=facility.kind, questionnaire=answers_json(order.questionnaire),
        consent=consent, triage_score=order.triage.score, triage_level=order.triage.level))


def find_by_placer(conn: Connection, sender: str, placer_order_number: str) -> str | None:
    return conn.execute(_BY_PLACER, {"sender": sender, "placer": placer_order_number}).scalar()


def load(conn: Connection, accession: str) -> Case:
    row = conn.execute(select(cases, patients).join(patients, cases.c.patient_pk == patients.c.id)
                       .where(cases.c.accession == accession)).mappings().first()
    if row is None:
        raise NotFound(f"no case with accession {accession}", where="accession",
                       hint="list cases with GET /api/cases")
    patient = patient_from_row(row)
    requester = Practitioner(row["requester_id"],
                             PersonName(row["requester_family"], row["requester_given"]),
                             row["requester_authority"], id_type=row["requester_id_type"],
                             rpps=row["requester_rpps"])
    answers = answers_from_json(row["questionnaire"])
    consent = json.loads(row["consent"]) if row["consent"] else None
    facility = (Facility(row["facility_finess"], row["facility_name"], row["facility_kind"])
                if row["facility_finess"] or row["facility_name"] else None)
    order = Order(sender=row["sender"], placer_order_number=row["placer_order_number"],
                  patient=patient, requester=requester, question=row["question"],
                  priority=Priority(row["priority"]), ordered_at=row["ordered_at"],
                  patient_hospitalised=bool(row["patient_hospitalised"]),
                  questionnaire=answers,
                  consent=Consent(consent["source"], consent["given_at"]) if consent else None,
                  triage=Triage(row["triage_score"], row["triage_level"],
                                tuple(f"{a.item}:{v}" for a in answers for v in a.red_flags)),
                  facility=facility)
    return Case(accession=row["accession"], study_uid=row["study_uid"], order=order,
                status=CaseStatus(row["status"]))


def save_status(conn: Connection, case: Case, now: str) -> None:
    conn.execute(update(cases).where(cases.c.accession == case.accession).values(
        status=case.status.value, updated_at=now))


def accession_for_study(conn: Connection, study_uid: str) -> str | None:
    return conn.execute(select(cases.c.accession).where(cases.c.study_uid == study_uid)).scalar()


# Identity updates (ADT) and order changes (ORC-1 XO). The demographics live once per patient
# (patients row, keyed by identifier + issuer) and every case points at it, so updating that
# row updates the patient of every case.

_FIND_PATIENT = select(patients.c.id).where(patients.c.patient_id == bindparam("pid"),
                                            patients.c.issuer == bindparam("issuer"))


def find_patient(conn: Connection, patient_id: str, issuer: str) -> int | None:
    """The patients row of (identifier, issuer), or None when no case ever named them (built
    once: every ADT of a patient administration feed asks)."""
    return conn.execute(_FIND_PATIENT, {"pid": patient_id, "issuer": issuer}).scalar()


def update_patient(conn: Connection, pk: int, patient: Patient) -> list[str]:
    """Give record `pk` the identifier, issuer and every value `patient` carries (as a new
    order does, `_save_patient`); returns the names of the columns that changed (never their
    values). No other record may hold `patient`'s identifier and issuer."""
    before = conn.execute(select(patients).where(patients.c.id == pk)).mappings().one()
    if (before["patient_id"], before["issuer"]) != (patient.id, patient.issuer):
        conn.execute(update(patients).where(patients.c.id == pk)
                     .values(patient_id=patient.id, issuer=patient.issuer))
    _save_patient(conn, patient)
    after = conn.execute(select(patients).where(patients.c.id == pk)).mappings().one()
    return [k for k in after.keys() if k != "id" and before[k] != after[k]]


def patient_accessions(conn: Connection, pk: int) -> list[str]:
    """The accession of every case of the patient, oldest first."""
    return list(conn.execute(select(cases.c.accession).where(cases.c.patient_pk == pk)
                             .order_by(cases.c.created_at, cases.c.accession)).scalars())


def move_cases(conn: Connection, from_pk: int, to_pk: int, now: str) -> list[str]:
    """Give every case of patient `from_pk` to patient `to_pk` and delete `from_pk` (a merge);
    returns the accessions moved."""
    moved = patient_accessions(conn, from_pk)
    if moved:
        conn.execute(update(cases).where(cases.c.patient_pk == from_pk)
                     .values(patient_pk=to_pk, updated_at=now))
    conn.execute(patients.delete().where(patients.c.id == from_pk))
    return moved


def has_archive_content(conn: Connection, accession: str) -> bool:
    """True when something of the case was, or is queued to be, stored in the archive (an image
    or a report's Encapsulated PDF)."""
    for table in (images, reports):
        if conn.execute(select(table.c.id).where(table.c.accession == accession)
                        .limit(1)).first():
            return True
    return False


def update_order(conn: Connection, accession: str, order: Order, now: str) -> list[str]:
    """Store the changeable details of an order (question, priority, requester, inpatient
    flag) on its case; returns the names of the details that changed."""
    row = conn.execute(select(cases).where(cases.c.accession == accession)).mappings().one()
    values = dict(question=order.question, priority=order.priority.value,
                  requester_id=order.requester.id, requester_family=order.requester.name.family,
                  requester_given=order.requester.name.given,
                  requester_authority=order.requester.authority,
                  requester_id_type=order.requester.id_type, requester_rpps=order.requester.rpps,
                  patient_hospitalised=order.patient_hospitalised)
    changed = [k for k, v in values.items() if row[k] != v]
    if changed:
        conn.execute(update(cases).where(cases.c.accession == accession)
                     .values(updated_at=now, **values))
    return sorted({"requester" if k.startswith("requester_") else k for k in changed})


def touch(conn: Connection, accessions: list[str], now: str) -> None:
    if accessions:
        conn.execute(update(cases).where(cases.c.accession.in_(accessions))
                     .values(updated_at=now))


def exists(conn: Connection, accession: str) -> bool:
    return conn.execute(select(cases.c.accession).where(cases.c.accession == accession)
                        ).first() is not None


def find_by_placer_any(conn: Connection, placer_order_number: str) -> list[tuple[str, str]]:
    """(accession, sender) of every case with this placer order number, whoever sent it (a
    reporting system is not the requester, so it cannot scope the number by sender)."""
    return [tuple(r) for r in conn.execute(
        select(cases.c.accession, cases.c.sender)
        .where(cases.c.placer_order_number == placer_order_number)
        .order_by(cases.c.accession))]


def placer_of(conn: Connection, accession: str) -> str:
    return conn.execute(select(cases.c.placer_order_number)
                        .where(cases.c.accession == accession)).scalar() or ""
