"""0006: inbox rows carry their processing state, for messages acknowledged once stored
(`hl7.ack_mode = "storage"`) and processed after: pending -> done | failed (with the reason)."""

from .ops import add_column


def upgrade(conn) -> None:
    add_column(conn, "inbox", "state", "VARCHAR(10) NOT NULL DEFAULT 'done'")
    add_column(conn, "inbox", "outcome", "TEXT NOT NULL DEFAULT ''")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_inbox_pending ON inbox (id) "
                         "WHERE state = 'pending'")
