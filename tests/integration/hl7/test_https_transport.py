"""HL7 over HTTPS: a real TLS server on loopback (self-signed certificate made by openssl),
the client's API key, ACK checking, retryable failures, and delivery through the outbox."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading

import pytest

from connector.config import load_config
from connector.demo import demo_order
from connector.domain.errors import ConfigError
from connector.hl7.ack import build_ack
from connector.hl7.errors import DeliveryError
from connector.hl7.https import post_message
from connector.hl7.parse import parse
from connector.runtime import worker
from connector.bootstrap import build
from connector.workflow.outbound import enqueue_hl7
from tests.support.cli import EXAMPLE_DEVICES


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


class Peer:
    """An HTTPS endpoint that records what it gets and answers with `status` and an ACK."""

    def __init__(self, key, cert, *, status=200, with_ack=True):
        self.received: list[tuple[dict, bytes]] = []
        self.status, self.with_ack = status, with_ack
        peer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                peer.received.append((dict(self.headers), body))
                answer = b""
                if peer.with_ack and peer.status == 200:
                    answer = build_ack(parse(body), "AA", [], "HTTPACK1", "20261124120000").encode()
                self.send_response(peer.status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/hl7"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peer(certificate):
    made = []

    def start(**kwargs):
        made.append(Peer(*certificate, **kwargs))
        return made[-1]

    yield start
    for p in made:
        p.close()


def test_post_sends_the_api_key_and_returns_the_peers_ack(peer, certificate):
    server = peer()
    ack = post_message(server.url, demo_order("H1", "PL-H1"), api_key="s3cret",
                       ca_file=str(certificate[1]))
    assert (ack.code, ack.control_id_acked) == ("AA", "H1")
    headers, body = server.received[0]
    assert headers["X-API-Key"] == "s3cret" and body.startswith(b"MSH|")
    assert "Hélène".encode("utf-8") in body  # sent in the charset MSH-18 declares


def test_post_raises_a_retryable_error_when_the_peer_answers_503(peer, certificate):
    server = peer(status=503)
    with pytest.raises(DeliveryError) as caught:
        post_message(server.url, demo_order("H2", "PL-H2"), ca_file=str(certificate[1]))
    assert caught.value.retryable and "503" in caught.value.text


def test_post_refuses_a_certificate_it_does_not_trust(peer):
    server = peer()
    with pytest.raises(DeliveryError) as caught:
        post_message(server.url, demo_order("H3", "PL-H3"))  # system CAs only
    assert caught.value.retryable and server.received == []


def test_worker_delivers_through_an_https_destination_when_configured(peer, certificate, tmp_path):
    server = peer(with_ack=False)  # 2xx without a body counts as delivered
    config_file = tmp_path / "telederm.toml"
    config_file.write_text(f"""
data_dir = "{tmp_path / 'var'}"
[orthanc]
managed = false
[worklist]
enabled = false
[[destinations]]
name = "acct"
role = "accounting"
transport = "https"
address = "{server.url}"
api_key_env = "ACCT_KEY"
ca_file = "{certificate[1]}"
""")
    services = build(load_config(config_file, environ={**EXAMPLE_DEVICES, "ACCT_KEY": "k-123"}))
    with services.unit() as uow:
        enqueue_hl7(uow, destination="acct", control_id="H4", accession=None,
                    message=demo_order("H4", "PL-H4"))
    assert worker.run_once(services) == 1
    with services.reading() as uow:
        (item,) = uow.outbox.items()
    assert item["status"] == "done"
    assert [h["X-API-Key"] for h, _ in server.received] == ["k-123"]
    services.store.close()


def test_config_refuses_an_https_destination_when_its_key_variable_is_unset(tmp_path):
    config_file = tmp_path / "telederm.toml"
    config_file.write_text("""
[[destinations]]
name = "acct"
role = "accounting"
transport = "https"
address = "https://billing.example/hl7"
api_key_env = "MISSING_KEY"
""")
    with pytest.raises(ConfigError, match="MISSING_KEY is not set"):
        load_config(config_file, environ=EXAMPLE_DEVICES)
