"""What an HTTP client may make the server hold: body size, time to send headers and body.

Why: uvicorn waits as long as a client likes for a request's headers and body, and FastAPI reads
a whole multipart body (spooling its files to disk) before a route can look at its size. So a
client that declares a 10 GB body, or sends its headers and then a byte a minute, would hold a
connection, memory and disk for as long as it wants. Here:

- `RequestGuard` (ASGI middleware) refuses a declared Content-Length above the endpoint's limit
  with 413 before reading a byte of the body, counts the bytes of a chunked body against the
  same limit, answers 408 when the body stops arriving (`body_idle_timeout`) or arrives slower
  than `body_min_rate` once `body_grace` has passed, and 400 when a multipart body ends before
  its closing boundary (a cut upload must not store the parts that did arrive). A refused
  request gets a problem+json answer and `Connection: close`, so the rest is never read.
- `header_timeout_protocol` is uvicorn's h11 protocol with a deadline for a request's headers
  (uvicorn has a keep-alive timeout between requests, but none while headers arrive).

Other clients are never affected: every connection is its own task on the event loop, and a
route's thread only starts once the body is complete.
"""

from __future__ import annotations

import asyncio
import email.message
import json
import re
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import problem

MIB = 1024 * 1024
UPLOAD_PATH = re.compile(r"^/api/cases/[^/]+/images/?$")


@dataclass(frozen=True)
class HttpLimits:
    header_timeout: float = 30.0  # connection (or end of the last answer) to complete headers
    body_idle_timeout: float = 30.0  # longest silence while a body is arriving
    body_grace: float = 30.0  # a body may start slowly ...
    body_min_rate: int = 1024  # ... then must average at least this many bytes per second
    max_body_bytes: int = 2 * MIB  # every request but an image upload (JSON reports etc.)
    upload_overhead_bytes: int = MIB  # part headers and form fields, above images.max_mb


class _Refused(Exception):
    """Raised into the application when the guard refuses a request whose body it is reading."""


class RequestGuard:
    """ASGI middleware; `upload_limit` is the body size an image upload may have, in bytes."""

    def __init__(self, app: ASGIApp, *, limits: HttpLimits, upload_limit: int) -> None:
        self.app = app
        self.limits = limits
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "POST" and UPLOAD_PATH.match(scope["path"]) is not None
        limit = self.upload_limit if upload else self.limits.max_body_bytes
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse_too_large(scope, send, limit, upload, declared=int(declared))
            return
        body = _BodyWatch(self.limits, limit, _closing_delimiter(headers.get("content-type", "")))
        refusal: tuple | None = None
        started = False
        loop = asyncio.get_running_loop()
        body.start = loop.time()

        async def guarded_receive() -> Message:
            nonlocal refusal
            if refusal is not None:
                return {"type": "http.disconnect"}
            if body.complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), body.wait_budget(loop.time()))
            except asyncio.TimeoutError:
                refusal = body.too_slow(loop.time())
                raise _Refused from None
            if message["type"] == "http.request":
                refusal = body.take(message.get("body", b""), message.get("more_body", False))
                if refusal is not None:
                    raise _Refused
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:
                return  # the application's own answer to the cut-off body; ours goes instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
        if refusal is not None and not started:
            if refusal[0] == 413:
                await _refuse_too_large(scope, send, limit, upload)
            else:
                status, code, detail, hint = refusal
                await _answer(scope, send, status, code, detail, hint)


class _BodyWatch:
    """Bytes, time and (for multipart) the closing boundary of one request body."""

    def __init__(self, limits: HttpLimits, limit: int, delimiter: bytes | None) -> None:
        self.limits = limits
        self.limit = limit
        self.delimiter = delimiter
        self.carry = b"\r\n"  # a closing delimiter may open the body (an empty form)
        self.closed = delimiter is None
        self.received = 0
        self.complete = False
        self.start = 0.0

    def wait_budget(self, now: float) -> float:
        """Seconds the next chunk may take: the idle timeout, or less when the average rate
        since the start would fall below the minimum."""
        allowed = self.limits.body_grace + self.received / self.limits.body_min_rate
        return max(0.0, min(self.limits.body_idle_timeout, self.start + allowed - now))

    def too_slow(self, now: float) -> tuple:
        elapsed = now - self.start
        if self.received == 0:
            detail = f"no request body arrived in {elapsed:.0f} s"
        else:
            detail = (f"the request body stopped arriving or arrived too slowly ({self.received} "
                      f"bytes in {elapsed:.0f} s)")
        return (408, "request-timeout", detail,
                "check the network connection and send the request again")

    def take(self, chunk: bytes, more: bool) -> tuple | None:
        self.received += len(chunk)
        if self.received > self.limit:
            return (413,)
        if not self.closed:
            window = self.carry + chunk
            self.closed = self.delimiter in window
            self.carry = window[-(len(self.delimiter) - 1):]
        if not more:
            self.complete = True
            if not self.closed:
                return (400, "truncated-upload",
                        "the multipart body ends before its closing boundary",
                        "the upload was cut short; send it again (nothing was stored)")
        return None


def _closing_delimiter(content_type: str) -> bytes | None:
    """CRLF--boundary-- of a multipart/form-data body; None for other bodies (or no boundary,
    which the form parser refuses itself)."""
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        return None
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return None
    try:
        return b"\r\n--" + boundary.encode("latin-1") + b"--"
    except UnicodeEncodeError:
        return None


async def _refuse_too_large(scope: Scope, send: Send, limit: int, upload: bool, *,
                            declared: int | None = None) -> None:
    detail = (f"the request body declares {declared / MIB:.1f} MiB; this endpoint takes at "
              f"most {limit / MIB:.1f} MiB" if declared is not None else
              f"the request body is larger than the {limit / MIB:.1f} MiB this endpoint takes")
    hint = ("send fewer or smaller photos per request (one photo per request always fits "
            "under images.max_mb)" if upload else "send a smaller request body")
    await _answer(scope, send, 413, "too-large", detail, hint)


async def _answer(scope: Scope, send: Send, status: int, code: str, detail: str,
                  hint: str) -> None:
    """A problem+json answer, then the connection is closed (the body is never read further)."""
    response = problem(status, code, code.replace("-", " "), detail, scope["path"], hint=hint,
                       headers={"Connection": "close"})

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)


def header_timeout_protocol(timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, with `timeout` seconds for a request's headers to arrive after
    the connection opens or the previous answer ends; then the connection is closed, after a
    408 when part of a request had arrived."""
    body = json.dumps({"type": "https://telederm.invalid/problems/request-timeout",
                       "title": "request timeout", "status": 408,
                       "detail": f"the request headers did not arrive within {timeout:g} s",
                       "hint": "check the network connection and send the request again"}
                      ).encode()
    answer = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
              b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
              + body)

    class HeaderTimeoutH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            if not self.transport.is_closing():
                self._header_timer = self.loop.call_later(timeout, self._headers_late, self.cycle)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self, cycle_when_armed) -> None:
            self._header_timer = None
            waiting = self.cycle is cycle_when_armed and (
                cycle_when_armed is None or cycle_when_armed.response_complete)
            if waiting and not self.transport.is_closing():
                if self.conn.trailing_data[0]:  # part of a request came: say why we hang up
                    self.transport.write(answer)
                self.transport.close()  # else an idle connection, closed as keep-alive does

    return HeaderTimeoutH11Protocol
