"""The identifier index (`patient_identifiers`) and the identity incidents.

Any identifier a patient is known by finds their record (`find`); each (identifier,
authority) belongs to one record, which the table's unique constraint holds even if a caller
forgot to check (`connector/domain/identity.py` checks first, so a message is refused with an
ERR rather than failing here).

The table is the one place a patient's identifiers live: the other identifiers of a `Patient`
and how the sender wrote each (`other_ids`, `id_details`) are read from it (`of`), and
writing a patient writes them to it (`index`). An identifier that still finds the record but
is no longer the patient's own (the prior identifier of a merge) is kept `active = false`:
it is found, and written in no message nor object.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select, union
from sqlalchemy.engine import Connection

from ..domain.identity import keys
from ..domain.model import Patient
from .schema import identity_incidents, patient_identifiers as ids, patient_links as links

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


def inactive(conn: Connection, pk: int) -> frozenset[tuple[str, str]]:
    """The identifiers that find record `pk` but are no longer its own (a merged record's)."""
    return frozenset(tuple(r) for r in conn.execute(
        select(ids.c.identifier, ids.c.authority).where(ids.c.patient_pk == pk,
                                                        ids.c.active.is_(False))))


def index(conn: Connection, pk: int, patient: Patient) -> None:
    """Make the identifiers of `patient` the active identifiers of record `pk`, with the
    namespace and type the sender gave them (a detail it leaves empty is kept); the record's
    other identifiers stay, inactive: they still find it."""
    rows = {(r.identifier, r.authority): r for r in conn.execute(
        select(ids).where(ids.c.patient_pk == pk))}
    own = keys(patient)
    for key in own:
        namespace, kind = patient.details_of(*key)
        if not kind and key == (patient.ins, patient.ins_oid):
            kind = "INS"
        row = rows.get(key)
        if row is None:
            conn.execute(ids.insert().values(patient_pk=pk, identifier=key[0], authority=key[1],
                                             namespace=namespace, type=kind, active=True))
            continue
        wanted = dict(namespace=namespace or row.namespace, type=kind or row.type, active=True)
        if any(getattr(row, k) != v for k, v in wanted.items()):
            conn.execute(ids.update().where(ids.c.id == row.id).values(**wanted))
    stale = [row.id for key, row in rows.items() if key not in own and row.active]
    if stale:
        conn.execute(ids.update().where(ids.c.id.in_(stale)).values(active=False))


def of(conn: Connection, pks: list[int]) -> dict[int, list[tuple[str, str, str, str]]]:
    """The active identifiers of each record, as (identifier, authority, namespace, type), in
    the order they became known."""
    found: dict[int, list[tuple[str, str, str, str]]] = {pk: [] for pk in pks}
    if pks:
        for r in conn.execute(select(ids).where(ids.c.patient_pk.in_(pks), ids.c.active)
                              .order_by(ids.c.id)):
            found[r.patient_pk].append((r.identifier, r.authority, r.namespace, r.type))
    return found


def move(conn: Connection, from_pk: int, to_pk: int) -> None:
    """A merge: the identifiers of `from_pk` now find `to_pk`, and its links are `to_pk`'s."""
    conn.execute(ids.update().where(ids.c.patient_pk == from_pk).values(patient_pk=to_pk))
    others = linked(conn, from_pk, direct=True)
    conn.execute(links.delete().where(or_(links.c.patient_pk == from_pk,
                                          links.c.linked_pk == from_pk)))
    for other in others - {to_pk}:
        link(conn, to_pk, other)


def link(conn: Connection, pk: int, other: int) -> bool:
    """Record that records `pk` and `other` are one person (A24); False when they already were
    linked."""
    low, high = sorted((pk, other))
    if conn.execute(select(links.c.id).where(links.c.patient_pk == low,
                                             links.c.linked_pk == high)).first():
        return False
    conn.execute(links.insert().values(patient_pk=low, linked_pk=high))
    return True


def unlink(conn: Connection, pk: int, other: int) -> bool:
    """Undo a link (A37); False when the two records were not linked."""
    low, high = sorted((pk, other))
    return conn.execute(links.delete().where(links.c.patient_pk == low,
                                             links.c.linked_pk == high)).rowcount > 0


def linked(conn: Connection, pk: int, *, direct: bool = False) -> set[int]:
    """The other records of `pk`'s linked group (links followed from record to record), or
    only those linked to it when `direct`."""
    found, todo = set(), [pk]
    while todo:
        step = todo.pop()
        for a, b in conn.execute(select(links.c.patient_pk, links.c.linked_pk).where(
                or_(links.c.patient_pk == step, links.c.linked_pk == step))):
            other = b if a == step else a
            if other != pk and other not in found:
                found.add(other)
                if not direct:
                    todo.append(other)
    return found


def group_of(records):
    """A query of the records in the linked groups of `records` (a query of record ids) — the
    records themselves included — for the case list's patient filter."""
    edges = union(select(links.c.patient_pk.label("a"), links.c.linked_pk.label("b")),
                  select(links.c.linked_pk.label("a"), links.c.patient_pk.label("b"))).cte("edges")
    group = select(records.subquery().c[0].label("pk")).cte("grp", recursive=True)
    group = group.union(select(edges.c.b).join(group, edges.c.a == group.c.pk))
    return select(group.c.pk)


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
