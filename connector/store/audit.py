"""Audit trail: who did what, when, on which case; each row chains the previous row's hash.

Details never hold patient names or identifiers: accession numbers, message ids and codes only.
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select
from sqlalchemy.engine import Connection

from .schema import audit

GENESIS = "0" * 64


def _digest(prev: str, at: str, actor: str, action: str, accession: str | None, detail: str) -> str:
    body = json.dumps([prev, at, actor, action, accession or "", detail], ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


# Built once: every inbound message and every step of a case appends a row.
_LAST_HASH = select(audit.c.hash).order_by(audit.c.id.desc()).limit(1)
_INSERT = audit.insert()


def append(conn: Connection, *, at: str, actor: str, action: str, accession: str | None = None,
           detail: dict | None = None) -> None:
    """Add one row in the caller's transaction, so the audit commits with the change it records."""
    prev = conn.execute(_LAST_HASH).scalar() or GENESIS
    text = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False)
    conn.execute(_INSERT, {"at": at, "actor": actor, "action": action, "accession": accession,
                           "detail": text, "prev_hash": prev,
                           "hash": _digest(prev, at, actor, action, accession, text)})


def verify(conn: Connection) -> tuple[int, int | None]:
    """Walk the chain; return (rows checked, id of the first broken row or None)."""
    prev = GENESIS
    count = 0
    for row in conn.execute(select(audit).order_by(audit.c.id)):
        count += 1
        expected = _digest(prev, row.at, row.actor, row.action, row.accession, row.detail)
        if row.prev_hash != prev or row.hash != expected:
            return count, row.id
        prev = row.hash
    return count, None
