"""0008: the care network. Cases keep their pool, assignee, deadline, first answer time and
escalation count; `timers` holds reminders and escalations the worker fires; `absences` the
members' absences entered through the admin API."""

from sqlalchemy import text

from .. import schema
from .ops import add_column

_CASE_COLUMNS = (
    ("pool", "VARCHAR(40) NOT NULL DEFAULT ''"),
    ("assigned_to", "VARCHAR(64) NOT NULL DEFAULT ''"),
    ("due_at", "VARCHAR(32) NOT NULL DEFAULT ''"),
    ("answered_at", "VARCHAR(32) NOT NULL DEFAULT ''"),
    ("escalations", "INTEGER NOT NULL DEFAULT 0"),
)


def upgrade(conn) -> None:
    for column, ddl in _CASE_COLUMNS:
        add_column(conn, "cases", column, ddl)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_cases_assignee ON cases "
                      "(assigned_to, status)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_cases_due ON cases (due_at)"))
    schema.metadata.create_all(conn, tables=[schema.timers, schema.absences], checkfirst=True)
