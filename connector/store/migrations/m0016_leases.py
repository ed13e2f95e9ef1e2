"""0016: `leases`, the work one process at a time owns when several share a PostgreSQL store
(the Orthanc Changes Log cursor, the routing timers)."""

from .. import schema


def upgrade(conn) -> None:
    schema.leases.create(conn, checkfirst=True)
