"""MLLP over TLS on real loopback sockets: the listener with `tls.server_context`, our client
with `tls.client_context`, mutual TLS, and peers that get TLS wrong (the listener stays up)."""

from __future__ import annotations

import socket
import ssl

import pytest

from connector.config import Destination
from connector.domain.errors import ConfigError
from connector.hl7.ack import build_ack, read_ack
from connector.hl7.client import MllpConnection, check_delivery, connection_for, send_message, \
    send_to
from connector.hl7.errors import DeliveryError
from connector.hl7.mllp import FrameReader, frame
from connector.hl7.parse import encode, parse
from connector.hl7.tls import client_context, server_context

NOW = "20261201101500"


def order(control_id: str) -> str:
    return (f"MSH|^~\\&|DPI|CHU|TELEDERM|TD|20261201101500||ORM^O01^ORM_O01|{control_id}|P|2.5"
            f"|||||FRA|UNICODE UTF-8\rPID|1||777^^^CHU||LEFÈVRE^Zoé\r")


def echo_aa(raw: bytes, peer: str) -> bytes:
    msg = parse(raw)
    return encode(build_ack(msg, "AA", [], "ACK-" + msg.control_id, NOW))


@pytest.fixture
def tls_listener(listener_on, pki):
    """Start a TLS listener; `mutual=True` requires a client certificate from our test CA."""
    def start(mutual: bool = False, **options):
        context = server_context(pki.server_cert, pki.server_key,
                                 client_ca_file=pki.ca if mutual else None,
                                 require_client_cert=mutual)
        return listener_on(echo_aa, ssl=context, **options)
    return start


def test_tls_round_trip(tls_listener, pki):
    listener = tls_listener()
    context = client_context(pki.ca)
    ack = send_message("127.0.0.1", listener.port, order("T1"), timeout=10, tls=context)
    assert (ack.code, ack.control_id_acked) == ("AA", "T1")
    # The certificate also names mllp.test: a server_name the peer's certificate carries.
    ack = send_message("127.0.0.1", listener.port, order("T2"), timeout=10, tls=context,
                       server_name="mllp.test")
    check_delivery(ack, "T2")


def test_client_refuses_a_server_it_does_not_trust_or_whose_name_differs(tls_listener, pki):
    listener = tls_listener()
    with pytest.raises(DeliveryError) as untrusted:
        send_message("127.0.0.1", listener.port, order("T3"), timeout=10,
                     tls=client_context(pki.rogue_ca))
    with pytest.raises(DeliveryError) as wrong_name:
        send_message("127.0.0.1", listener.port, order("T4"), timeout=10,
                     tls=client_context(pki.ca), server_name="other.test")
    for exc in (untrusted, wrong_name):
        assert exc.value.code == "hl7-tls-error" and exc.value.retryable
    # The listener is still serving.
    assert send_message("127.0.0.1", listener.port, order("T5"), timeout=10,
                        tls=client_context(pki.ca)).code == "AA"


def test_mutual_tls_accepts_a_client_certificate_from_the_ca(tls_listener, pki):
    listener = tls_listener(mutual=True)
    context = client_context(pki.ca, pki.client_cert, pki.client_key)
    ack = send_message("127.0.0.1", listener.port, order("M1"), timeout=10, tls=context)
    assert (ack.code, ack.control_id_acked) == ("AA", "M1")


@pytest.mark.parametrize("client", ["none", "rogue"])
def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(tls_listener, pki, client):
    listener = tls_listener(mutual=True)
    context = client_context(pki.ca) if client == "none" else \
        client_context(pki.ca, pki.rogue_client_cert, pki.rogue_client_key)
    with pytest.raises(DeliveryError) as exc:
        send_message("127.0.0.1", listener.port, order("M2"), timeout=10, tls=context)
    assert exc.value.retryable and exc.value.code in ("hl7-tls-error", "hl7-no-ack",
                                                      "hl7-network-error")
    # Nothing was answered, and the listener stays up for a client with a good certificate.
    good = client_context(pki.ca, pki.client_cert, pki.client_key)
    assert send_message("127.0.0.1", listener.port, order("M3"), timeout=10, tls=good).code == "AA"


def test_a_plain_client_on_the_tls_port_is_closed_and_the_listener_survives(tls_listener, pki):
    listener = tls_listener()
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(order("P1").encode()))
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert b"MSA" not in answer  # at most a TLS alert, never an ACK in clear text
    ack = send_message("127.0.0.1", listener.port, order("P2"), timeout=10,
                       tls=client_context(pki.ca))
    assert (ack.code, ack.control_id_acked) == ("AA", "P2")


def test_a_tls_client_on_a_plain_port_fails_cleanly(listener_on, pki):
    listener = listener_on(echo_aa)
    # The plain listener never answers a ClientHello: the client gives up at its deadline.
    with pytest.raises(DeliveryError) as exc:
        send_message("127.0.0.1", listener.port, order("X1"), timeout=0.5,
                     tls=client_context(pki.ca))
    assert exc.value.retryable
    assert send_message("127.0.0.1", listener.port, order("X2"), timeout=10).code == "AA"


def test_several_messages_on_one_tls_connection_with_a_raw_ssl_socket(tls_listener, pki):
    listener = tls_listener(mutual=True)
    context = client_context(pki.ca, pki.client_cert, pki.client_key)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            assert sock.version() in ("TLSv1.2", "TLSv1.3")
            sock.sendall(b"".join(frame(order(f"R{i}").encode()) for i in range(3)))
            reader, frames = FrameReader(), []
            while len(frames) < 3:
                data = sock.recv(65536)
                assert data, "listener closed the TLS connection early"
                frames += reader.feed(data)
    assert [read_ack(f).control_id_acked for f in frames] == ["R0", "R1", "R2"]


def test_send_to_a_tls_destination_reuses_one_mutual_tls_connection(tls_listener, pki):
    listener = tls_listener(mutual=True)
    dest = Destination(name="lab-tls", role="requester", address=f"127.0.0.1:{listener.port}",
                       tls=True, ca_file=str(pki.ca), cert_file=str(pki.client_cert),
                       key_file=str(pki.client_key), server_name="mllp.test")
    for i in range(3):
        ack = send_to(dest, order(f"D{i}"), timeout=10)
        check_delivery(ack, f"D{i}")
    assert connection_for(dest).connects == 1


def test_tls_material_errors_name_the_setting(pki, tmp_path):
    with pytest.raises(ConfigError) as missing:
        server_context(tmp_path / "nope.pem", where="hl7.listeners[1]")
    assert missing.value.where == "hl7.listeners[1].cert_file"
    with pytest.raises(ConfigError) as mismatch:  # a key that is not the certificate's
        server_context(pki.server_cert, pki.client_key)
    assert "certificate" in mismatch.value.text
    with pytest.raises(ConfigError) as no_ca:
        server_context(pki.server_cert, pki.server_key, require_client_cert=True)
    assert "client_ca_file" in no_ca.value.text
    with pytest.raises(ConfigError) as bad_ca:
        client_context(pki.server_key, where="destinations[0]")
    assert bad_ca.value.where == "destinations[0].ca_file"


def test_mllp_connection_is_a_context_manager_that_closes(tls_listener, pki):
    listener = tls_listener()
    with MllpConnection("127.0.0.1", listener.port, tls=client_context(pki.ca)) as conn:
        assert conn.send(order("C1"), timeout=10).code == "AA"
        assert conn.send(order("C2"), timeout=10).code == "AA"
        assert conn.connects == 1
    assert conn._sock is None
    assert isinstance(client_context(pki.ca), ssl.SSLContext)
