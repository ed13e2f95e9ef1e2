"""Work that one process at a time does when several share a PostgreSQL store.

Two engines' features, no home-made lock:
- `hold`: a lease row (`leases`: name, owner, expires_at), for work that spans several
  transactions and calls outside the database (following Orthanc's Changes Log, firing the
  routing timers). The holder renews it on every pass; another process takes it only once it
  has expired, so a holder SIGKILLed loses it after `seconds`. `release` gives it up at a
  clean stop, for the next process to take at once.
- `exclusive`: a PostgreSQL advisory lock held by the caller's transaction
  (`pg_try_advisory_xact_lock`), for work done within one transaction (applying the stored
  HL7 messages in arrival order): it ends with the transaction, or with the connection when
  the process dies.

On SQLite one process serves the store (its writer gate is per process): both are held at
once, and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..domain.moment import iso
from .schema import leases

_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


def _shared(conn: Connection) -> bool:
    """Whether several processes may share this store (PostgreSQL)."""
    return conn.dialect.name != "sqlite"


def hold(conn: Connection, name: str, owner: str, now: dt.datetime, seconds: float) -> bool:
    """Take or renew the lease `name` for `owner` until `now + seconds`; False when another
    owner holds it and it has not expired."""
    if not _shared(conn):
        return True
    now_s, until = iso(now), iso(now + dt.timedelta(seconds=seconds))
    # Under READ COMMITTED, two processes taking the same expired lease: the second one's
    # UPDATE waits for the first one's row lock, then sees the new owner and matches nothing.
    if conn.execute(update(leases).where(
            leases.c.name == name,
            (leases.c.owner == owner) | (leases.c.expires_at < now_s))
            .values(owner=owner, expires_at=until, renewed_at=now_s)).rowcount:
        return True
    try:
        with conn.begin_nested():
            conn.execute(leases.insert().values(name=name, owner=owner, expires_at=until,
                                                renewed_at=now_s))
    except IntegrityError:  # held by another owner (or taken by one just now)
        return False
    return True


def release(conn: Connection, name: str, owner: str) -> bool:
    """Give the lease up (a clean stop), if `owner` still holds it."""
    if not _shared(conn):
        return False
    return conn.execute(delete(leases).where(leases.c.name == name,
                                             leases.c.owner == owner)).rowcount == 1


def holders(conn: Connection) -> list[dict]:
    """Every lease: name, owner, expires_at, renewed_at (for operators)."""
    return [dict(r._mapping) for r in conn.execute(select(leases).order_by(leases.c.name))]


def exclusive(conn: Connection, name: str) -> bool:
    """Try to hold `name` for the rest of the caller's transaction; False when another
    transaction holds it (never waits)."""
    if not _shared(conn):
        return True
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                         signed=True)
    return bool(conn.execute(_TRY_LOCK, {"key": key}).scalar())
