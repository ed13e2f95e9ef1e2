"""The unit of work as channels meet it: a database that cannot be used is StoreUnavailable."""

import datetime as dt

import pytest

from connector.domain.errors import StoreUnavailable
from connector.domain.moment import Moment
from connector.store.uow import Store
from tests.support.store_samples import TEST_AUDIT_KEY


def test_unit_and_reading_raise_store_unavailable_when_the_database_cannot_be_opened(tmp_path):
    folder = tmp_path / "db-is-a-folder"
    folder.mkdir()
    store = Store.open(f"sqlite:///{folder}", TEST_AUDIT_KEY)
    moment = Moment(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
    with pytest.raises(StoreUnavailable) as unit:
        with store.unit(moment) as uow:
            uow.counters.read("anything")
    with pytest.raises(StoreUnavailable) as reading:
        with store.reading() as uow:
            uow.counters.read("anything")
    store.close()
    assert unit.value.http_status == 503 and unit.value.hint == "retry later"
    assert reading.value.text.startswith("the database is unavailable")
