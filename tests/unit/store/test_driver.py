"""Statements sent straight to the driver: SQL built from the tables, driver errors raised as
SQLAlchemy's (callers catch IntegrityError whichever way a statement was sent)."""

import pytest
from sqlalchemy.exc import IntegrityError

from connector.store import driver
from connector.store.schema import counters


def test_insert_sql_lists_the_columns_and_returning_when_given_table_columns():
    sql = driver.insert_sql(counters, ("name", "value"), returning="value")
    assert sql == "INSERT INTO counters (name, value) VALUES (?, ?) RETURNING value"


def test_insert_sql_raises_naming_the_column_when_the_table_has_no_such_column():
    with pytest.raises(ValueError, match="counters has no column valeur"):
        driver.insert_sql(counters, ("name", "valeur"))


def test_execute_raises_integrity_error_when_a_unique_key_is_repeated(engine):
    sql = driver.insert_sql(counters, ("name", "value"))
    with engine.connect() as conn, conn.begin():
        driver.execute(conn, sql, ("seq", 1))
        with pytest.raises(IntegrityError):
            driver.execute(conn, sql, ("seq", 2))


def test_execute_returns_rows_of_the_callers_transaction_when_reading_back(engine):
    with engine.connect() as conn, conn.begin():
        driver.execute(conn, driver.insert_sql(counters, ("name", "value")), ("seq", 7))
        assert driver.execute(conn, "SELECT value FROM counters WHERE name = ?",
                              ("seq",)).fetchone() == (7,)
