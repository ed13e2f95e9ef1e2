"""Sending one message over MLLP and judging the answer.

Blocking on purpose: the outbox worker sends one message at a time per peer (original mode has
one message in flight), and a plain socket with a deadline is easier to reason about than
python-hl7's client, which has no timeout and may return a partial ACK.
"""

from __future__ import annotations

import socket
import time

from .ack import AckResult, read_ack
from .errors import DeliveryError, Hl7Error
from .mllp import FrameReader, FrameTooLarge, frame
from .parse import encode

_MAX_ACK = 1024 * 1024


def send_message(host: str, port: int, message: str, *, timeout: float = 30) -> AckResult:
    """Send `message` (encoded per its own MSH-18, UTF-8 for ours) and read exactly one framed
    ACK within `timeout` seconds overall. Raises a retryable `DeliveryError` on refusal,
    timeout, a closed connection or an answer that is not an ACK."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(frame(encode(message)))
            reader = FrameReader(_MAX_ACK)
            while True:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                data = sock.recv(65536)
                if not data:
                    raise DeliveryError("peer closed the connection before acknowledging",
                                        retryable=True, code="hl7-no-ack")
                frames = reader.feed(data)
                if frames:
                    return read_ack(frames[0])
    except TimeoutError:
        raise DeliveryError(f"no ACK within {timeout:g} s", retryable=True,
                            code="hl7-ack-timeout") from None
    except ConnectionRefusedError:
        raise DeliveryError(f"connection refused by {host}:{port}", retryable=True,
                            code="hl7-connection-refused") from None
    except (Hl7Error, FrameTooLarge) as exc:
        raise DeliveryError(f"answer is not a usable ACK: {exc.text}", retryable=True,
                            code="hl7-bad-ack") from None
    except OSError as exc:
        raise DeliveryError(f"network error talking to {host}:{port}: {exc.strerror or exc}",
                            retryable=True, code="hl7-network-error") from None


def check_delivery(ack: AckResult, control_id: str) -> None:
    """Accept AA/CA for our `control_id`; otherwise raise `DeliveryError`: retryable for AR/CR
    or an ACK of another message, not retryable for AE/CE or an unknown code (an operator must
    look). The peer's own texts stay in `ack` (they may quote patient data)."""
    if ack.control_id_acked != control_id:
        raise DeliveryError(f"ACK is for message {ack.control_id_acked!r}, not {control_id!r}",
                            retryable=True, ack=ack, code="hl7-ack-mismatch")
    if ack.code in ("AA", "CA"):
        return
    where = "; ".join(f"ERR {e.hl7_code} at {e.location or '?'}" for e in ack.errors)
    detail = f"peer answered {ack.code}" + (f" ({where})" if where else "")
    if ack.code in ("AR", "CR"):
        raise DeliveryError(detail, retryable=True, ack=ack, code="hl7-rejected")
    raise DeliveryError(detail, retryable=False, ack=ack, code="hl7-application-error")
