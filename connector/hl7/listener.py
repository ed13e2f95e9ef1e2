"""The inbound MLLP server: frames in, handler, framed ACK out — in order, per connection.

The listener owns transport only (pynetdicom/HAPI shape): each complete frame goes to one
synchronous `handler(raw_bytes, peer) -> ack_bytes`, which does accept checks, the durable inbox
write and builds the ACK. Handlers run on the listener's event loop, one call at a time, so
durable writes are serialised across all connections: give the listener a loop (a thread) of
its own, as the server does. While a handler runs, frames arriving on other connections wait
in the kernel; they are read together afterwards and, with `batch_handler(items) -> acks`, go
to the handler as one batch committed at once (group commit), which is what lets several
connections share the cost of each durable write. Running on the loop, not in a thread pool,
saves two thread hand-offs per batch: at a thousand messages a second they cost more than the
write itself. A handler that raises gets its error rendered (an `Hl7Error` as itself, anything
else as AR/207) and the connection keeps serving the messages that follow. A message over
`max_size` is dropped and answered AE/207.

Connections are asyncio protocols (no stream reader, task or timer per read): a peer that
sends frames without waiting for their ACKs is paused after `MAX_BATCH` unanswered ones.

Timeouts: a connection with no frame under way is closed after `idle_timeout` seconds of
silence; one that stopped in the middle of a frame (a start block, no end block yet) after
`read_timeout` seconds without a byte. `ssl` (an `ssl.SSLContext`, see `tls.server_context`)
makes it MLLP over TLS; a failed handshake (a plain client, a client without the required
certificate) closes that connection only. `name` tells several listeners apart in the logs.

Logs carry the peer address and MSH-10 only, never message content.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl as ssl_module
import time
import uuid
from collections.abc import Callable

from .ack import ack_for_unparseable
from .errors import Hl7Error
from .mllp import FrameReader, FrameTooLarge, frame
from .parse import encode, salvage_header

log = logging.getLogger(__name__)
# Tracebacks of handler failures may quote message values: a separate logger, off by default.
trace_log = logging.getLogger(__name__ + ".traceback")

Handler = Callable[[bytes, str], bytes]
# Messages that arrived together -> their ACKs, in order: lets the handler commit them at once.
BatchHandler = Callable[[list[tuple[bytes, str]]], list[bytes]]
MAX_BATCH = 64  # messages per handler call; also the unanswered frames a connection may have
# Group commit: a batch waits (at most GROUP_WAIT seconds) for the next message of every
# connection that sent one in the last BUSY seconds, since each sender waits for its ACK before
# sending again: without the wait, batches of one or two pay a durable commit each.
GROUP_WAIT, BUSY = 0.001, 0.05


class MllpListener:
    """`await start()` binds (port 0 picks a free one, see `.port`); `await stop()` closes.

    On stop, a batch already handled is answered; frames not handled yet are not, and the
    peer resends them (a duplicate is recognised by MSH-10 downstream).
    """

    def __init__(self, host: str, port: int, handler: Handler, *,
                 max_size: int = 20 * 1024 * 1024, idle_timeout: float | None = 300.0,
                 read_timeout: float | None = 60.0, ssl: ssl_module.SSLContext | None = None,
                 name: str = "hl7", sending: tuple[str, str] = ("TELEDERM", "TELEDERM"),
                 batch_handler: BatchHandler | None = None, reuse_port: bool = False):
        self.host, self.port = host, port
        # SO_REUSEPORT: several processes listen on one address, the kernel spreads the
        # connections between them (`telederm serve --workers N`).
        self.reuse_port = reuse_port
        self.handler = handler
        self.max_size = max_size
        self.idle_timeout = idle_timeout  # silent seconds between frames before closing
        self.read_timeout = read_timeout  # silent seconds inside a frame before closing
        self.ssl = ssl
        self.name = name
        self.sending = sending  # our identity in ACKs the listener writes itself
        self.batch_handler = batch_handler
        self._queued: list[tuple[_Connection, bytes | FrameTooLarge]] = []
        self._due: asyncio.Handle | asyncio.TimerHandle | None = None  # the next _drain
        self._due_now = False
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._closed: asyncio.Event | None = None

    async def start(self) -> None:
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self), self.host, self.port, ssl=self.ssl,
            reuse_port=self.reuse_port or None,
            ssl_handshake_timeout=(self.read_timeout or None) if self.ssl else None)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("HL7 listener %s on %s:%s%s", self.name, self.host, self.port,
                 " (TLS)" if self.ssl else "")

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self._queued.clear()
        if self._due is not None:
            self._due.cancel()
        for connection in list(self._connections):
            connection.transport.abort()
        await self._server.wait_closed()
        self._server = None
        log.info("HL7 listener %s on %s:%s stopped", self.name, self.host, self.port)

    # --- the handler side, on the loop ------------------------------------------------------
    def _enqueue(self, connection: "_Connection", item: bytes | FrameTooLarge) -> None:
        self._queued.append((connection, item))
        if not self._due_now:
            self._schedule()

    def _schedule(self) -> None:
        """Drain at once when every busy connection has a message waiting, else after
        GROUP_WAIT (or when the last of them arrives)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting = {connection for connection, _ in self._queued}
        if all(c in waiting for c in self._connections if now - c.last_message < BUSY):
            if self._due is not None:
                self._due.cancel()
            self._due, self._due_now = loop.call_soon(self._drain), True
        elif self._due is None:
            self._due = loop.call_at(now + GROUP_WAIT, self._drain)

    def _drain(self) -> None:
        """Handle what was queued (up to MAX_BATCH), answer it, and come back for the rest
        after the loop has read what arrived meanwhile."""
        self._due, self._due_now = None, False
        batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
        messages = [(item, connection.peer) for connection, item in batch
                    if not isinstance(item, FrameTooLarge)]
        results = iter(self._run_batch(messages) if messages else [])
        for connection, item in batch:
            if isinstance(item, FrameTooLarge):
                ack = self._too_large(item, connection.peer)
            else:
                ack = self._answer(item, connection.peer, next(results))
            connection.answered(frame(ack))
        if self._queued:  # they have waited already
            self._due, self._due_now = asyncio.get_running_loop().call_soon(self._drain), True

    def _run_batch(self, items: list[tuple[bytes, str]]) -> list[bytes | Exception]:
        """One call of the batch handler, or the handler per message; an exception is the
        answer of the message(s) it concerns."""
        if self.batch_handler is not None:
            try:
                results = list(self.batch_handler(items))
            except Exception as exc:  # noqa: BLE001 - rendered by _answer for each message
                return [exc] * len(items)
            if len(results) != len(items):
                return [TypeError("batch handler must answer each message")] * len(items)
            return results
        results: list[bytes | Exception] = []
        for item, peer in items:
            try:
                results.append(self.handler(item, peer))
            except Exception as exc:  # noqa: BLE001 - rendered by _answer
                results.append(exc)
        return results

    def _answer(self, item: bytes, peer: str, result: bytes | Exception) -> bytes:
        """The handler's ACK, or an ACK rendering its error. The handler logs what it did; the
        MSH-10 is read here only when an error is logged."""
        if not isinstance(result, Exception) and (not isinstance(result, bytes) or not result):
            result = TypeError("handler must return the ACK as non-empty bytes")
        if not isinstance(result, Exception):
            return result
        control_id = salvage_header(item).control_id or "(no MSH-10)"
        if isinstance(result, Hl7Error):
            log.warning("message %s from %s: ERR %s at %s", control_id, peer, result.hl7_code,
                        result.location)
            return self._error_ack(item, result)
        log.error("message %s from %s: handler failed with %s; answered AR",
                  control_id, peer, type(result).__name__)
        trace_log.debug("handler failure for message %s", control_id, exc_info=result)
        return self._error_ack(item, Hl7Error("internal error while accepting the message",
                                              hl7_code=207, hint="resend later"))

    def _too_large(self, item: FrameTooLarge, peer: str) -> bytes:
        log.warning("message %s from %s exceeds %d bytes; answered AE",
                    salvage_header(item.head).control_id, peer, self.max_size)
        return self._error_ack(item.head, Hl7Error(
            f"message larger than {self.max_size} bytes", hl7_code=207, ack_code="AE",
            hint="split the message or ask for a larger listener limit"))

    def _error_ack(self, raw: bytes, error: Hl7Error) -> bytes:
        now = dt.datetime.now().strftime("%Y%m%d%H%M%S")
        return encode(ack_for_unparseable(raw, error, uuid.uuid4().hex[:20], now, self.sending))


class _Connection(asyncio.Protocol):
    """One peer: frames out of its bytes into the listener's queue, ACKs back in order, and
    the idle / stalled-frame timeouts (one timer, re-armed from the last byte's time)."""

    def __init__(self, listener: MllpListener):
        self.listener = listener
        self.frames = FrameReader(listener.max_size)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.unanswered = 0
        self.paused = False
        self.ended = False  # the peer closed its sending side
        self.last_byte = time.monotonic()
        self.last_message = float("-inf")  # loop time of its last complete frame
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        host, port = (transport.get_extra_info("peername") or ("?", 0))[:2]
        self.peer = f"{host}:{port}"
        self.listener._connections.add(self)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self.last_byte = time.monotonic()
        for item in _complete(self.frames, data):
            self.unanswered += 1
            self.last_message = self.last_byte
            self.listener._enqueue(self, item)
        timeout = self._timeout()
        if timeout and self.timer is not None and self.last_byte + timeout < self.timer.when():
            self.timer.cancel()  # now inside a frame: the shorter read timeout applies
            self._arm()
        if self.unanswered >= MAX_BATCH and not self.paused:
            self.paused = True  # a peer not waiting for its ACKs: stop reading it for now
            self.transport.pause_reading()

    def answered(self, ack: bytes) -> None:
        self.unanswered -= 1
        if self.transport.is_closing():
            return
        self.transport.write(ack)
        if self.ended and not self.unanswered:
            self.transport.close()  # the peer has sent all it will: every message answered
        elif self.paused and self.unanswered < MAX_BATCH // 2:
            self.paused = False
            self.transport.resume_reading()

    def eof_received(self):
        """The peer will send nothing more (it may still read): answer what it sent, then
        close (a TLS transport cannot stay half-open: closed at once)."""
        self.ended = True
        return bool(self.unanswered)

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.listener._connections.discard(self)
        if isinstance(exc, (ConnectionError, ssl_module.SSLError)):
            log.info("HL7 connection from %s on %s lost", self.peer, self.listener.name)
        if self.frames.discarded:
            log.warning("discarded %d bytes outside MLLP frames from %s",
                        self.frames.discarded, self.peer)

    def _timeout(self) -> float | None:
        listener = self.listener
        return listener.read_timeout if self.frames.in_frame else listener.idle_timeout

    def _arm(self) -> None:
        """Wake at the current state's deadline (or, with no timeout for it, at the shorter
        of the two, to see whether the state changed)."""
        listener = self.listener
        timeout = self._timeout() or min(
            (t for t in (listener.read_timeout, listener.idle_timeout) if t), default=None)
        if timeout:
            self.timer = asyncio.get_running_loop().call_at(self.last_byte + timeout, self._check)

    def _check(self) -> None:
        """Close a silent connection; else wait again from its last byte (a connection with
        answers still to come is not silent: its peer is waiting for us)."""
        self.timer = None
        if self.transport.is_closing():
            return
        timeout = self._timeout()
        if timeout and not self.unanswered and time.monotonic() - self.last_byte >= timeout:
            log.info("closing %s HL7 connection from %s on %s",
                     "stalled (partial frame)" if self.frames.in_frame else "idle", self.peer,
                     self.listener.name)
            self.transport.close()
            return
        if self.unanswered:
            self.last_byte = time.monotonic()
        self._arm()


def _complete(reader: FrameReader, data: bytes) -> list[bytes | FrameTooLarge]:
    """Frames completed by `data`, with an oversized frame's error in its place in the order."""
    items: list[bytes | FrameTooLarge] = []
    while True:
        try:
            items += reader.feed(data)
            return items
        except FrameTooLarge as exc:
            items += exc.frames
            items.append(exc)
            data = b""
