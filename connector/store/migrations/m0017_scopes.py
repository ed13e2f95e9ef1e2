"""0017: the case's requesting service (ORC-17.1, else PV1-3.1) and the FACILITY/SERVICE
scopes of users and API tokens. Rows from before keep "" (every case), as they reached
everything until now."""

from .ops import add_column


def upgrade(conn) -> None:
    add_column(conn, "cases", "service", "VARCHAR(40) NOT NULL DEFAULT ''")
    add_column(conn, "users", "scopes", "TEXT NOT NULL DEFAULT ''")
    add_column(conn, "api_tokens", "scopes", "TEXT NOT NULL DEFAULT ''")
