"""Fixtures for the whole suite: real parts on free ports, never mocks where the real thing runs.

`orthanc` is one Debian Orthanc (with the TeleDerm plugin and DICOMweb) per test module;
`orthanc_factory` starts extra instances with their own settings (e.g. a `connector_url`) and
stops them when the test ends; `postgres_server` is a throwaway PostgreSQL cluster for the
session (tests marked `postgres`). They are here, at the root, so that a test in any folder can
ask for them. Fixtures used by one folder only are in that folder's conftest.py; plain helpers
are in `tests.support`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.orthanc import RunningOrthanc, start_orthanc
from tests.support.postgres import running_postgres


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> RunningOrthanc:
    """One Orthanc for the whole module; its plugin notifies a connector URL where nothing listens."""
    running = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield running
    running.managed.stop()


@pytest.fixture
def orthanc_factory(tmp_path_factory):
    """Call with ManagedOrthanc keyword arguments (and optionally a folder) to start a dedicated
    Orthanc for this test; it is stopped when the test ends."""
    started: list[RunningOrthanc] = []

    def start(folder: Path | None = None, **settings) -> RunningOrthanc:
        running = start_orthanc(folder or tmp_path_factory.mktemp("orthanc"), **settings)
        started.append(running)
        return running

    yield start
    for running in started:
        running.managed.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster for the session; `fresh_url()` gives each test a database."""
    with running_postgres() as server:
        yield server
