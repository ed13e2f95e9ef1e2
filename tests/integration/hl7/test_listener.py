"""The listener on a real localhost socket, talked to with raw sockets and python-hl7's client."""

import asyncio
import fcntl
import socket
import struct
import termios
import threading
import time

import hl7
import hl7.mllp

from connector.hl7.ack import build_ack, read_ack
from connector.hl7.errors import Hl7Error
from connector.hl7 import listener as listener_module
from connector.hl7.listener import MllpListener
from connector.hl7.mllp import FrameReader, frame
from connector.hl7.parse import encode, parse
from tests.support.wait import wait_until

NOW = "20261115093005"


def message(control_id: str, charset: str = "UNICODE UTF-8", codec: str = "utf-8") -> bytes:
    return (f"MSH|^~\\&|DPI|CHU|TELEDERM|TD|20261115093000||ORM^O01^ORM_O01|{control_id}|P|2.5"
            f"|||||FRA|{charset}\rPID|1||123^^^CHU||LEFÈVRE^Hélène\r").encode(codec)


def echo_aa(raw: bytes, peer: str) -> bytes:
    msg = parse(raw)
    return encode(build_ack(msg, "AA", [], "ACK-" + msg.control_id, NOW))


def exchange(port: int, payload: bytes, count: int, timeout: float = 5) -> list:
    """Send raw bytes, read `count` framed answers, return them as AckResults."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        reader, frames = FrameReader(), []
        while len(frames) < count:
            data = sock.recv(65536)
            assert data, "listener closed the connection early"
            frames += reader.feed(data)
    return [read_ack(f) for f in frames]


def test_three_messages_on_one_connection_are_answered_in_order(listener_on):
    listener = listener_on(echo_aa)
    acks = exchange(listener.port, b"".join(frame(message(f"C{i}")) for i in range(3)), 3)
    assert [(a.code, a.control_id_acked) for a in acks] == [("AA", "C0"), ("AA", "C1"),
                                                            ("AA", "C2")]


def test_messages_sent_one_after_another_on_one_connection_are_all_answered(listener_on):
    listener = listener_on(echo_aa)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        reader = FrameReader()
        for i in range(3):
            sock.sendall(frame(message(f"S{i}")))
            frames = []
            while not frames:
                frames = reader.feed(sock.recv(65536))
            assert read_ack(frames[0]).control_id_acked == f"S{i}"


def test_handler_failure_gets_ar_207_and_the_next_message_is_still_answered(listener_on):
    def handler(raw: bytes, peer: str) -> bytes:
        if parse(raw).control_id == "BOOM":
            raise RuntimeError("database is on fire")
        return echo_aa(raw, peer)

    listener = listener_on(handler)
    payload = frame(message("OK1")) + frame(message("BOOM")) + frame(message("OK2"))
    first, failed, last = exchange(listener.port, payload, 3)
    assert (first.code, last.code, last.control_id_acked) == ("AA", "AA", "OK2")
    assert (failed.code, failed.control_id_acked) == ("AR", "BOOM")
    (err,) = failed.errors
    assert (err.hl7_code, err.severity) == ("207", "E")
    assert "fire" not in err.text


def test_handler_raising_hl7_error_gets_that_error_rendered(listener_on):
    def handler(raw: bytes, peer: str) -> bytes:
        raise Hl7Error("unsupported event", hl7_code=201, location="MSH^1^9")

    (ack,) = exchange(listener_on(handler).port, frame(message("E1")), 1)
    assert (ack.code, ack.control_id_acked) == ("AR", "E1")
    assert (ack.errors[0].hl7_code, ack.errors[0].location) == ("201", "MSH^1^9")


def test_handler_receives_raw_bytes_and_peer_address(listener_on):
    seen = []

    def handler(raw: bytes, peer: str) -> bytes:
        seen.append((raw, peer))
        return echo_aa(raw, peer)

    raw = message("L1", "8859/15", "iso8859-15")
    (ack,) = exchange(listener_on(handler).port, b"garbage" + frame(raw), 1)
    assert seen[0][0] == raw
    assert seen[0][1].startswith("127.0.0.1:")
    assert ack.code == "AA"


def test_oversized_message_gets_ae_and_the_connection_goes_on(listener_on):
    listener = listener_on(echo_aa, max_size=2000)
    big = message("BIG") + b"NTE|1||" + b"x" * 5000 + b"\r"
    too_big, after = exchange(listener.port, frame(big) + frame(message("SMALL")), 2)
    assert (too_big.code, too_big.control_id_acked) == ("AE", "BIG")
    assert too_big.errors[0].hl7_code == "207"
    assert (after.code, after.control_id_acked) == ("AA", "SMALL")


def test_handlers_never_run_concurrently_across_connections(listener_on):
    running, peak, lock = [0], [0], threading.Lock()

    def handler(raw: bytes, peer: str) -> bytes:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)  # a slow handler: the window in which another one could start
        with lock:
            running[0] -= 1
        return echo_aa(raw, peer)

    listener = listener_on(handler)
    threads = [threading.Thread(target=exchange, args=(listener.port, frame(message(f"P{i}")), 1))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak[0] == 1


def _batches_recorder(hold: threading.Event | None = None):
    """A batch handler answering AA that records each batch's MSH-10s; `started` is set when
    the batch holding message FIRST begins, which then waits for `hold` (when given)."""
    batches, started = [], threading.Event()

    def handle_batch(items):
        batches.append([parse(raw).control_id for raw, _ in items])
        if "FIRST" in batches[-1]:
            started.set()
            if hold is not None:
                assert hold.wait(10)
        return [echo_aa(raw, peer) for raw, peer in items]

    return batches, started, handle_batch


def unacknowledged_bytes(sock: socket.socket) -> int:
    """Bytes this socket sent that the peer's kernel has not acknowledged yet (Linux SIOCOUTQ):
    0 means they sit in the listener's receive buffer, read or not."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _ack_of(sock: socket.socket, reader: FrameReader) -> str:
    frames = []
    while not frames:
        data = sock.recv(65536)
        assert data, "listener closed the connection early"
        frames = reader.feed(data)
    return read_ack(frames[0]).control_id_acked


def test_messages_arriving_while_a_batch_is_handled_form_the_next_batch(listener_on):
    sent = threading.Event()
    batches, started, handle_batch = _batches_recorder(hold=sent)
    listener = listener_on(echo_aa, batch_handler=handle_batch)
    socks = [_connect(listener.port) for _ in range(4)]
    try:
        for i, sock in enumerate(socks):  # each connection fully set up on the listener's side
            sock.sendall(frame(message(f"HELLO{i}")))
            assert _ack_of(sock, FrameReader()) == f"HELLO{i}"
        wait_until(lambda: all(time.monotonic() - c.last_message >= listener_module.BUSY
                               for c in listener._connections), 5, "no connection busy any more",
                   interval=0.01)
        socks[0].sendall(frame(message("FIRST")))
        assert started.wait(5)
        for i, sock in enumerate(socks[1:], start=1):
            sock.sendall(frame(message(f"WAITING{i}")))
        wait_until(lambda: not any(map(unacknowledged_bytes, socks[1:])), 5,
                   "the listener's kernel to have the waiting messages", interval=0.01)
        sent.set()  # the first batch ends only now: the three wait together
        acks = [_ack_of(sock, FrameReader()) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert acks == ["FIRST", "WAITING1", "WAITING2", "WAITING3"]
    assert batches[4] == ["FIRST"] and sorted(batches[5]) == ["WAITING1", "WAITING2", "WAITING3"]


def test_a_batch_waits_for_the_next_message_of_each_busy_connection_only(listener_on,
                                                                           monkeypatch):
    monkeypatch.setattr(listener_module, "GROUP_WAIT", 0.5)  # wide, so that timing is not luck
    monkeypatch.setattr(listener_module, "BUSY", 30.0)
    batches, _, handle_batch = _batches_recorder()
    listener = listener_on(echo_aa, batch_handler=handle_batch)
    a, b, quiet = _connect(listener.port), _connect(listener.port), _connect(listener.port)
    try:
        ra, rb = FrameReader(), FrameReader()
        a.sendall(frame(message("A1")))
        assert _ack_of(a, ra) == "A1"  # alone: nobody else busy, answered at once
        b.sendall(frame(message("B1")))  # B was not busy either: its own batch
        assert _ack_of(b, rb) == "B1"
        # Both are busy now: A2 waits for B2 (well under GROUP_WAIT), not for `quiet`.
        a.sendall(frame(message("A2")))
        wait_until(lambda: len(listener._queued) == 1, 5, "A2 queued alone", interval=0.01)
        b.sendall(frame(message("B2")))
        assert (_ack_of(a, ra), _ack_of(b, rb)) == ("A2", "B2")
        # B stays silent: A3 waits GROUP_WAIT for it, then goes alone.
        a.sendall(frame(message("A3")))
        assert _ack_of(a, ra) == "A3"
    finally:
        for sock in (a, b, quiet):
            sock.close()
    assert batches == [["A1"], ["B1"], ["A2", "B2"], ["A3"]]


def test_a_peer_that_stops_sending_still_gets_every_answer_then_the_connection_closes(
        listener_on):
    def slow(raw: bytes, peer: str) -> bytes:
        time.sleep(0.05)  # slow on purpose: the end of the peer's stream comes while messages wait
        return echo_aa(raw, peer)

    listener = listener_on(slow)
    with _connect(listener.port) as sock:
        sock.sendall(b"".join(frame(message(f"H{i}")) for i in range(3)))
        sock.shutdown(socket.SHUT_WR)
        reader, frames = FrameReader(), []
        while data := sock.recv(65536):
            frames += reader.feed(data)
    assert [read_ack(f).control_id_acked for f in frames] == ["H0", "H1", "H2"]


def test_logs_name_peer_and_control_id_but_no_patient_data(listener_on, caplog):
    caplog.set_level("DEBUG", logger="connector.hl7")

    def handler(raw: bytes, peer: str) -> bytes:
        raise ValueError("LEFÈVRE Hélène could not be stored")

    exchange(listener_on(handler).port, frame(message("LOG1")), 1)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "connector.hl7.listener")
    assert "LOG1" in text and "127.0.0.1:" in text and "ValueError" in text
    assert "LEFÈVRE" not in text and "Hélène" not in text


def test_idle_connection_is_closed_after_idle_timeout(listener_on):
    listener = listener_on(echo_aa, idle_timeout=0.2)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        assert sock.recv(10) == b""


def test_stop_closes_open_connections():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    listener = MllpListener("127.0.0.1", 0, echo_aa)
    asyncio.run_coroutine_threadsafe(listener.start(), loop).result(5)
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
            sock.sendall(frame(message("X1")))
            assert FrameReader().feed(sock.recv(65536))
            asyncio.run_coroutine_threadsafe(listener.stop(), loop).result(5)
            assert sock.recv(10) == b""
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_python_hl7_asyncio_client_talks_to_the_listener(listener_on):
    listener = listener_on(echo_aa)

    async def talk():
        reader, writer = await hl7.mllp.open_hl7_connection(
            "127.0.0.1", listener.port, encoding="utf-8")
        answers = []
        for i in range(2):
            writer.writemessage(hl7.parse(message(f"H{i}").decode("utf-8")))
            await writer.drain()
            answers.append(await asyncio.wait_for(reader.readmessage(), 5))
        writer.close()
        return answers

    answers = asyncio.run(talk())
    assert [(str(a["MSA.F1"]), str(a["MSA.F2"])) for a in answers] == [("AA", "H0"), ("AA", "H1")]
