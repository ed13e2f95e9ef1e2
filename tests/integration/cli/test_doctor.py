"""`telederm doctor` run as hospital IT runs it, against real parts: an Orthanc (running, then
stopped), MLLP peers on real sockets (one over TLS, shaking hands), a drop folder, certificate
files made with `cryptography` (valid, about to expire, expired), and the store's queues."""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
import threading
from pathlib import Path

import pytest

from connector.bootstrap import build
from connector.config import load_config
from connector.domain.moment import iso
from tests.support.cli import EXAMPLE_DEVICES, telederm
from tests.support.peers import RecordingPeer
from tests.support.tls_pki import self_signed

NOW = dt.datetime.now(dt.timezone.utc)


class TlsPeer:
    """A TLS server on loopback that completes handshakes and reads nothing: what doctor sees
    of an MLLP-over-TLS peer."""

    def __init__(self, cert: Path, key: Path):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self._context = context
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self._context.wrap_socket(conn, server_side=True):
                    self.handshakes += 1
            except (ssl.SSLError, OSError):
                conn.close()

    def close(self):
        self.sock.close()


def config(tmp_path: Path, orthanc_url: str, body: str) -> Path:
    path = tmp_path / "telederm.toml"
    path.write_text(f"""data_dir = "{tmp_path / 'data'}"
[orthanc]
managed = false
url = "{orthanc_url}"
username = "telederm"
password = "test-secret"
{body}""", encoding="utf-8")
    return path


def doctor(path: Path):
    return telederm("doctor", "--config", path)


@pytest.fixture
def valid_cert(tmp_path):
    return self_signed(tmp_path, "peer", not_before=NOW - dt.timedelta(days=1),
                       not_after=NOW + dt.timedelta(days=365))


def test_doctor_exits_0_with_a_summary_when_everything_answers(tmp_path, orthanc, valid_cert):
    ehr = RecordingPeer("ehr").start()
    tls_peer = TlsPeer(*valid_cert)
    (tmp_path / "drop").mkdir()
    try:
        result = doctor(config(tmp_path, orthanc.url, f"""
[hl7]
cert_file = "{valid_cert[0]}"
key_file = "{valid_cert[1]}"
[[destinations]]
name = "ehr"
role = "requester"
address = "127.0.0.1:{ehr.port}"
[[destinations]]
name = "reporting"
role = "specialist"
address = "127.0.0.1:{tls_peer.port}"
tls = true
ca_file = "{valid_cert[0]}"
[[destinations]]
name = "accounting"
role = "accounting"
transport = "file"
address = "{tmp_path / 'drop'}"
"""))
    finally:
        ehr.stop()
        tls_peer.close()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[-1] == "doctor: 9 check(s), 0 problem(s), 0 warning(s): all is well"
    assert any(l.startswith("ok      orthanc: Orthanc ") and "python, web-viewer loaded" in l
               for l in lines), lines
    assert any(l.startswith("ok      destination reporting: mllp over TLS ")
               and "TLS handshake done" in l for l in lines), lines
    assert tls_peer.handshakes == 1
    assert not ehr.messages  # a connect, never a message
    assert any(l.startswith("ok      certificate hl7.cert_file: ") for l in lines), lines
    assert any(l.startswith("ok      destination accounting: drop folder ") for l in lines)


def test_doctor_names_each_problem_when_orthanc_is_stopped_a_peer_down_and_a_cert_expired(
        tmp_path, orthanc_factory):
    stopped = orthanc_factory()
    stopped.managed.stop()
    down = RecordingPeer("ehr").start()
    down.stop()  # its port now refuses connections
    expired = self_signed(tmp_path, "old", not_before=NOW - dt.timedelta(days=400),
                          not_after=NOW - dt.timedelta(days=3))
    result = doctor(config(tmp_path, stopped.url, f"""
[hl7]
cert_file = "{expired[0]}"
key_file = "{expired[1]}"
[[destinations]]
name = "ehr"
role = "requester"
address = "127.0.0.1:{down.port}"
"""))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    problems = result.stderr.splitlines()
    assert len(problems) == 3, problems
    orthanc_line, ehr_line, cert_line = problems
    assert orthanc_line.startswith("telederm: orthanc: Orthanc is unreachable at "
                                   f"{stopped.url}")
    assert ehr_line.startswith(f"telederm: destination ehr: mllp 127.0.0.1:{down.port} "
                               "unreachable: Connection refused")
    assert cert_line.startswith("telederm: certificate hl7.cert_file: CN=old in ")
    assert f"expired on {(NOW - dt.timedelta(days=3)):%Y-%m-%d}: renew it" in cert_line
    assert result.stdout.splitlines()[-1] == "doctor: 6 check(s), 3 problem(s), 0 warning(s)"


def test_doctor_warns_and_exits_0_when_a_certificate_expires_within_30_days(tmp_path, orthanc):
    soon = self_signed(tmp_path, "soon", not_before=NOW - dt.timedelta(days=300),
                       not_after=NOW + dt.timedelta(days=10, hours=1))
    result = doctor(config(tmp_path, orthanc.url, f"""
[hl7]
cert_file = "{soon[0]}"
key_file = "{soon[1]}"
"""))
    assert result.returncode == 0, result.stderr
    assert any(l.startswith("warning certificate hl7.cert_file: CN=soon in ")
               and "(in 10 days): renew it" in l for l in result.stdout.splitlines())
    assert result.stdout.splitlines()[-1].endswith("0 problem(s), 1 warning(s): all is well")


def test_doctor_reports_a_stuck_item_a_dead_letter_and_a_clock_set_back(tmp_path, orthanc):
    path = config(tmp_path, orthanc.url, "")
    services = build(load_config(path, environ=EXAMPLE_DEVICES))
    now = dt.datetime.now(dt.timezone.utc)
    an_hour_ago = iso(now - dt.timedelta(hours=1))
    with services.unit() as uow:
        for destination in ("gone", "ehr"):
            uow.outbox.enqueue(kind="hl7.send", destination=destination,
                               key=f"test:{destination}", payload=b"{}", accession=None,
                               now=an_hour_ago)
        (gone,) = uow.outbox.claim_in(now, destination="gone")
        uow.outbox.fail(gone, now, "refused", max_attempts=1)
        uow.audit.append(at=iso(now + dt.timedelta(days=1)), actor="test", action="clock.test")
    result = doctor(path)
    assert result.returncode == 1
    problems = result.stderr.splitlines()
    assert problems[0].startswith("telederm: queue: 1 dead letter(s) in the outbox"), problems
    assert re.match(r"telederm: queue: outbox item \d+ \(hl7.send to ehr\) pending for "
                    r"6\d min after 0 attempt\(s\)", problems[1]), problems
    assert problems[2].startswith("telederm: clock: the system clock ("), problems
    assert len(problems) == 3, problems


def test_doctor_names_a_failed_tls_handshake_when_an_https_peer_presents_an_expired_cert(
        tmp_path, orthanc):
    expired = self_signed(tmp_path, "expired-peer", not_before=NOW - dt.timedelta(days=400),
                          not_after=NOW - dt.timedelta(days=1))
    peer = TlsPeer(*expired)
    try:
        result = doctor(config(tmp_path, orthanc.url, f"""
[[destinations]]
name = "accounting"
role = "accounting"
transport = "https"
address = "https://127.0.0.1:{peer.port}/hl7"
ca_file = "{expired[0]}"
"""))
    finally:
        peer.close()
    assert result.returncode == 1
    (line, cert_line) = result.stderr.splitlines()
    assert line.startswith(f"telederm: destination accounting: https 127.0.0.1:{peer.port} "
                           "unreachable: TLS handshake failed: certificate has expired"), line
    assert cert_line.startswith("telederm: certificate destinations.accounting.ca_file: "
                                "CN=expired-peer in "), cert_line
