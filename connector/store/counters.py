"""Named integer values kept in the store (e.g. the Orthanc Changes Log cursor, the accession
sequence, the series numbers of a study), so that a restart resumes where the last run left."""

from __future__ import annotations

import hashlib

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from . import driver
from .schema import counters

# One statement allocates the next value: UPSERT ... RETURNING (SQLite >= 3.35, PostgreSQL).
_NEXT_VALUE = ("INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name)"
               " DO UPDATE SET value = counters.value + 1 RETURNING value")


def read(conn: Connection, name: str) -> int:
    """The value of `name`, 0 when it was never written."""
    return conn.execute(select(counters.c.value).where(counters.c.name == name)).scalar() or 0


def write(conn: Connection, name: str, value: int) -> None:
    if conn.execute(update(counters).where(counters.c.name == name)
                    .values(value=value)).rowcount == 0:
        conn.execute(counters.insert().values(name=name, value=value))


def next_value(conn: Connection, name: str) -> int:
    """Allocate the next value of `name` (1 the first time) inside the caller's transaction."""
    (value,) = driver.execute(conn, _NEXT_VALUE, (name,)).fetchone()
    return value


def series_number(conn: Connection, accession: str, series_uid: str) -> int:
    """The Series Number of a series of the case's study: the next one of the case the first
    time the series is seen, the same one after (so numbers are distinct and stable)."""
    # the name holds a digest: a Series Instance UID (up to 64 characters) is longer than a name
    name = "series:" + hashlib.sha256(series_uid.encode()).hexdigest()[:40]
    number = read(conn, name)
    if not number:
        number = next_value(conn, f"series-count:{accession}")
        write(conn, name, number)
    return number
