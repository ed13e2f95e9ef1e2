"""send_message / check_delivery against the real listener and against misbehaving peers."""

import socket
import threading

import pytest

from connector.hl7.ack import build_ack
from connector.hl7.client import check_delivery, send_message
from connector.hl7.errors import DeliveryError, Hl7Error
from connector.hl7.parse import encode, parse

NOW = "20261116121000"
ORU = ("MSH|^~\\&|TELEDERM|TELEDERM|DPI|CHU|20261116121000||ORU^R01^ORU_R01|{ctl}|P|2.5"
       "||||||UNICODE UTF-8\rPID|1||123^^^CHU||LEFÈVRE^Hélène\rOBR|1|P1|F1|TELEDERM\r")


def answering(code: str, errors=(), acked: str | None = None):
    def handler(raw: bytes, peer: str) -> bytes:
        msg = parse(raw)
        assert "LEFÈVRE" in raw.decode("utf-8")  # we send UTF-8, as MSH-18 says
        text = build_ack(msg, code, list(errors), "ACK-1", NOW)
        if acked is not None:
            text = text.replace(f"|{msg.control_id}", f"|{acked}")
        return encode(text)
    return handler


def test_send_message_returns_the_peer_ack_and_check_delivery_accepts_aa(listener_on):
    listener = listener_on(answering("AA"))
    ack = send_message("127.0.0.1", listener.port, ORU.format(ctl="M1"), timeout=5)
    assert (ack.code, ack.control_id_acked) == ("AA", "M1")
    check_delivery(ack, "M1")


def test_ae_is_not_retryable(listener_on):
    error = Hl7Error("patient unknown", hl7_code=204, location="PID^1^3")
    listener = listener_on(answering("AE", [error]))
    ack = send_message("127.0.0.1", listener.port, ORU.format(ctl="M2"), timeout=5)
    with pytest.raises(DeliveryError) as exc:
        check_delivery(ack, "M2")
    assert exc.value.retryable is False
    assert "ERR 204 at PID^1^3" in exc.value.text and exc.value.ack is ack


def test_ar_is_retryable(listener_on):
    listener = listener_on(answering("AR"))
    ack = send_message("127.0.0.1", listener.port, ORU.format(ctl="M3"), timeout=5)
    with pytest.raises(DeliveryError) as exc:
        check_delivery(ack, "M3")
    assert exc.value.retryable is True


def test_ack_for_another_message_is_retryable(listener_on):
    listener = listener_on(answering("AA", acked="SOMEONE-ELSE"))
    ack = send_message("127.0.0.1", listener.port, ORU.format(ctl="M4"), timeout=5)
    with pytest.raises(DeliveryError) as exc:
        check_delivery(ack, "M4")
    assert exc.value.retryable is True and exc.value.code == "hl7-ack-mismatch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_retryable():
    with pytest.raises(DeliveryError) as exc:
        send_message("127.0.0.1", free_port(), ORU.format(ctl="M5"), timeout=2)
    assert exc.value.retryable is True and exc.value.code == "hl7-connection-refused"


def test_peer_that_never_answers_times_out_retryably():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with pytest.raises(DeliveryError) as exc:
            send_message("127.0.0.1", server.getsockname()[1], ORU.format(ctl="M6"), timeout=0.5)
    assert exc.value.retryable is True and exc.value.code == "hl7-ack-timeout"


@pytest.mark.parametrize("answer,code", [(b"\x0bnot an ack\x1c\x0d", "hl7-bad-ack"),
                                         (b"", "hl7-no-ack")])
def test_peer_that_answers_garbage_or_hangs_up_is_retryable(answer, code):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def reply():
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

        thread = threading.Thread(target=reply)
        thread.start()
        with pytest.raises(DeliveryError) as exc:
            send_message("127.0.0.1", server.getsockname()[1], ORU.format(ctl="M7"), timeout=5)
        thread.join(5)
    assert exc.value.retryable is True and exc.value.code == code
