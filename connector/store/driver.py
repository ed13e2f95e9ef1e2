"""Statements sent straight to the database driver, inside the caller's SQLAlchemy transaction.

For the few statements every inbound message runs (inbox duplicate check and insert, audit
row), SQLAlchemy's statement machinery costs more than SQLite itself. They are written once
with `?` placeholders and rewritten for drivers that use `%s`; driver errors are raised as
SQLAlchemy's (IntegrityError, OperationalError ...), as any other statement's.
"""

from __future__ import annotations

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
