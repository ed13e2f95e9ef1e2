"""The identifier index (`patient_identifiers`) and the identity incidents.

Any identifier a patient is known by finds their record (`find`); each (identifier,
authority) belongs to one record, which the table's unique constraint holds even if a caller
forgot to check (`connector/domain/identity.py` checks first, so a message is refused with an
ERR rather than failing here).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ..domain.model import Patient
from .schema import identity_incidents, patient_identifiers as ids

INCIDENT_KINDS = ("unknown-patient", "conflict")


def find(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The record of each of these (identifier, authority) that is known."""
    found: dict[tuple[str, str], int] = {}
    for identifier, authority in keys:
        pk = conn.execute(select(ids.c.patient_pk).where(
            ids.c.identifier == identifier, ids.c.authority == authority)).scalar()
        if pk is not None:
            found[(identifier, authority)] = pk
    return found


def held(conn: Connection, pk: int) -> set[tuple[str, str]]:
    """Every (identifier, authority) record `pk` is known by."""
    return {tuple(r) for r in conn.execute(
        select(ids.c.identifier, ids.c.authority).where(ids.c.patient_pk == pk))}


def index(conn: Connection, pk: int, patient: Patient) -> None:
    """Add to record `pk` the identifiers of `patient` it is not known by yet, with the
    namespace and type the sender gave them."""
    have = held(conn, pk)
    found = [(patient.id, patient.issuer), *patient.other_ids]
    if patient.ins:
        found.append((patient.ins, patient.ins_oid))
    for identifier, authority in dict.fromkeys(found):
        if (identifier, authority) in have:
            continue
        namespace, kind = patient.details_of(identifier, authority)
        if not kind and (identifier, authority) == (patient.ins, patient.ins_oid):
            kind = "INS"
        conn.execute(ids.insert().values(patient_pk=pk, identifier=identifier,
                                         authority=authority, namespace=namespace, type=kind))


def move(conn: Connection, from_pk: int, to_pk: int) -> None:
    """A merge: the identifiers of `from_pk` now find `to_pk`."""
    conn.execute(ids.update().where(ids.c.patient_pk == from_pk).values(patient_pk=to_pk))


def retire(conn: Connection, identifier: str, authority: str) -> None:
    """A change of identifier: the old one finds nobody any more."""
    conn.execute(ids.delete().where(ids.c.identifier == identifier,
                                    ids.c.authority == authority))


def record_incident(conn: Connection, *, at: str, kind: str, message_type: str, sender: str,
                    control_id: str, reason: str = "", location: str = "") -> None:
    """One identity event for the identity-vigilance team; `reason` carries no patient data."""
    if kind not in INCIDENT_KINDS:
        raise ValueError(f"identity incident kind must be one of {INCIDENT_KINDS}")
    conn.execute(identity_incidents.insert().values(
        at=at, kind=kind, message_type=message_type, sender=sender, control_id=control_id,
        reason=reason, location=location))


def summary(conn: Connection, latest: int = 20) -> dict:
    """What `telederm status` and `GET /api/health` show: how many identity events concerned
    patients unknown here, how many messages were refused for conflicting identities, and the
    latest of those conflicts."""
    counts = dict(conn.execute(select(identity_incidents.c.kind, func.count())
                               .group_by(identity_incidents.c.kind)).all())
    rows = conn.execute(select(identity_incidents).where(identity_incidents.c.kind == "conflict")
                        .order_by(identity_incidents.c.id.desc()).limit(latest)).mappings()
    return {"unknown_patient_events": counts.get("unknown-patient", 0),
            "conflicts": counts.get("conflict", 0),
            "latest_conflicts": [{k: r[k] for k in ("at", "message_type", "sender",
                                                    "control_id", "reason", "location")}
                                 for r in rows]}
