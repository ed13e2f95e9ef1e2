"""Outbox: effects to perform (store in the archive, send HL7 to a peer), written in the same
transaction as the state change that causes them, then performed by workers.

Order is kept per destination: only the oldest pending item of a destination is ever claimed,
so a later message never overtakes an earlier one. A claim takes a lease (`lease_until`); a
worker that dies (even SIGKILLed) renews nothing, and once the lease has expired the item is
claimed again, by any process sharing the store. On PostgreSQL the claim reads the heads
`FOR UPDATE SKIP LOCKED`, so processes claiming at the same moment take different
destinations instead of queueing on one row. Failures back off exponentially with jitter and
become `dead` (with the reason) after the configured attempts, which unblocks the destination.
Each item has a unique idempotency key: enqueuing the same effect twice is a no-op.

Health: `destinations` gives each destination's last success and last failure (the time of
the last failed attempt is kept in `counters` under `fail:<destination>`, epoch seconds, written
by `fail`), pending count, oldest pending item and dead letters.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ..domain.moment import iso
from .schema import counters, outbox


@dataclass(frozen=True)
class Item:
    id: int
    kind: str
    destination: str
    key: str
    accession: str | None
    payload: bytes
    attempts: int


# Built once: every case, report and charge enqueues effects.
_BY_KEY = select(outbox.c.id).where(outbox.c.key == bindparam("k"))
_INSERT = outbox.insert()


def enqueue(conn: Connection, *, kind: str, destination: str, key: str, payload: bytes,
            accession: str | None, now: str) -> bool:
    """Add an effect; False when an effect with this key already exists (nothing added)."""
    if conn.execute(_BY_KEY, {"k": key}).first():
        return False
    try:
        with conn.begin_nested():
            conn.execute(_INSERT, dict(
                kind=kind, destination=destination, key=key, payload=payload, accession=accession,
                status="pending", attempts=0, next_attempt_at=now, created_at=now, last_error=""))
    except IntegrityError:
        return False
    return True


def claim(engine: Engine, now: dt.datetime, lease_seconds: float = 60, limit: int = 10, *,
          destination: str | None = None, exclude: tuple[str, ...] = ()) -> list[Item]:
    """Lease the head item of each destination that is due (of `destination` only, when
    given; never of those in `exclude`, e.g. destinations a worker of this process is busy
    with)."""
    with engine.begin() as conn:
        return claim_in(conn, now, lease_seconds, limit, destination=destination,
                        exclude=exclude)


def claim_in(conn: Connection, now: dt.datetime, lease_seconds: float = 60, limit: int = 10, *,
             destination: str | None = None, exclude: tuple[str, ...] = ()) -> list[Item]:
    """`claim` in the caller's transaction (e.g. the one that completes the previous item)."""
    now_s = iso(now)
    lease = iso(now + dt.timedelta(seconds=lease_seconds))
    heads = select(func.min(outbox.c.id)).where(outbox.c.status == "pending")
    if destination is not None:
        heads = heads.where(outbox.c.destination == destination)
    if exclude:
        heads = heads.where(outbox.c.destination.not_in(exclude))
    heads = heads.group_by(outbox.c.destination)
    # PostgreSQL: the heads another process is claiming right now (row-locked by its claim)
    # are skipped, not waited for; SQLite renders no FOR UPDATE (one writer at a time).
    rows = conn.execute(select(outbox).where(
        outbox.c.id.in_(heads),
        outbox.c.next_attempt_at <= now_s,
        or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now_s),
    ).order_by(outbox.c.id).limit(limit).with_for_update(skip_locked=True)).all()
    items = []
    for row in rows:
        # Checked again as the row is now (not as the read above saw it): another process
        # may have leased it, or delivered it, between its commit and our lock.
        got = conn.execute(update(outbox).where(and_(
            outbox.c.id == row.id,
            outbox.c.status == "pending",
            or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now_s),
        )).values(lease_until=lease))
        if got.rowcount == 1:
            items.append(Item(row.id, row.kind, row.destination, row.key, row.accession,
                              row.payload, row.attempts))
    return items


def release(conn: Connection, item_id: int) -> None:
    """Give back the lease of an item claimed but not attempted."""
    conn.execute(update(outbox).where(outbox.c.id == item_id, outbox.c.status == "pending")
                 .values(lease_until=None))


def release_leases(conn: Connection) -> int:
    """Void every lease (for a worker starting where no other can be running: the leases left
    are those of a process that died, and would hold their destinations until they expire)."""
    return conn.execute(update(outbox).where(outbox.c.status == "pending",
                                             outbox.c.lease_until.is_not(None))
                        .values(lease_until=None)).rowcount


def complete(conn: Connection, item_id: int, now: dt.datetime) -> None:
    conn.execute(update(outbox).where(outbox.c.id == item_id).values(
        status="done", done_at=iso(now), lease_until=None, attempts=outbox.c.attempts + 1))


def fail(conn: Connection, item: Item, now: dt.datetime, error: str, *, max_attempts: int,
         retryable: bool = True, base_seconds: float = 1.0, cap_seconds: float = 300.0) -> str:
    """Record a failure; schedule a retry or move to dead letters. Returns the new status."""
    attempts = item.attempts + 1
    _failed_at(conn, item.destination, now)
    if not retryable or attempts >= max_attempts:
        conn.execute(update(outbox).where(outbox.c.id == item.id).values(
            status="dead", attempts=attempts, lease_until=None, last_error=error[:2000]))
        return "dead"
    delay = min(cap_seconds, base_seconds * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)
    conn.execute(update(outbox).where(outbox.c.id == item.id).values(
        attempts=attempts, lease_until=None, last_error=error[:2000],
        next_attempt_at=iso(now + dt.timedelta(seconds=delay))))
    return "pending"


def depth(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
    return {status: count for status, count in rows}


def items(conn: Connection, *, status: str | None = None, limit: int = 100) -> list[dict]:
    """Operator view of the queue, newest first; payloads are not shown (they hold patient data)."""
    query = select(outbox.c.id, outbox.c.kind, outbox.c.destination, outbox.c.accession,
                   outbox.c.status, outbox.c.attempts, outbox.c.next_attempt_at,
                   outbox.c.last_error, outbox.c.created_at, outbox.c.done_at)
    if status:
        query = query.where(outbox.c.status == status)
    return [dict(r._mapping) for r in conn.execute(query.order_by(outbox.c.id.desc()).limit(limit))]


def retry(conn: Connection, item_id: int, now: dt.datetime) -> bool:
    """Put a dead (or waiting) item back at the head of its destination's line, due now."""
    got = conn.execute(update(outbox).where(
        outbox.c.id == item_id, outbox.c.status.in_(("dead", "pending"))).values(
        status="pending", attempts=0, next_attempt_at=iso(now), lease_until=None))
    return got.rowcount == 1


def discard(conn: Connection, item_id: int, reason: str, now: dt.datetime) -> bool:
    """Give up on an item on purpose (it stays, marked `discarded`, with the operator's reason)."""
    got = conn.execute(update(outbox).where(
        outbox.c.id == item_id, outbox.c.status.in_(("dead", "pending"))).values(
        status="discarded", done_at=iso(now), lease_until=None,
        last_error=f"discarded: {reason}"[:2000]))
    return got.rowcount == 1


def destinations(conn: Connection) -> dict[str, dict]:
    """Per destination: last success, pending count, oldest pending, dead letters, the error
    of what is failing now (`last_error`, "" once delivered), and the last failure even after
    a later success (`last_failure`: `at` and `error`, None if it never failed)."""
    out: dict[str, dict] = {}
    for row in conn.execute(select(
            outbox.c.destination, func.max(outbox.c.done_at).filter(outbox.c.status == "done"),
            func.count().filter(outbox.c.status == "pending"),
            func.min(outbox.c.created_at).filter(outbox.c.status == "pending"),
            func.count().filter(outbox.c.status == "dead")).group_by(outbox.c.destination)):
        out[row[0]] = {"last_success": row[1], "pending": row[2], "oldest_pending": row[3],
                       "dead": row[4], "last_error": "", "last_failure": None}
    for row in conn.execute(select(outbox.c.destination, outbox.c.last_error).where(
            outbox.c.status.in_(("pending", "dead")), outbox.c.last_error != "")
            .order_by(outbox.c.id)):
        out[row[0]]["last_error"] = row[1]
    # Items of one destination are attempted in id order, so its latest failure is on the
    # highest id that has an error (discarded items carry the operator's reason instead).
    latest = select(func.max(outbox.c.id)).where(
        outbox.c.last_error != "", outbox.c.status != "discarded").group_by(outbox.c.destination)
    errors = dict(conn.execute(select(outbox.c.destination, outbox.c.last_error)
                               .where(outbox.c.id.in_(latest))).all())
    stamps = dict(conn.execute(select(counters.c.name, counters.c.value).where(
        counters.c.name.like(f"{_FAILED}%"))).all())
    for name, entry in out.items():
        at = stamps.get(_failed_key(name))
        if at is not None or name in errors:
            entry["last_failure"] = {
                "at": iso(dt.datetime.fromtimestamp(at, dt.timezone.utc)) if at is not None
                else None, "error": errors.get(name, "")}
    return out


_FAILED = "fail:"


def _failed_key(destination: str) -> str:
    return (_FAILED + destination)[:50]


def _failed_at(conn: Connection, destination: str, now: dt.datetime) -> None:
    """Remember when `destination` last failed (epoch seconds, in `counters`)."""
    name, value = _failed_key(destination), int(now.timestamp())
    if conn.execute(update(counters).where(counters.c.name == name)
                    .values(value=value)).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(counters.insert().values(name=name, value=value))
    except IntegrityError:  # another worker wrote it first
        conn.execute(update(counters).where(counters.c.name == name).values(value=value))
