"""0012: the in-person follow-ups requested from scheduling systems (`follow_ups`)."""

from ..schema import follow_ups


def upgrade(conn) -> None:
    follow_ups.create(conn, checkfirst=True)
    for index in follow_ups.indexes:
        index.create(conn, checkfirst=True)
