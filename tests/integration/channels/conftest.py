"""The `channels` fixture: a RunningConnector (real managed Orthanc with the worklist plugin, real
SQLite, MLLP, HTTP) with the DICOM C-STORE SCP and the watched folder switched on, one per test
module; the helpers around it are in tests/support/channels.py."""

from __future__ import annotations

import secrets

import httpx
import pytest

from connector.config import DicomSection
from connector.demo import local_config
from connector.ports import free_port
from connector.runtime.server import RunningConnector
from tests.support.channels import Channels
from tests.support.orthanc import throwaway


@pytest.fixture(scope="module")
def channels(tmp_path_factory):
    work = tmp_path_factory.mktemp("channels")
    token = secrets.token_urlsafe(16)
    base = throwaway(local_config(work, ehr_port=free_port(), accounting_port=free_port(),
                                  token=token, stable_age=1))
    config = base.model_copy(update={
        "destinations": (),
        "dicom": DicomSection(listen=f"127.0.0.1:{free_port()}", ae_title="TELEDERM_SCP"),
        "watch": base.watch.model_copy(update={"folder": work / "watch", "interval": 0.2})})
    running = RunningConnector(config).start()
    api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    yield Channels(running, api, work, config.watch.folder)
    api.close()
    running.stop()
