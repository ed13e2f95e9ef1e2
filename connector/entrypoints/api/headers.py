"""Security headers on every response of the API and the pages (ASGI middleware).

Nearly every answer carries patient data (cases, images, reports, problem bodies naming an
accession), so every response is `Cache-Control: no-store` unless its route chose otherwise:
no browser, proxy or shared cache keeps a copy. Nothing may frame a page (clickjacking on
the answer form): `X-Frame-Options: DENY` for old browsers, CSP `frame-ancestors 'none'` for
the others (a route's own stricter CSP, such as the pages', is kept). `nosniff` stops a
browser from running an upload as script; `no-referrer` keeps accession-bearing URLs out of
the Referer header. On TLS, `Strict-Transport-Security` tells browsers to come back over
HTTPS only.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = "max-age=31536000"
DEFAULTS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"), ("Content-Security-Policy", "frame-ancestors 'none'"),
            ("Referrer-Policy", "no-referrer"))


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in DEFAULTS:
                    if name not in headers:
                        headers[name] = value
                if tls:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)
