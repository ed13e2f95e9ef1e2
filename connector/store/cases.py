"""Persistence of the Case aggregate (cases + patients tables) and the accession sequence.

The structured request (questionnaire answers) and the consent are stored as JSON on the case,
as they were received (labels included), so a later change of mappings/questionnaire.toml does
not rewrite what a requester answered.
"""

from __future__ import annotations

import json

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from ..domain.errors import NotFound
from ..domain.identity import keys as identity_keys
from ..domain.model import (QUALIFIED, Answer, Case, Consent, Facility, Order, Patient,
                            PersonName, Practitioner, Priority, Triage)
from ..domain.states import CaseStatus
from . import counters, driver, identity
from .schema import cases, images, patients, reports


# Opening a case is the hot path of processing-mode intake (the ACK waits for it): its
# statements go to the driver (`driver.execute`), their SQL written once from the tables.
_PATIENT_COLUMNS = ("family", "given", "birth_date", "sex", "ins", "ins_oid", "identity_status",
                    "identity_flags")
_PATIENT_INSERT = driver.insert_sql(patients, ("patient_id", "issuer") + _PATIENT_COLUMNS,
                                    returning="id")
_PATIENT_UPDATE = ("UPDATE patients SET "
                   + ", ".join(f"{c} = ?" for c in ("patient_id", "issuer") + _PATIENT_COLUMNS)
                   + " WHERE id = ?")
_CASE_COLUMNS = ("accession", "sender", "placer_order_number", "study_uid", "status", "priority",
                 "patient_pk", "requester_id", "requester_family", "requester_given",
                 "requester_authority", "question", "ordered_at", "patient_hospitalised",
                 "created_at", "updated_at", "requester_id_type", "requester_rpps",
                 "facility_finess", "facility_name", "facility_kind", "questionnaire", "consent",
                 "triage_score", "triage_level", "procedure", "pool", "assigned_to", "due_at",
                 "answered_at", "escalations", "service")
_CASE_INSERT = driver.insert_sql(cases, _CASE_COLUMNS)
_BY_PLACER = "SELECT accession FROM cases WHERE sender = ? AND placer_order_number = ?"


def next_accession(conn: Connection, prefix: str = "TD") -> str:
    """Allocate the next accession number (SH, ≤ 16 chars) inside the caller's transaction."""
    return f"{prefix}{counters.next_value(conn, 'accession'):08d}"


def _save_patient(conn: Connection, patient: Patient, pk: int | None = None) -> int:
    """Write `patient` to record `pk` (when None, the record one of its identifiers finds, else
    a new one) and index its identifiers. Nothing is compared here: the workflow has checked
    that the identity is theirs (`workflow/update_patient.identify`)."""
    if pk is None:
        pk = next(iter(identity.find(conn, identity_keys(patient)).values()), None)
    named = {"family": patient.name.family, "given": patient.name.given,
             "birth_date": patient.birth_date, "sex": patient.sex, **identity_values(patient)}
    values = tuple(named[column] for column in _PATIENT_COLUMNS)
    if pk is None:
        pk = driver.execute(conn, _PATIENT_INSERT,
                            (patient.id, patient.issuer, *values)).fetchone()[0]
    else:
        driver.execute(conn, _PATIENT_UPDATE, (patient.id, patient.issuer, *values, pk))
    identity.index(conn, pk, patient)
    return pk


def identity_values(patient: Patient) -> dict:
    """The patients-table columns of the French identity (INS, status and flags)."""
    return dict(ins=patient.ins, ins_oid=patient.ins_oid,
                identity_status=patient.identity_status,
                identity_flags=" ".join(patient.identity_flags))


def patient_from_row(row, identifiers: list[tuple[str, str, str, str]]) -> Patient:
    """A Patient from a row holding the patients-table columns and the record's active
    identifiers (`identity.of`): every one but the identifier is another identifier, except an
    INS the identity status does not allow sending. The index types the INS `INS` when the
    sender did not; that goes without saying, so it is no detail of how the sender wrote it."""
    ins = (row["ins"], row["ins_oid"]) if row["ins"] else None
    usable = ins is not None and row["identity_status"] == QUALIFIED
    primary = (row["patient_id"], row["issuer"])
    return Patient(id=row["patient_id"], issuer=row["issuer"],
                   name=PersonName(row["family"], row["given"]),
                   birth_date=row["birth_date"], sex=row["sex"], ins=row["ins"],
                   ins_oid=row["ins_oid"], identity_status=row["identity_status"],
                   identity_flags=tuple(row["identity_flags"].split()),
                   other_ids=tuple((i, a) for i, a, _, _ in identifiers
                                   if (i, a) != primary and ((i, a) != ins or usable)),
                   id_details=tuple(d for d in identifiers
                                    if d[2] or d[3] and d != (*(ins or ("", "")), "", "INS")))


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


def insert(conn: Connection, case: Case, now: str, patient_pk: int | None = None) -> None:
    """Store a new case; its patient is record `patient_pk` (given the order's patient), or a
    new record when None."""
    order = case.order
    facility = order.facility or Facility()
    consent = (json.dumps({"source": order.consent.source, "given_at": order.consent.given_at})
               if order.consent else "")
    patient_pk = _save_patient(conn, order.patient, patient_pk)
    requester = order.requester
    driver.execute(conn, _CASE_INSERT, (
        case.accession, order.sender, order.placer_order_number, case.study_uid,
        case.status.value, order.priority.value, patient_pk, requester.id,
        requester.name.family, requester.name.given, requester.authority, order.question,
        order.ordered_at, order.patient_hospitalised, now, now, requester.id_type,
        requester.rpps, facility.finess, facility.name, facility.kind,
        answers_json(order.questionnaire), consent, order.triage.score, order.triage.level,
        order.procedure, "", "", "", "", 0, order.service[:40]))


def find_by_placer(conn: Connection, sender: str, placer_order_number: str) -> str | None:
    row = driver.execute(conn, _BY_PLACER, (sender, placer_order_number)).fetchone()
    return row[0] if row is not None else None


def load(conn: Connection, accession: str) -> Case:
    """The case, its row locked until the caller's transaction ends (PostgreSQL; SQLite has one
    writer): a step loads, decides on the state it read, and saves, so two steps on one case
    (a report and a stable-study notice, in two processes) go one after the other and the
    second sees what the first saved, instead of writing over it."""
    row = conn.execute(select(cases, patients).join(patients, cases.c.patient_pk == patients.c.id)
                       .where(cases.c.accession == accession)
                       .with_for_update(of=cases)).mappings().first()
    if row is None:
        raise NotFound(f"no case with accession {accession}", where="accession",
                       hint="list cases with telederm cases list (or GET /api/cases)")
    patient = patient_from_row(row, identity.of(conn, [row["patient_pk"]])[row["patient_pk"]])
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
                  facility=facility, procedure=row["procedure"], service=row["service"])
    return Case(accession=row["accession"], study_uid=row["study_uid"], order=order,
                status=CaseStatus(row["status"]))


def save_status(conn: Connection, case: Case, now: str) -> None:
    """Write the case's status; the first time it is ANSWERED is kept (`answered_at`, which
    statistics compare with its deadline)."""
    conn.execute(update(cases).where(cases.c.accession == case.accession).values(
        status=case.status.value, updated_at=now))
    if case.status is CaseStatus.ANSWERED:
        conn.execute(update(cases).where(cases.c.accession == case.accession,
                                         cases.c.answered_at == "").values(answered_at=now))


def accession_for_study(conn: Connection, study_uid: str) -> str | None:
    return conn.execute(select(cases.c.accession).where(cases.c.study_uid == study_uid)).scalar()


# Identity updates (ADT) and order changes (ORC-1 XO). The demographics live once per patient
# (patients row, keyed by identifier + issuer) and every case points at it, so updating that
# row updates the patient of every case.

def find_patient(conn: Connection, patient_id: str, issuer: str) -> int | None:
    """The record any of whose identifiers is (identifier, issuer), or None when no case ever
    named them."""
    return identity.find(conn, [(patient_id, issuer)]).get((patient_id, issuer))


def patient(conn: Connection, pk: int) -> Patient:
    """The patient of record `pk`, as stored."""
    return patient_from_row(conn.execute(select(patients).where(patients.c.id == pk))
                            .mappings().one(), identity.of(conn, [pk])[pk])


def update_patient(conn: Connection, pk: int, patient: Patient) -> list[str]:
    """Give record `pk` the identifier, issuer and every value `patient` carries, and index its
    identifiers; returns the names of what changed (never their values): patients-table
    columns, and `identifiers` when the active identifiers or their details did."""
    before = conn.execute(select(patients).where(patients.c.id == pk)).mappings().one()
    identifiers = identity.of(conn, [pk])[pk]
    _save_patient(conn, patient, pk)
    after = conn.execute(select(patients).where(patients.c.id == pk)).mappings().one()
    changed = [k for k in after.keys() if k != "id" and before[k] != after[k]]
    if identity.of(conn, [pk])[pk] != identifiers:
        changed.append("identifiers")
    return changed


def patient_accessions(conn: Connection, pk: int) -> list[str]:
    """The accession of every case of the patient, oldest first."""
    return list(conn.execute(select(cases.c.accession).where(cases.c.patient_pk == pk)
                             .order_by(cases.c.created_at, cases.c.accession)).scalars())


def move_cases(conn: Connection, from_pk: int, to_pk: int, now: str) -> list[str]:
    """Give every case and identifier of patient `from_pk` to patient `to_pk` and delete
    `from_pk` (a merge); returns the accessions moved."""
    moved = patient_accessions(conn, from_pk)
    if moved:
        conn.execute(update(cases).where(cases.c.patient_pk == from_pk)
                     .values(patient_pk=to_pk, updated_at=now))
    identity.move(conn, from_pk, to_pk)
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


def created_at(conn: Connection, accession: str) -> str | None:
    """When the case was opened, as stored (ISO UTC)."""
    return conn.execute(select(cases.c.created_at).where(cases.c.accession == accession)).scalar()


def statuses(conn: Connection, accessions: list[str]) -> dict[str, str]:
    """The status of each of these cases that exists, by accession."""
    return dict(conn.execute(select(cases.c.accession, cases.c.status)
                             .where(cases.c.accession.in_(accessions))).all())


def patient_id_of(conn: Connection, accession: str) -> str | None:
    """The identifier of the case's patient, or None when there is no such case."""
    return conn.execute(select(patients.c.patient_id)
                        .join(cases, cases.c.patient_pk == patients.c.id)
                        .where(cases.c.accession == accession)).scalar()


def of_patient(conn: Connection, patient_id: str, issuer: str,
               among: frozenset[CaseStatus]) -> list[str]:
    """The accessions of the patient's cases whose status is `among` these; any issuer when
    `issuer` is empty."""
    query = select(cases.c.accession).join(patients, cases.c.patient_pk == patients.c.id).where(
        patients.c.patient_id == patient_id, cases.c.status.in_([s.value for s in among]))
    if issuer:
        query = query.where(patients.c.issuer == issuer)
    return list(conn.execute(query).scalars())
