"""The inbound MLLP server: frames in, handler, framed ACK out — in order, per connection.

The listener owns transport only (pynetdicom/HAPI shape): each complete frame goes to one
synchronous `handler(raw_bytes, peer) -> ack_bytes`, which does accept checks, the durable inbox
write and builds the ACK. Handlers run in a single worker thread, so durable writes are
serialised across all connections and the event loop never blocks. Frames that arrive on other
connections while the thread is busy wait together and go to it as one batch: with
`batch_handler(items) -> acks` they are committed at once (group commit), which is what lets
several connections share the cost of each durable write. A handler that raises gets
its error rendered (an `Hl7Error` as itself, anything else as AR/207) and the connection keeps
serving the messages that follow. A message over `max_size` is dropped and answered AE/207.

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
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

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
MAX_BATCH = 64  # at most one message per connection is ever waiting; this bounds a batch


class MllpListener:
    """`await start()` binds (port 0 picks a free one, see `.port`); `await stop()` closes.

    On stop, a handler already running finishes (its write is durable) but its ACK may not be
    sent; the peer resends and the duplicate is recognised by MSH-10 downstream.
    """

    def __init__(self, host: str, port: int, handler: Handler, *,
                 max_size: int = 20 * 1024 * 1024, idle_timeout: float | None = 300.0,
                 read_timeout: float | None = 60.0, ssl: ssl_module.SSLContext | None = None,
                 name: str = "hl7", sending: tuple[str, str] = ("TELEDERM", "TELEDERM"),
                 batch_handler: BatchHandler | None = None):
        self.host, self.port = host, port
        self.handler = handler
        self.max_size = max_size
        self.idle_timeout = idle_timeout  # silent seconds between frames before closing
        self.read_timeout = read_timeout  # silent seconds inside a frame before closing
        self.ssl = ssl
        self.name = name
        self.sending = sending  # our identity in ACKs the listener writes itself
        self.batch_handler = batch_handler
        self._queued: list[tuple[bytes, str, asyncio.Future]] = []
        self._batching: asyncio.Task | None = None
        self._server: asyncio.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hl7-handler")
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, ssl=self.ssl,
            ssl_handshake_timeout=(self.read_timeout or None) if self.ssl else None)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("HL7 listener %s on %s:%s%s", self.name, self.host, self.port,
                 " (TLS)" if self.ssl else "")

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        self._server = None
        log.info("HL7 listener %s on %s:%s stopped", self.name, self.host, self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        host, port = writer.get_extra_info("peername")[:2]
        peer = f"{host}:{port}"
        frames = FrameReader(self.max_size)
        try:
            while True:
                partial = frames.in_frame
                try:
                    data = await asyncio.wait_for(
                        reader.read(65536), self.read_timeout if partial else self.idle_timeout)
                except asyncio.TimeoutError:
                    log.info("closing %s HL7 connection from %s on %s",
                             "stalled (partial frame)" if partial else "idle", peer, self.name)
                    break
                if not data:
                    break
                for item in _complete(frames, data):
                    writer.write(frame(await self._answer(item, peer)))
                    await writer.drain()
        except (ConnectionError, ssl_module.SSLError):
            log.info("HL7 connection from %s on %s lost", peer, self.name)
        finally:
            if frames.discarded:
                log.warning("discarded %d bytes outside MLLP frames from %s",
                            frames.discarded, peer)
            self._connections.discard(task)
            writer.close()

    async def _answer(self, item: bytes | FrameTooLarge, peer: str) -> bytes:
        if isinstance(item, FrameTooLarge):
            log.warning("message %s from %s exceeds %d bytes; answered AE",
                        salvage_header(item.head).control_id, peer, self.max_size)
            return self._error_ack(item.head, Hl7Error(
                f"message larger than {self.max_size} bytes", hl7_code=207, ack_code="AE",
                hint="split the message or ask for a larger listener limit"))
        # The handler logs what it did; the MSH-10 is read here only when an error is logged.
        try:
            ack = await self._handled(item, peer)
            if isinstance(ack, Exception):
                raise ack
            if not isinstance(ack, bytes) or not ack:
                raise TypeError("handler must return the ACK as non-empty bytes")
            return ack
        except Hl7Error as exc:
            control_id = salvage_header(item).control_id or "(no MSH-10)"
            log.warning("message %s from %s: ERR %s at %s", control_id, peer, exc.hl7_code,
                        exc.location)
            return self._error_ack(item, exc)
        except Exception as exc:
            control_id = salvage_header(item).control_id or "(no MSH-10)"
            log.error("message %s from %s: handler failed with %s; answered AR",
                      control_id, peer, type(exc).__name__)
            trace_log.debug("handler failure for message %s", control_id, exc_info=True)
            return self._error_ack(item, Hl7Error("internal error while accepting the message",
                                                  hl7_code=207, hint="resend later"))

    async def _handled(self, item: bytes, peer: str) -> bytes | Exception:
        """Queue the message for the handler thread and wait for its answer. Messages that
        arrive (from other connections) while a batch is being handled form the next batch."""
        future = asyncio.get_running_loop().create_future()
        self._queued.append((item, peer, future))
        if self._batching is None or self._batching.done():
            self._batching = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queued:
            batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
            results = await loop.run_in_executor(self._executor, self._run_batch,
                                                 [(item, peer) for item, peer, _ in batch])
            for (_, _, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)

    def _run_batch(self, items: list[tuple[bytes, str]]) -> list[bytes | Exception]:
        """In the handler thread: one call of the batch handler, or the handler per message;
        an exception is the answer of the message(s) it concerns."""
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

    def _error_ack(self, raw: bytes, error: Hl7Error) -> bytes:
        now = dt.datetime.now().strftime("%Y%m%d%H%M%S")
        return encode(ack_for_unparseable(raw, error, uuid.uuid4().hex[:20], now, self.sending))


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
