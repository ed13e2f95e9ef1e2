"""The in-person follow-ups a report asked of the scheduling systems (`[[destinations]]` role
"scheduling"): one row per destination and message, whose status follows that system's
answer (requested -> acknowledged on AA/CA, refused on AE/AR/CE/CR)."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from .schema import follow_ups

STATUSES = ("requested", "acknowledged", "refused")


def insert(conn: Connection, *, accession: str, version: int, destination: str,
           control_id: str, message_type: str, urgency: str, now: str) -> None:
    conn.execute(follow_ups.insert().values(
        accession=accession, version=version, destination=destination, control_id=control_id,
        message_type=message_type, urgency=urgency, status="requested", reason="",
        requested_at=now, updated_at=now))


def mark(conn: Connection, destination: str, control_id: str, status: str, *, now: str,
         reason: str = "") -> str:
    """Set the status of the follow-up sent to `destination` as `control_id`; returns its
    accession, or "" when no follow-up went there under this MSH-10 (any other message)."""
    if status not in STATUSES:
        raise ValueError(f"follow-up status must be one of {STATUSES}, got {status!r}")
    match = (follow_ups.c.destination == destination, follow_ups.c.control_id == control_id)
    row = conn.execute(select(follow_ups.c.accession).where(*match)).first()
    if row is None:
        return ""
    conn.execute(update(follow_ups).where(*match).values(
        status=status, reason=reason[:200], updated_at=now))
    return row.accession


def of_case(conn: Connection, accession: str) -> list[dict]:
    """The case's follow-up requests, oldest first."""
    return [dict(r._mapping) for r in conn.execute(
        select(follow_ups).where(follow_ups.c.accession == accession)
        .order_by(follow_ups.c.id))]


def counts(conn: Connection, *, start: str, end: str) -> dict:
    """The follow-ups asked in [start, end) (stored timestamps), per status and per urgency."""
    rows = conn.execute(select(follow_ups.c.status, follow_ups.c.urgency, func.count())
                        .where(follow_ups.c.requested_at >= start,
                               follow_ups.c.requested_at < end)
                        .group_by(follow_ups.c.status, follow_ups.c.urgency)).all()
    out = {"total": sum(n for *_, n in rows), "by_status": dict.fromkeys(STATUSES, 0),
           "by_urgency": {"routine": 0, "urgent": 0}}
    for status, urgency, n in rows:
        out["by_status"][status] += n
        out["by_urgency"][urgency] = out["by_urgency"].get(urgency, 0) + n
    return out
