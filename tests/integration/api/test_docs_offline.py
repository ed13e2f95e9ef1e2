"""`/docs` and `/redoc` work on a network with no Internet: every asset is served by us."""

from __future__ import annotations

import re
import secrets

import pytest
from fastapi.testclient import TestClient

from connector.entrypoints.api.app import create_app
from connector.demo import local_config
from connector.ports import free_port
from connector.bootstrap import build
from tests.support.orthanc import throwaway

# src=, href=, spec-url= attributes and Swagger's `url:` option: what the browser fetches.
_REFERENCE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    config = throwaway(local_config(tmp_path_factory.mktemp("docs"), ehr_port=free_port(),
                                    accounting_port=free_port(), token=secrets.token_urlsafe(8)))
    with TestClient(create_app(build(config))) as api:
        yield api


def _references(html: str) -> list[str]:
    return [a or b for a, b in _REFERENCE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_page_references_only_local_assets_and_they_answer(client, page):
    r = client.get(page)
    assert r.status_code == 200
    refs = _references(r.text)
    assert "/openapi.json" in refs and any(u.endswith(".js") for u in refs), refs
    assert [u for u in refs if not u.startswith("/") or u.startswith("//")] == []
    assert "validator.swagger.io" not in r.text and "fonts.googleapis" not in r.text
    for url in refs:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
