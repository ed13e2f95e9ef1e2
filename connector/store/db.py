"""Engine creation and migrations. Engines are built by the composition root only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from ..domain.errors import StoreUnavailable
from . import schema
from .migrations import MIGRATIONS


def make_engine(url: str) -> Engine:
    """SQLite gets WAL, a busy timeout and foreign keys; its folder is created if missing."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            # Let SQLAlchemy, not the driver, open transactions (else a SAVEPOINT opened first
            # would commit on release), and open them IMMEDIATE so that concurrent writers
            # wait for the lock instead of failing on a stale read snapshot.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> int:
    """Apply pending migrations; return the schema version now in force."""
    try:
        with engine.begin() as conn:
            schema.schema_version.create(conn, checkfirst=True)
            done = {row.version for row in conn.execute(select(schema.schema_version.c.version))}
            for version, name, upgrade in MIGRATIONS:
                if version in done:
                    continue
                upgrade(conn)
                conn.execute(schema.schema_version.insert().values(
                    version=version, name=name,
                    applied_at=dt.datetime.now(dt.timezone.utc).isoformat()))
    except OperationalError as exc:
        raise StoreUnavailable(f"cannot open the database: {exc.orig}", where=str(engine.url),
                               hint="check database.url and that its folder is writable") from None
    return max(v for v, _, _ in MIGRATIONS)
