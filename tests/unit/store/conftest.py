"""Fixtures for store tests: `engine`, a migrated store, once as a SQLite file in tmp_path (the
embedded default) and once as a database of a throwaway PostgreSQL cluster (the scaled mode's
store, marked `postgres`), so that every store test runs on both (`postgres_server`, that
cluster, is in tests/conftest.py).
"""

import pytest

from connector.store.db import make_engine, migrate
from tests.support.store_samples import TEST_AUDIT_KEY


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'store' / 'telederm.db'}", TEST_AUDIT_KEY)
    else:
        engine = make_engine(request.getfixturevalue("postgres_server").fresh_url(),
                             TEST_AUDIT_KEY)
    migrate(engine)
    yield engine
    engine.dispose()
