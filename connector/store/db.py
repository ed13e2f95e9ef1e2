"""Engine creation and migrations. Engines are built by the composition root only."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import sqlcipher3
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from ..domain.errors import StoreUnavailable
from . import audit, schema
from .files import make_folder
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


def make_engine(url: str, audit_key: bytes, db_key: bytes | None = None) -> Engine:
    """The engine of `open_store` (store tests and migrations work on it directly)."""
    return engine_and_gate(url, audit_key, db_key)[0]


def engine_and_gate(url: str, audit_key: bytes,
                    db_key: bytes | None = None) -> tuple[Engine, WriterGate | None]:
    """The audit rows are chained with `audit_key` (store/audit.py). SQLite gets WAL, a busy
    timeout, foreign keys and a `WriterGate`; its folder is created if missing (mode 0700) and
    its file mode 0600. With `db_key` (32 bytes) the SQLite file is encrypted whole by
    SQLCipher, keyed first thing on each connection. PostgreSQL needs no gate (row locks,
    several writers) and takes no key (the server encrypts, if the site set it up)."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        make_folder(path.parent)
        if not path.exists():  # SQLite gives its -wal and -shm files the database's mode
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if db_key is None:
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        else:
            engine = create_engine(url, module=sqlcipher3,
                                   creator=lambda: _keyed_connection(path, db_key))
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


def _keyed_connection(path: Path, db_key: bytes):
    """A SQLCipher connection to `path`, keyed before anything reads the file (SQLAlchemy's
    own first queries included). The raw key skips SQLCipher's per-connection key derivation
    (bootstrap.database_key derives it once); a wrong key or a plain file fails here, clearly."""
    conn = sqlcipher3.connect(str(path), timeout=30, check_same_thread=False)
    conn.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is our one-line error, not its
    conn.execute(f"PRAGMA key = \"x'{db_key.hex()}'\"")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError:
        conn.close()
        raise StoreUnavailable("the database does not open with the configured key",
                               where=str(path),
                               hint="a plain database is encrypted with `telederm keys "
                                    "encrypt-store`; else give the key it was made with") from None
    return conn


def encrypt_sqlite(path: Path, db_key: bytes) -> None:
    """Encrypt the plain SQLite database at `path` in place with `db_key` (SQLCipher's
    `sqlcipher_export` into a new file that then replaces it). Nothing may have it open:
    the connector is stopped first. Refuses a file that is not a plain database."""
    encrypted = path.with_name(path.name + ".encrypting")
    encrypted.unlink(missing_ok=True)
    conn = sqlcipher3.connect(str(path))
    try:
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlcipher3.DatabaseError:
            raise StoreUnavailable("the database is not a plain SQLite file (already "
                                   "encrypted?)", where=str(path)) from None
        os.close(os.open(encrypted, os.O_WRONLY | os.O_CREAT, 0o600))
        conn.execute(f"ATTACH DATABASE ? AS encrypted KEY \"x'{db_key.hex()}'\"",
                     (str(encrypted),))
        conn.execute("SELECT sqlcipher_export('encrypted')")
        conn.execute(f"PRAGMA encrypted.user_version = {int(version)}")
        conn.execute("DETACH DATABASE encrypted")
    finally:
        conn.close()
    with open(encrypted, "rb+") as fh:
        os.fsync(fh.fileno())
    for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    os.replace(encrypted, path)


def backup_sqlite(path: Path, db_key: bytes, target: Path) -> None:
    """An online copy of the encrypted store at `path` into the new file `target`, encrypted
    with the same key (SQLite's backup API, consistent while the connector runs; plain
    `sqlite3 .backup` cannot read the store, and a `cp` of a WAL database is not a copy)."""
    if target.exists():
        raise StoreUnavailable("the backup file exists already", where=str(target),
                               hint="give a new file name")
    make_folder(target.parent)
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    source, copy = _keyed_connection(path, db_key), _keyed_connection(target, db_key)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()


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
