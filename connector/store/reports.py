"""The report versions of cases: text, conduct, specialist, signature, the PDF as signed."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from .schema import reports


def insert(conn: Connection, **values) -> None:
    conn.execute(reports.insert().values(**values))


def count(conn: Connection, accession: str) -> int:
    """How many versions the case has (the next one is count + 1)."""
    return conn.execute(select(func.count()).select_from(reports).where(
        reports.c.accession == accession)).scalar()


def latest(conn: Connection, accession: str):
    """The case's latest version (a row of every column), or None."""
    return conn.execute(select(reports).where(reports.c.accession == accession)
                        .order_by(reports.c.version.desc())).first()


def finals(conn: Connection, accession: str) -> int:
    """How many final (status F) versions the case has had."""
    return conn.execute(select(func.count()).select_from(reports).where(
        reports.c.accession == accession, reports.c.status == "F")).scalar()


def specialist_name(conn: Connection, accession: str, specialist_id: str) -> tuple[str, str] | None:
    """(family, given) of a specialist who signed a version of the case, or None."""
    row = conn.execute(select(reports.c.specialist_family, reports.c.specialist_given)
                       .where(reports.c.accession == accession,
                              reports.c.specialist_id == specialist_id)).first()
    return tuple(row) if row else None


def accession_of(conn: Connection, sop_uid: str) -> str | None:
    """The case of the report version whose Encapsulated PDF has this SOP Instance UID; None
    when no report has it (e.g. an image's)."""
    return conn.execute(select(reports.c.accession).where(reports.c.sop_uid == sop_uid)).scalar()


def pdf(conn: Connection, accession: str, version: int | None = None) -> tuple[int, bytes] | None:
    """(version, the PDF as signed) of a version of the case (the latest when `version` is
    None), or None."""
    query = select(reports.c.version, reports.c.pdf).where(reports.c.accession == accession)
    query = (query.where(reports.c.version == version) if version is not None
             else query.order_by(reports.c.version.desc()))
    row = conn.execute(query).first()
    return (row.version, row.pdf) if row else None
