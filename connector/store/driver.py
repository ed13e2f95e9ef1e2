"""Statements sent straight to the database driver, inside the caller's SQLAlchemy transaction.

For the few statements every inbound message runs (inbox duplicate check and insert, audit
row), SQLAlchemy's statement machinery costs more than SQLite itself. They are written once
with `?` placeholders and rewritten for drivers that use `%s`; driver errors are raised as
SQLAlchemy's (IntegrityError, OperationalError ...), as any other statement's.
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError


def execute(conn: Connection, sql: str, params: tuple):
    """Run `sql` on the driver's connection under `conn`; returns the driver's cursor."""
    dialect = conn.dialect
    if dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(sql, params)
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error) from exc
    return cursor


def insert_sql(table: Table, columns: tuple[str, ...], *, returning: str = "") -> str:
    """`INSERT INTO table (columns) VALUES (?, ...)`, checked against the table's columns so a
    renamed column fails at import, not at the first order."""
    unknown = [name for name in columns if name not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column {', '.join(unknown)}")
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)})"
           f" VALUES ({', '.join('?' * len(columns))})")
    return f"{sql} RETURNING {returning}" if returning else sql
