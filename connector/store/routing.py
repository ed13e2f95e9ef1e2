"""The care network in the store: a case's pool, assignee and deadline, the timers the worker
fires (reminder, escalation), and the absences entered through the admin API.

A timer fires once: `fire` flips it from pending to fired only if it is still pending, in the
transaction of the step that performs its effects, so two workers that see it due never both
act (the second one's update matches no row once the first has committed; on PostgreSQL it
waits for the first one's row lock, then matches nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..domain.errors import NotFound
from ..domain.states import AWAITING_ANSWER
from .schema import absences, cases, timers

_WAITING = tuple(s.value for s in AWAITING_ANSWER)


@dataclass(frozen=True)
class Assignment:
    accession: str
    status: str
    priority: str
    pool: str
    assigned_to: str
    due_at: str
    escalations: int


@dataclass(frozen=True)
class Timer:
    id: int
    accession: str
    kind: str
    due_at: str


def assignment(conn: Connection, accession: str) -> Assignment:
    row = conn.execute(select(cases.c.accession, cases.c.status, cases.c.priority, cases.c.pool,
                              cases.c.assigned_to, cases.c.due_at, cases.c.escalations)
                       .where(cases.c.accession == accession)).first()
    if row is None:
        raise NotFound(f"no case with accession {accession}", where="accession",
                       hint="list cases with GET /api/cases")
    return Assignment(*row)


def assign(conn: Connection, accession: str, *, pool: str, assigned_to: str, now: str,
           due_at: str | None = None, escalated: bool = False) -> None:
    """Set the case's pool and assignee (and its deadline, when given)."""
    values = dict(pool=pool, assigned_to=assigned_to, updated_at=now)
    if due_at is not None:
        values["due_at"] = due_at
    if escalated:
        values["escalations"] = cases.c.escalations + 1
    conn.execute(update(cases).where(cases.c.accession == accession).values(**values))


def open_counts(conn: Connection, members: tuple[str, ...]) -> dict[str, int]:
    """Per member, the cases assigned to them that still wait for an answer."""
    if not members:
        return {}
    return dict(conn.execute(select(cases.c.assigned_to, func.count())
                             .where(cases.c.assigned_to.in_(members),
                                    cases.c.status.in_(_WAITING))
                             .group_by(cases.c.assigned_to)).all())


def arm(conn: Connection, *, key: str, accession: str, kind: str, due_at: str,
        now: str) -> bool:
    """Add a pending timer; False (nothing added) when a timer with this key exists."""
    if conn.execute(select(timers.c.id).where(timers.c.key == key)).first():
        return False
    try:
        with conn.begin_nested():
            conn.execute(insert(timers).values(key=key, accession=accession, kind=kind,
                                               due_at=due_at, status="pending",
                                               created_at=now))
    except IntegrityError:
        return False
    return True


def cancel(conn: Connection, accession: str, kind: str | None = None) -> int:
    """Cancel the case's pending timers (of `kind` only, when given)."""
    query = update(timers).where(timers.c.accession == accession, timers.c.status == "pending")
    if kind is not None:
        query = query.where(timers.c.kind == kind)
    return conn.execute(query.values(status="cancelled")).rowcount


def due(conn: Connection, now: str, limit: int = 50) -> list[Timer]:
    """Pending timers due at `now`, the earliest first."""
    rows = conn.execute(select(timers.c.id, timers.c.accession, timers.c.kind, timers.c.due_at)
                        .where(timers.c.status == "pending", timers.c.due_at <= now)
                        .order_by(timers.c.due_at, timers.c.id).limit(limit)).all()
    return [Timer(*row) for row in rows]


def fire(conn: Connection, timer_id: int, now: str) -> bool:
    """Claim a due timer for this transaction: True for the one caller that flips it."""
    return conn.execute(update(timers).where(timers.c.id == timer_id,
                                             timers.c.status == "pending",
                                             timers.c.due_at <= now)
                        .values(status="fired", fired_at=now)).rowcount == 1


def timer(conn: Connection, timer_id: int) -> Timer:
    row = conn.execute(select(timers.c.id, timers.c.accession, timers.c.kind, timers.c.due_at)
                       .where(timers.c.id == timer_id)).one()
    return Timer(*row)


def timers_of(conn: Connection, accession: str) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(
        select(timers.c.kind, timers.c.due_at, timers.c.status, timers.c.fired_at)
        .where(timers.c.accession == accession).order_by(timers.c.id))]


def add_absence(conn: Connection, *, member: str, starts_on: str, ends_on: str, note: str,
                now: str) -> int:
    return conn.execute(insert(absences).values(member=member, starts_on=starts_on,
                                                ends_on=ends_on, note=note, created_at=now)
                        ).inserted_primary_key[0]


def absence_rows(conn: Connection) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(
        select(absences.c.id, absences.c.member, absences.c.starts_on, absences.c.ends_on,
               absences.c.note).order_by(absences.c.starts_on, absences.c.id))]


def remove_absence(conn: Connection, absence_id: int) -> bool:
    return conn.execute(delete(absences).where(absences.c.id == absence_id)).rowcount == 1
