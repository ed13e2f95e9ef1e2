"""Named integer values kept in the store (e.g. the Orthanc Changes Log cursor), so that a
restart resumes where the last run left."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from .schema import counters


def read(conn: Connection, name: str) -> int:
    """The value of `name`, 0 when it was never written."""
    return conn.execute(select(counters.c.value).where(counters.c.name == name)).scalar() or 0


def write(conn: Connection, name: str, value: int) -> None:
    if conn.execute(update(counters).where(counters.c.name == name)
                    .values(value=value)).rowcount == 0:
        conn.execute(counters.insert().values(name=name, value=value))
