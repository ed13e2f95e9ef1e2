"""Idempotent DDL helpers for migrations.

Migration 0001 creates tables from the current `schema` metadata, so on a fresh database later
columns already exist when later migrations run; these helpers make such steps no-ops then.
"""

from sqlalchemy import inspect, text


def add_column(conn, table: str, column: str, ddl: str) -> None:
    """`ALTER TABLE table ADD COLUMN column ddl`, unless the column is already there."""
    if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}"))


def drop_column(conn, table: str, column: str) -> None:
    """`ALTER TABLE table DROP COLUMN column`, unless the column is already gone. SQLite
    (3.35 and later; Debian bookworm has 3.40) rebuilds the table itself, keeping its rows,
    constraints, indexes and the foreign keys that point at it; the column must be in no
    index or constraint."""
    if column in {c["name"] for c in inspect(conn).get_columns(table)}:
        conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
