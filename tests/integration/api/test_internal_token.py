"""The internal token (the managed Orthanc's plugin calls the connector with it) is made fresh
by each start and kept nowhere in the data folder: the previous run's token is refused, and
a connector that finds its Orthanc already running takes the token that Orthanc's run was
started with (from the Orthanc's own config)."""

from __future__ import annotations

import secrets

from fastapi.testclient import TestClient

from connector.bootstrap import build
from connector.demo import local_config
from connector.entrypoints.api.app import create_app
from connector.ports import free_port
from connector.runtime.server import managed_orthanc

ROUTE = "/api/internal/orthanc/stable-study"


def test_each_start_has_its_own_token_and_the_previous_one_is_refused(tmp_path):
    config = local_config(tmp_path, ehr_port=free_port(), accounting_port=free_port(),
                          token=secrets.token_urlsafe(8))
    first = build(config)
    first.store.close()
    second = build(config)
    try:
        assert first.internal_token and second.internal_token != first.internal_token
        kept = [p for p in config.data_dir.rglob("*") if p.is_file()
                and first.internal_token.encode() in p.read_bytes()]
        assert kept == []
        with TestClient(create_app(second)) as client:
            stale = client.post(ROUTE, json={"change": "StableStudy", "orthanc_id": "x"},
                                headers={"Authorization": f"Bearer {first.internal_token}"})
            assert stale.status_code == 401
            fresh = client.post(ROUTE, json={"change": "StableStudy", "orthanc_id": "x"},
                                headers={"Authorization": f"Bearer {second.internal_token}"})
            assert fresh.status_code == 422  # past the token: the study id is checked
    finally:
        second.store.close()


def test_the_token_an_orthanc_was_started_with_is_read_back_from_its_config(tmp_path):
    config = local_config(tmp_path, ehr_port=free_port(), accounting_port=free_port(),
                          token=secrets.token_urlsafe(8))
    token = secrets.token_urlsafe(32)
    orthanc = managed_orthanc(config, token)
    assert orthanc.written_token() == ""
    orthanc.write_config()
    assert managed_orthanc(config).written_token() == token
    assert orthanc.config_path.stat().st_mode & 0o077 == 0  # the service's only
