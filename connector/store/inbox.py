"""Inbox: every HL7 message received, keyed by (sender, MSH-10), with the ACK we answered.

A repeated MSH-10 from the same sender gets the stored ACK again and changes nothing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from .schema import inbox


def stored_ack(conn: Connection, sender: str, control_id: str) -> bytes | None:
    return conn.execute(select(inbox.c.ack).where(
        inbox.c.sender == sender, inbox.c.control_id == control_id)).scalar()


def record(conn: Connection, *, sender: str, control_id: str, message_type: str, received_at: str,
           raw: bytes, ack: bytes, ack_code: str, accession: str | None) -> None:
    conn.execute(inbox.insert().values(
        sender=sender, control_id=control_id, message_type=message_type, received_at=received_at,
        raw=raw, ack=ack, ack_code=ack_code, accession=accession))
