"""What each hospital PACS acknowledged (`[[dicom.forward]]`): one row per destination and SOP
Instance UID, written as each C-STORE answer comes in, so that a retry after a partial send
(the PACS went away in the middle) offers only the objects not yet taken."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .schema import forwarded


def acknowledged(conn: Connection, destination: str, accession: str) -> set[str]:
    """SOP Instance UIDs of the case's objects `destination` has taken."""
    return {uid for (uid,) in conn.execute(select(forwarded.c.sop_uid).where(
        forwarded.c.destination == destination, forwarded.c.accession == accession))}


def record(conn: Connection, *, destination: str, accession: str, sop_uid: str,
           sop_class_uid: str, transfer_syntax_uid: str, status: int, at: str) -> bool:
    """Remember that `destination` took the object; False when it was already recorded."""
    try:
        with conn.begin_nested():
            conn.execute(forwarded.insert().values(
                destination=destination, accession=accession, sop_uid=sop_uid,
                sop_class_uid=sop_class_uid, transfer_syntax_uid=transfer_syntax_uid,
                status=status, at=at))
    except IntegrityError:
        return False
    return True
