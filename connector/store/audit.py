"""Audit trail: who did what, when, on which case; each row chains the previous row's hash.

The hash is an HMAC keyed with the site's audit key, which is never in the database (a file
or the environment, see connector/audit.py): someone who can write the table but not read the
key cannot recompute a chain over edited rows. What the table alone cannot show (its last
rows deleted, all of it emptied) is caught by the signed checkpoints of connector/audit.py.

Details never hold patient names or identifiers: accession numbers, message ids and codes only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import weakref

from sqlalchemy import event, select
from sqlalchemy.engine import Connection, Engine

from . import driver, outbox
from .schema import audit

GENESIS = "0" * 64


# The audit key of each engine's database, given by `track` (the composition root's).
_KEYS: "weakref.WeakKeyDictionary[Engine, bytes]" = weakref.WeakKeyDictionary()


def _digest(key: bytes, prev: str, at: str, actor: str, action: str, accession: str | None,
            detail: str) -> str:
    body = json.dumps([prev, at, actor, action, accession or "", detail], ensure_ascii=False)
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def _key(conn: Connection) -> bytes:
    return _KEYS[conn.engine]


# Every inbound message and every step of a case appends a row: straight to the driver.
# Rows chain in commit order: before reading the last hash, a transaction takes the chain, a
# row it updates and so locks until it ends (on PostgreSQL, writers run side by side; SQLite's
# one writer holds it anyway).
_TAKE_CHAIN = ("INSERT INTO counters (name, value) VALUES ('audit.chain', 1) ON CONFLICT (name)"
               " DO UPDATE SET value = counters.value + 1")
_LAST_HASH = "SELECT hash FROM audit ORDER BY id DESC LIMIT 1"
_INSERT = ("INSERT INTO audit (at, actor, action, accession, detail, prev_hash, hash)"
           " VALUES (?, ?, ?, ?, ?, ?, ?)")
# The last hash written by this connection's current transaction, so the next row need not
# read it back; forgotten when the transaction ends or a savepoint rolls back (`track`).
_LAST = "audit.last_hash"


def track(engine: Engine, key: bytes) -> None:
    """Chain this engine's rows with `key`, and keep each connection's remembered last hash
    true to what its transaction holds."""
    if not key:
        raise ValueError("the audit key is empty")
    _KEYS[engine] = key

    def forget(conn, *_args) -> None:
        conn.info.pop(_LAST, None)

    for name in ("begin", "commit", "rollback", "rollback_savepoint"):
        event.listen(engine, name, forget)


ATNA_KIND = "atna.send"  # the outbox kind of an audit event bound for the ATNA repository
ATNA_LINE = "atna"       # ... and its outbox destination ([audit] syslog)


def append(conn: Connection, *, at: str, actor: str, action: str, accession: str | None = None,
           detail: dict | None = None, forward_to: str = "") -> None:
    """Add one row in the caller's transaction, so the audit commits with the change it records;
    with `forward_to` (an outbox destination), the event is also queued there, in the same
    transaction, keyed by its hash (connector/atna/)."""
    prev = conn.info.get(_LAST)
    if prev is None:
        driver.execute(conn, _TAKE_CHAIN, ())
        row = driver.execute(conn, _LAST_HASH, ()).fetchone()
        prev = row[0] if row is not None else GENESIS
    text = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False)
    digest = _digest(_key(conn), prev, at, actor, action, accession, text)
    driver.execute(conn, _INSERT, (at, actor, action, accession, text, prev, digest))
    conn.info[_LAST] = digest
    if forward_to:
        event = {"at": at, "actor": actor, "action": action, "accession": accession or "",
                 "detail": detail or {}}
        outbox.enqueue(conn, kind=ATNA_KIND, destination=forward_to, key=f"atna:{digest}",
                       payload=json.dumps(event, ensure_ascii=False).encode("utf-8"),
                       accession=accession, now=at)


def verify(conn: Connection) -> tuple[int, int | None]:
    """Walk the chain; return (rows checked, id of the first broken row or None)."""
    key = _key(conn)
    prev = GENESIS
    count = 0
    for row in conn.execute(select(audit).order_by(audit.c.id)):
        count += 1
        expected = _digest(key, prev, row.at, row.actor, row.action, row.accession, row.detail)
        if row.prev_hash != prev or not hmac.compare_digest(row.hash, expected):
            return count, row.id
        prev = row.hash
    return count, None


def head(conn: Connection) -> tuple[int, str] | None:
    """The last row's id and hash (what a checkpoint records), None while the trail is empty."""
    row = conn.execute(select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc())
                       .limit(1)).first()
    return (row.id, row.hash) if row is not None else None


def hash_of(conn: Connection, row_id: int) -> str | None:
    return conn.execute(select(audit.c.hash).where(audit.c.id == row_id)).scalar()


def listing(conn: Connection, *, accession: str | None = None, since: str | None = None,
            limit: int = 1000) -> list[dict]:
    """Rows oldest first, of one case and/or from an ISO instant on (`at` sorts as text)."""
    query = select(audit.c.id, audit.c.at, audit.c.actor, audit.c.action, audit.c.accession,
                   audit.c.detail).order_by(audit.c.id).limit(limit)
    if accession:
        query = query.where(audit.c.accession == accession)
    if since:
        query = query.where(audit.c.at >= since)
    return [{**row, "detail": json.loads(row["detail"])}
            for row in conn.execute(query).mappings()]


def newest_at(conn: Connection) -> str | None:
    """When the last row was written (the store's format), or None for an empty trail: a
    clock that is behind it has been set back."""
    return conn.execute(select(audit.c.at).order_by(audit.c.id.desc()).limit(1)).scalar()
