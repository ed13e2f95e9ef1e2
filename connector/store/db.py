"""Engine creation and migrations. Engines are built by the composition root only."""

from __future__ import annotations

import datetime as dt
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from ..domain.errors import StoreUnavailable
from . import audit, schema
from .migrations import MIGRATIONS


class WriterGate:
    """One write transaction at a time in this process, handed over by a lock.

    SQLite has one writer; left to itself, a writer that finds the database busy sleeps and
    retries (1, 2, 5 ... up to 100 ms between tries), which is what made ACK latencies jump
    under load. Here the next writer is woken the moment the previous one commits. A thread
    that answers a peer (the HL7 intake, marked with `urgent()`) goes first: background
    writers let it pass before they start, and long ones ask `urgent_waiting()` between steps
    to commit early. Other processes (the CLI) still meet SQLite's own busy handling.
    """

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._lock = threading.Lock()
        self._owner: int | None = None  # id() of the DBAPI connection holding the gate
        self._urgent = 0
        self._last_urgent = float("-inf")
        self._count = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def urgent(self):
        """Mark this thread's transactions as answering a peer for the duration."""
        self._local.urgent = True
        try:
            yield
        finally:
            self._local.urgent = False

    def urgent_waiting(self) -> bool:
        return self._urgent > 0

    def urgent_within(self, seconds: float) -> bool:
        """Whether an urgent writer started a transaction in the last `seconds`: a stream of
        peers is being answered, and work that can wait had better wait."""
        return time.monotonic() - self._last_urgent < seconds

    def acquire(self, dbapi_conn) -> None:
        urgent = getattr(self._local, "urgent", False)
        if urgent:
            self._last_urgent = time.monotonic()
            with self._count:
                self._urgent += 1
        else:
            deadline = time.monotonic() + self.timeout
            while self._urgent and time.monotonic() < deadline:
                time.sleep(0.0005)
        try:
            if not self._lock.acquire(timeout=self.timeout):
                raise StoreUnavailable("the database stayed busy", where="database",
                                       hint="a long transaction holds it; retry")
        finally:
            if urgent:
                with self._count:
                    self._urgent -= 1
        self._owner = id(_raw(dbapi_conn))

    def release(self, dbapi_conn) -> None:
        if self._owner == id(_raw(dbapi_conn)):
            self._owner = None
            self._lock.release()


def _raw(connection):
    """The driver's connection, whether given it or SQLAlchemy's pool wrapper around it."""
    return getattr(connection, "dbapi_connection", connection)


def make_engine(url: str, audit_key: bytes) -> Engine:
    """The engine of `open_store` (store tests and migrations work on it directly)."""
    return engine_and_gate(url, audit_key)[0]


def engine_and_gate(url: str, audit_key: bytes) -> tuple[Engine, WriterGate | None]:
    """The audit rows are chained with `audit_key` (store/audit.py). SQLite gets WAL, a busy timeout, foreign keys and a `WriterGate`; its folder is created
    if missing. PostgreSQL needs no gate (row locks, several writers)."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        gate = WriterGate(timeout=30)

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
            dbapi_conn = conn.connection.dbapi_connection
            gate.acquire(dbapi_conn)
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                gate.release(dbapi_conn)
                raise

        _release_after(engine, gate)
        _plain_savepoints(engine)
        audit.track(engine, audit_key)
        return engine, gate
    engine = create_engine(url, pool_pre_ping=True)
    audit.track(engine, audit_key)
    return engine, None


def _release_after(engine: Engine, gate: WriterGate) -> None:
    """Open the gate once COMMIT or ROLLBACK has run (SQLAlchemy's events fire before)."""
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_conn):
        try:
            commit(dbapi_conn)
        finally:
            gate.release(dbapi_conn)

    def do_rollback(dbapi_conn):
        try:
            rollback(dbapi_conn)
        finally:
            gate.release(dbapi_conn)

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback


def _plain_savepoints(engine: Engine) -> None:
    """SAVEPOINT statements as plain text: SQLAlchemy compiles each one afresh (its name is
    new every time), and every inbound message is applied in a savepoint of its own."""
    dialect = engine.dialect

    def run(connection, sql: str) -> None:
        connection.connection.driver_connection.execute(sql)

    dialect.do_savepoint = lambda conn, name: run(conn, f"SAVEPOINT {name}")
    dialect.do_release_savepoint = lambda conn, name: run(conn, f"RELEASE SAVEPOINT {name}")
    dialect.do_rollback_to_savepoint = lambda conn, name: run(conn,
                                                              f"ROLLBACK TO SAVEPOINT {name}")


_MIGRATING = 0x74656c6564657201  # the advisory lock key of `migrate` ("telederm", 1)


def migrate(engine: Engine) -> int:
    """Apply pending migrations; return the schema version now in force."""
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Processes starting together on one database (`serve --workers N`, nodes)
                # migrate one after the other: the next sees the versions the first applied.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATING})
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
