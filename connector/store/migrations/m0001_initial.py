"""0001: the first schema (cases, patients, images, reports, charges, inbox, outbox, audit)."""

from .. import schema

TABLES = ("counters", "patients", "cases", "images", "reports", "charges", "inbox", "outbox", "audit")


def upgrade(conn) -> None:
    schema.metadata.create_all(conn, tables=[schema.metadata.tables[t] for t in TABLES])
