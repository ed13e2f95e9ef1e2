"""Sending one message over MLLP (plain or TLS) and judging the answer.

Blocking on purpose: the outbox worker sends one message at a time per peer (original mode has
one message in flight), and a plain socket with a deadline is easier to reason about than
python-hl7's client, which has no timeout and may return a partial ACK.

- `send_message(host, port, message, tls=...)`: one connection per message.
- `send_to(destination, message)`: the outbox's way; one persistent connection per destination,
  reused while it stays healthy (`MllpConnection`). A connection is dropped after a timeout, an
  unreadable answer, an ACK for another message or unexpected bytes from the peer, so a late or
  stray ACK can never be taken for the next message's. When a reused connection turns out to be
  closed by the peer before any answer came, the message is sent once more on a new connection
  (at-least-once, as MLLP is: receivers recognise a repeat by MSH-10).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING

from .ack import AckResult, read_ack
from .errors import DeliveryError, Hl7Error
from .mllp import FrameReader, FrameTooLarge, frame
from .parse import encode, salvage_header
from .tls import client_context

if TYPE_CHECKING:
    from ..config import Destination

_MAX_ACK = 1024 * 1024
IDLE_REUSE_SECONDS = 30.0  # a pooled connection unused for longer is replaced, not reused


class _PeerClosed(Exception):
    """The peer closed (or reset) the connection before any byte of the answer arrived."""


def send_message(host: str, port: int, message: str, *, timeout: float = 30,
                 tls: ssl.SSLContext | None = None, server_name: str | None = None) -> AckResult:
    """Send `message` (encoded per its own MSH-18, UTF-8 for ours) and read exactly one framed
    ACK within `timeout` seconds overall. `tls` wraps the connection (see `tls.client_context`);
    the peer's certificate must name `server_name`, by default `host`. Raises a retryable
    `DeliveryError` on refusal, timeout, a TLS failure, a closed connection or an answer that
    is not an ACK."""
    with MllpConnection(host, port, tls=tls, server_name=server_name) as connection:
        return connection.send(message, timeout=timeout)


class MllpConnection:
    """One connection to one peer, opened on first use and kept for the next messages."""

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None = None,
                 server_name: str | None = None, idle_reuse: float = IDLE_REUSE_SECONDS):
        self.host, self.port = host, port
        self.tls, self.server_name = tls, server_name
        self.idle_reuse = idle_reuse
        self.connects = 0  # connections opened so far (1 while one is reused)
        self._sock: socket.socket | None = None
        self._last_used = 0.0
        self._lock = threading.Lock()

    def __enter__(self) -> "MllpConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def send(self, message: str, *, timeout: float = 30) -> AckResult:
        """Send one message and return the peer's ACK (see `send_message` for the errors)."""
        payload = frame(encode(message))
        control_id = salvage_header(payload[1:]).control_id
        with self._lock:
            deadline = time.monotonic() + timeout
            try:
                reused = self._usable()
                try:
                    ack = self._exchange(payload, deadline, timeout)
                except _PeerClosed:
                    self.close()
                    if not reused:
                        raise
                    ack = self._exchange(payload, deadline, timeout)  # on a new connection
            except _PeerClosed:
                self.close()
                raise DeliveryError("peer closed the connection before acknowledging",
                                    retryable=True, code="hl7-no-ack") from None
            except BaseException as exc:
                self.close()
                raise _delivery_error(exc, self.host, self.port, timeout) from None
            if ack.control_id_acked != control_id:
                self.close()  # out of step with the peer: start afresh next time
            self._last_used = time.monotonic()
            return ack

    def _usable(self) -> bool:
        """Whether an open connection is kept for this message; an idle-too-long one, or one
        the peer closed or wrote to unasked, is closed instead."""
        if self._sock is None:
            return False
        stale = time.monotonic() - self._last_used > self.idle_reuse
        if not stale:
            try:
                readable, _, _ = select.select([self._sock], [], [], 0)
            except (OSError, ValueError):
                readable = [True]
            stale = bool(readable)  # EOF, a reset, or bytes nobody asked for
        if stale:
            self.close()
        return not stale

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.server_name or self.host)
        except BaseException:
            sock.close()
            raise
        self.connects += 1
        return sock

    def _exchange(self, payload: bytes, deadline: float, timeout: float) -> AckResult:
        if self._sock is None:
            self._sock = self._connect(max(deadline - time.monotonic(), 0.001))
        sock = self._sock
        reader = FrameReader(_MAX_ACK)
        received = False
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(payload)
            while True:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                data = sock.recv(65536)
                if not data:
                    raise _PeerClosed()
                received = True
                frames = reader.feed(data)
                if frames:
                    if len(frames) > 1 or reader.in_frame:
                        self.close()  # more than one answer: do not reuse
                    return read_ack(frames[0])
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
            if received:
                raise
            raise _PeerClosed() from None


def _delivery_error(exc: BaseException, host: str, port: int, timeout: float) -> BaseException:
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"no ACK within {timeout:g} s", retryable=True,
                             code="hl7-ack-timeout")
    if isinstance(exc, ConnectionRefusedError):
        return DeliveryError(f"connection refused by {host}:{port}", retryable=True,
                             code="hl7-connection-refused")
    if isinstance(exc, (Hl7Error, FrameTooLarge)):
        return DeliveryError(f"answer is not a usable ACK: {exc.text}", retryable=True,
                             code="hl7-bad-ack")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(f"TLS: the certificate of {host}:{port} is not trusted "
                             f"({exc.verify_message})", retryable=True, code="hl7-tls-error")
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(f"TLS with {host}:{port} failed: {exc.reason or exc}",
                             retryable=True, code="hl7-tls-error")
    if isinstance(exc, OSError):
        return DeliveryError(f"network error talking to {host}:{port}: {exc.strerror or exc}",
                             retryable=True, code="hl7-network-error")
    return exc


# --- one persistent connection per destination -------------------------------------------

_pool: dict[tuple, MllpConnection] = {}
_pool_lock = threading.Lock()


def connection_for(destination: "Destination") -> MllpConnection:
    """The pooled connection of an `mllp` destination (its TLS context built once)."""
    host, port = destination.host_port
    key = (destination.name, host, port, destination.tls, destination.ca_file,
           destination.cert_file, destination.key_file, destination.server_name)
    with _pool_lock:
        connection = _pool.get(key)
        if connection is None:
            context = None
            if destination.tls:
                context = client_context(destination.ca_file or None,
                                         destination.cert_file or None,
                                         destination.key_file or None,
                                         where=f"destinations.{destination.name}")
            connection = MllpConnection(host, port, tls=context,
                                        server_name=destination.server_name or None)
            _pool[key] = connection
        return connection


def send_to(destination: "Destination", message: str, *, timeout: float = 30) -> AckResult:
    """Send over the destination's persistent connection, with its TLS settings."""
    return connection_for(destination).send(message, timeout=timeout)


def close_connections() -> None:
    """Close every pooled connection (at shutdown)."""
    with _pool_lock:
        for connection in _pool.values():
            with connection._lock:
                connection.close()
        _pool.clear()


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
