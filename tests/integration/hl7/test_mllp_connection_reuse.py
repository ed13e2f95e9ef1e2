"""The outbound client's persistent connection (`MllpConnection`, `send_to`): reuse while
healthy, a fresh connection after the peer hangs up, a timeout, or an ACK for another message.
Peers are the real listener or small scripted socket servers."""

from __future__ import annotations

import socket
import threading

import pytest

from connector.config import Destination
from connector.hl7.ack import build_ack
from connector.hl7.client import MllpConnection, check_delivery, connection_for, send_to
from connector.hl7.errors import DeliveryError
from connector.hl7.mllp import FrameReader, frame
from connector.hl7.parse import encode, parse

NOW = "20261202080000"


def oru(control_id: str) -> str:
    return (f"MSH|^~\\&|TELEDERM|TELEDERM|DPI|CHU|20261202080000||ORU^R01^ORU_R01|{control_id}"
            f"|P|2.5||||||UNICODE UTF-8\rPID|1||123^^^CHU||LEFÈVRE^Zoé\r")


def ack_bytes(raw: bytes, acked: str | None = None) -> bytes:
    msg = parse(raw)
    text = build_ack(msg, "AA", [], "ACK-" + msg.control_id, NOW)
    if acked is not None:
        text = text.replace(f"|{msg.control_id}", f"|{acked}")
    return frame(encode(text))


class ScriptedPeer:
    """Accepts connections one after another; `script(conn, n, reader)` serves connection n.
    Records the control ids it received, per connection."""

    def __init__(self, script):
        self.script = script
        self.received: list[list[str]] = []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.received.append([])
            with conn:
                try:
                    self.script(self, conn, n, FrameReader())
                except OSError:
                    pass
            n += 1

    def next_message(self, conn, reader) -> bytes | None:
        frames: list[bytes] = []
        while not frames:
            data = conn.recv(65536)
            if not data:
                return None
            frames = reader.feed(data)
        self.received[-1].append(parse(frames[0]).control_id)
        return frames[0]

    def close(self):
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def scripted():
    peers = []

    def start(script) -> ScriptedPeer:
        peers.append(ScriptedPeer(script))
        return peers[-1]

    yield start
    for peer in peers:
        peer.close()


def test_messages_to_a_destination_share_one_connection(listener_on):
    peers = []

    def handler(raw: bytes, peer: str) -> bytes:
        peers.append(peer)
        return ack_bytes(raw)[1:-2]

    listener = listener_on(handler)
    dest = Destination(name="ehr-reuse", role="requester", address=f"127.0.0.1:{listener.port}")
    for i in range(4):
        check_delivery(send_to(dest, oru(f"U{i}"), timeout=10), f"U{i}")
    assert len(set(peers)) == 1 and len(peers) == 4
    assert connection_for(dest).connects == 1


def test_a_peer_that_closed_the_idle_connection_gets_a_new_one(scripted):
    closed = threading.Event()

    def script(peer, conn, n, reader):
        raw = peer.next_message(conn, reader)
        conn.sendall(ack_bytes(raw))
        if n == 0:
            conn.close()
            closed.set()
            return
        while raw := peer.next_message(conn, reader):
            conn.sendall(ack_bytes(raw))

    peer = scripted(script)
    with MllpConnection("127.0.0.1", peer.port) as connection:
        check_delivery(connection.send(oru("I1"), timeout=10), "I1")
        assert closed.wait(10)
        check_delivery(connection.send(oru("I2"), timeout=10), "I2")
        check_delivery(connection.send(oru("I3"), timeout=10), "I3")
        assert connection.connects == 2
    assert peer.received == [["I1"], ["I2", "I3"]]


def test_a_reused_connection_dropped_without_an_answer_is_retried_once_on_a_new_one(scripted):
    def script(peer, conn, n, reader):
        if n == 0:
            conn.sendall(ack_bytes(peer.next_message(conn, reader)))
            peer.next_message(conn, reader)  # the second message: hang up without an ACK
            return
        conn.sendall(ack_bytes(peer.next_message(conn, reader)))

    peer = scripted(script)
    with MllpConnection("127.0.0.1", peer.port) as connection:
        check_delivery(connection.send(oru("R1"), timeout=10), "R1")
        check_delivery(connection.send(oru("R2"), timeout=10), "R2")
    # Sent twice (at-least-once; the receiver recognises the repeat by MSH-10).
    assert peer.received == [["R1", "R2"], ["R2"]]


def test_a_new_connection_dropped_without_an_answer_is_not_retried(scripted):
    def script(peer, conn, n, reader):
        peer.next_message(conn, reader)  # never answers, hangs up

    peer = scripted(script)
    with MllpConnection("127.0.0.1", peer.port) as connection:
        with pytest.raises(DeliveryError) as exc:
            connection.send(oru("N1"), timeout=10)
    assert exc.value.code == "hl7-no-ack" and exc.value.retryable
    assert peer.received == [["N1"]]


def test_an_ack_for_another_message_fails_delivery_and_the_connection_is_replaced(scripted):
    def script(peer, conn, n, reader):
        while raw := peer.next_message(conn, reader):
            conn.sendall(ack_bytes(raw, acked="SOMEONE-ELSE" if n == 0 else None))

    peer = scripted(script)
    with MllpConnection("127.0.0.1", peer.port) as connection:
        ack = connection.send(oru("W1"), timeout=10)
        with pytest.raises(DeliveryError) as exc:
            check_delivery(ack, "W1")  # MSA-2 is checked against our MSH-10
        assert exc.value.code == "hl7-ack-mismatch" and exc.value.retryable
        check_delivery(connection.send(oru("W1"), timeout=10), "W1")
        assert connection.connects == 2


def test_a_timeout_closes_the_connection_so_a_late_ack_is_never_misread(scripted):
    release = threading.Event()

    def script(peer, conn, n, reader):
        raw = peer.next_message(conn, reader)
        if n == 0:
            release.wait(10)  # answer only after the client gave up
            conn.sendall(ack_bytes(raw))
            return
        while raw:
            conn.sendall(ack_bytes(raw))
            raw = peer.next_message(conn, reader)

    peer = scripted(script)
    with MllpConnection("127.0.0.1", peer.port) as connection:
        with pytest.raises(DeliveryError) as exc:
            connection.send(oru("L1"), timeout=0.3)
        assert exc.value.code == "hl7-ack-timeout"
        release.set()
        ack = connection.send(oru("L2"), timeout=10)
        assert ack.control_id_acked == "L2"
        assert connection.connects == 2


def test_a_refused_connection_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with MllpConnection("127.0.0.1", port) as connection:
        with pytest.raises(DeliveryError) as exc:
            connection.send(oru("F1"), timeout=2)
        assert exc.value.code == "hl7-connection-refused" and exc.value.retryable
