"""Inbox: every HL7 message received, keyed by (sender, MSH-10), with the ACK we answered.

A repeated MSH-10 from the same sender gets the stored ACK again and changes nothing. A message
acknowledged once stored (`hl7.ack_mode = "storage"`) waits here as `pending` until it is
applied, in arrival order; then it is `done`, or `failed` with the reason in `outcome`.

The duplicate check, the insert and the applier's update are the hot path of every inbound
message: they go to the driver directly (`driver.execute`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from . import driver
from .schema import inbox

_STORED_ACK = "SELECT ack FROM inbox WHERE sender = ? AND control_id = ?"
_INSERT = ("INSERT INTO inbox (sender, control_id, message_type, received_at, raw, ack, ack_code,"
           " accession, state, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '')")
# PostgreSQL: the rows are locked until the applying transaction ends (committed `done` or
# `failed`, or rolled back when its process dies), and rows another transaction holds are
# skipped: a message is applied once. SQLite renders no FOR UPDATE (one writer at a time).
_PENDING = (select(inbox.c.id, inbox.c.raw, inbox.c.received_at, inbox.c.ack_code)
            .where(inbox.c.state == "pending").order_by(inbox.c.id).limit(bindparam("n"))
            .with_for_update(skip_locked=True))
_FINISH = "UPDATE inbox SET state = ?, outcome = ?, accession = ? WHERE id = ?"


@dataclass(frozen=True)
class Pending:
    id: int
    raw: bytes
    received_at: str
    ack_code: str


def stored_ack(conn: Connection, sender: str, control_id: str) -> bytes | None:
    row = driver.execute(conn, _STORED_ACK, (sender, control_id)).fetchone()
    return bytes(row[0]) if row is not None else None


def record(conn: Connection, *, sender: str, control_id: str, message_type: str, received_at: str,
           raw: bytes, ack: bytes, ack_code: str, accession: str | None,
           state: str = "done") -> None:
    driver.execute(conn, _INSERT, (sender, control_id, message_type, received_at, raw, ack,
                                   ack_code, accession, state))


def pending(conn: Connection, limit: int) -> list[Pending]:
    """Claim the oldest messages stored but not applied yet, in arrival order, for the rest
    of the caller's transaction (PostgreSQL: none another transaction has claimed)."""
    return [Pending(row.id, row.raw, row.received_at, row.ack_code)
            for row in conn.execute(_PENDING, {"n": limit})]


def finish(conn: Connection, row_id: int, state: str, *, accession: str | None,
           errors: list[dict] | None = None) -> None:
    """Mark a pending message applied (`done`) or not (`failed`, with its errors)."""
    driver.execute(conn, _FINISH, (state, json.dumps(errors) if errors else "", accession,
                                   row_id))


def backlog(conn: Connection) -> tuple[int, str | None]:
    """(messages waiting to be applied, received_at of the oldest) for health reports."""
    row = conn.execute(select(func.count(), func.min(inbox.c.received_at))
                       .where(inbox.c.state == "pending")).one()
    return row[0], row[1]
