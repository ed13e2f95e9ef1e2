"""0007: cases keep the requested procedure's label (OBR-4.2), written as the StudyDescription
of every object of the case's study."""

from .ops import add_column


def upgrade(conn) -> None:
    add_column(conn, "cases", "procedure", "VARCHAR(64) NOT NULL DEFAULT ''")
