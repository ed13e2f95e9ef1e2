"""The images of cases: one row per DICOM object we made or received, with its file in the
data folder, its quality flags and when the archive took it."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from .schema import images


def count(conn: Connection, accession: str) -> int:
    """How many images the case has (the next one is number count + 1)."""
    return conn.execute(select(func.count()).select_from(images).where(
        images.c.accession == accession)).scalar()


def insert(conn: Connection, **values) -> None:
    conn.execute(images.insert().values(**values))


def find(conn: Connection, sop_uid: str, accession: str | None = None):
    """The row (accession, kind, quality) of an image by SOP Instance UID, in `accession`
    only when given; None when there is none."""
    query = select(images.c.accession, images.c.kind, images.c.quality).where(
        images.c.sop_uid == sop_uid)
    if accession is not None:
        query = query.where(images.c.accession == accession)
    return conn.execute(query).first()


def waiting(conn: Connection, accession: str) -> int:
    """How many of the case's images the archive has not taken yet."""
    return conn.execute(select(func.count()).select_from(images).where(
        images.c.accession == accession, images.c.archived_at.is_(None))).scalar()


def mark_archived(conn: Connection, path: str, at: str) -> None:
    conn.execute(update(images).where(images.c.path == path).values(archived_at=at))


def files(conn: Connection, accession: str) -> list[str]:
    """The stored DICOM file of each image of the case, in the order they were received."""
    return [r.path for r in conn.execute(select(images.c.path).where(
        images.c.accession == accession).order_by(images.c.id))]


def references(conn: Connection, accession: str) -> list[tuple[str, str]]:
    """(SOP Class UID, SOP Instance UID) of each image of the case, for the report's
    references to the images it answers."""
    return [(r.sop_class_uid, r.sop_uid) for r in conn.execute(
        select(images.c.sop_class_uid, images.c.sop_uid).where(images.c.accession == accession))]
