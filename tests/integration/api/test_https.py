"""HTTPS for the API and the pages (`[http] cert_file`, `key_file`, `client_ca_file`): a
client trusting the site's CA gets its answers, with the security headers (HSTS on TLS); a
client trusting another CA, or presenting a certificate of another CA, is refused in the
handshake. The connector runs without Orthanc (none is needed to answer these)."""

import ssl

import httpx
import pytest
from fastapi.testclient import TestClient

from connector.bootstrap import build
from connector.config import load_config
from connector.entrypoints.api.app import create_app
from connector.runtime.server import RunningConnector
from tests.support.cli import EXAMPLE_DEVICES
from tests.support.net import free_port, unused_url


@pytest.fixture(scope="module")
def https(pki, tmp_path_factory):
    data = tmp_path_factory.mktemp("https")
    config = load_config(None, environ={
        "TELEDERM_DATA_DIR": str(data), "TELEDERM_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "TELEDERM_HL7_LISTEN": f"127.0.0.1:{free_port()}",
        "TELEDERM_ORTHANC_MANAGED": "false", "TELEDERM_WORKLIST_ENABLED": "false",
        "TELEDERM_HTTP_CERT_FILE": str(pki.server_cert),
        "TELEDERM_HTTP_KEY_FILE": str(pki.server_key),
        "TELEDERM_HTTP_CLIENT_CA_FILE": str(pki.ca), **EXAMPLE_DEVICES})
    with RunningConnector(config) as running:
        yield f"https://127.0.0.1:{running.http_port}"


def trusting(ca, cert=None, key=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert:
        context.load_cert_chain(str(cert), str(key))
    return context


def test_a_client_trusting_the_sites_ca_gets_answers_with_the_security_headers(https, pki):
    answer = httpx.get(f"{https}/api/health", verify=trusting(pki.ca), timeout=30)
    assert answer.status_code == 200
    headers = answer.headers
    assert headers["strict-transport-security"].startswith("max-age=")
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    login = httpx.get(f"{https}/ui/login", verify=trusting(pki.ca), timeout=30)
    assert login.status_code == 200 and "strict-transport-security" in login.headers
    assert "default-src 'none'" in login.headers["content-security-policy"]  # the page's own


def test_a_client_trusting_another_ca_fails_the_handshake(https, pki):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https}/api/health", verify=trusting(pki.rogue_ca), timeout=30)


def test_a_client_certificate_of_the_sites_ca_is_taken_one_of_another_ca_refused(https, pki):
    good = trusting(pki.ca, pki.client_cert, pki.client_key)
    assert httpx.get(f"{https}/api/health", verify=good, timeout=30).status_code == 200
    rogue = trusting(pki.ca, pki.rogue_client_cert, pki.rogue_client_key)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(f"{https}/api/health", verify=rogue, timeout=30)


def test_plain_http_on_the_tls_port_gets_no_answer(https):
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        httpx.get(https.replace("https://", "http://") + "/api/health", timeout=30)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_tls_1_1_is_refused(https, pki):
    old = trusting(pki.ca)
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{https}/api/health", verify=old, timeout=30)


def test_plain_http_answers_carry_the_security_headers_but_no_hsts(tmp_path):
    services = build(load_config(None, environ={
        "TELEDERM_DATA_DIR": str(tmp_path), "TELEDERM_ORTHANC_URL": unused_url(),
        **EXAMPLE_DEVICES}))
    try:
        with TestClient(create_app(services)) as client:
            answer = client.get("/api/cases")  # a refusal too carries them
        assert answer.status_code == 401
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in answer.headers
    finally:
        services.store.close()
