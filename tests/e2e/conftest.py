"""`env`: the demo's connector on loopback (real managed Orthanc, SQLite, MLLP and HTTP) with
an EHR and an accounting peer; yields (running, api, ehr, accounting, work). A module that needs
another set-up defines its own `env`."""

from __future__ import annotations

import secrets

import httpx
import pytest

from connector.demo import local_config
from connector.runtime.server import RunningConnector
from tests.support.orthanc import throwaway
from tests.support.peers import RecordingPeer


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    token = secrets.token_urlsafe(16)
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    config = throwaway(local_config(work, ehr_port=ehr.port, accounting_port=accounting.port,
                                    token=token, stable_age=1))
    running = RunningConnector(config).start()
    api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    yield running, api, ehr, accounting, work
    api.close()
    running.stop()
    ehr.stop()
    accounting.stop()
