"""`POST /api/internal/orthanc/stable-study` takes only a well-formed Orthanc study id (422
otherwise: `../system` never reaches a URL the connector fetches with its credentials), answers
404 for a study Orthanc does not hold, without Orthanc's URL, and never a 500."""

from __future__ import annotations

import secrets

import pytest
from fastapi.testclient import TestClient

from connector.archive.client import ArchiveClient
from connector.bootstrap import build
from connector.demo import local_config
from connector.entrypoints.api.app import create_app
from connector.ports import free_port
from tests.support.orthanc import throwaway

ROUTE = "/api/internal/orthanc/stable-study"


@pytest.fixture
def api(tmp_path, orthanc):
    config = throwaway(local_config(tmp_path, ehr_port=free_port(), accounting_port=free_port(),
                                    token=secrets.token_urlsafe(8)))
    services = build(config)
    services.archive = ArchiveClient(orthanc.url, orthanc.username, orthanc.password)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {services.internal_token}"
        yield client
    services.store.close()


@pytest.mark.parametrize("orthanc_id", [
    "../system", "..%2fsystem", "0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d/../../system",
    "", "x" * 10_000, "0A1B2C3D-0A1B2C3D-0A1B2C3D-0A1B2C3D-0A1B2C3D"])
def test_a_malformed_study_id_is_422_problem_json(api, orthanc_id):
    r = api.post(ROUTE, json={"change": "StableStudy", "orthanc_id": orthanc_id})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_a_malformed_study_uid_is_422(api):
    r = api.post(ROUTE, json={"change": "StableStudy", "study_uid": "1.2.3/../x",
                              "orthanc_id": "0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d"})
    assert r.status_code == 422, r.text


def test_a_study_orthanc_does_not_hold_is_404_without_orthancs_url(api, orthanc):
    r = api.post(ROUTE, json={"change": "StableStudy",
                              "orthanc_id": "0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d"})
    assert r.status_code == 404, r.text
    assert orthanc.url not in r.text and str(orthanc.managed.http_port) not in r.text
