"""Syslog transport of audit messages to an Audit Record Repository (IHE ITI-20).

The message is RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, with PRI 85
(facility 10 security/authorization, severity 5 notice), APP-NAME `telederm`, MSGID
`IHE+RFC-3881` as ATNA asks, no structured data, and MSG the XML as UTF-8 behind a BOM
(RFC 5424 6.4). Over TCP and TLS each message is framed by octet counting (RFC 6587 3.4.1,
RFC 5425 4.3: `LENGTH SP MESSAGE`); over UDP it is one datagram (RFC 5426).

Delivery is one connection per message: the worker sends audit events one at a time on a
line of their own, and a repository that closed an idle connection would otherwise lose the
next one unseen. A TCP or TLS send that completes was handed to the peer's kernel; syslog has
no application acknowledgement (a residual risk conformance/security.md states).
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass

PRI = 10 * 8 + 5
APP_NAME = "telederm"
MSGID = "IHE+RFC-3881"
BOM = b"\xef\xbb\xbf"
MAX_UDP = 65000  # bytes a datagram may carry here


@dataclass(frozen=True)
class Target:
    scheme: str   # tcp | tls | udp
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> "Target":
        scheme, _, address = url.partition("://")
        host, _, port = address.rpartition(":")
        return cls(scheme, host.strip("[]"), int(port))


def _header_field(text: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most `limit` characters, or NILVALUE."""
    clean = "".join(c for c in text if "!" <= c <= "~")[:limit]
    return clean or "-"


def frame(xml: bytes, *, timestamp: str, hostname: str, procid: str | None = None) -> bytes:
    """One RFC 5424 message (not yet framed for TCP)."""
    header = (f"<{PRI}>1 {_header_field(timestamp, 64)} {_header_field(hostname, 255)} "
              f"{APP_NAME} {_header_field(procid or str(os.getpid()), 128)} {MSGID} - ")
    return header.encode("ascii") + BOM + xml


def octet_counted(message: bytes) -> bytes:
    return str(len(message)).encode("ascii") + b" " + message


def send(target: Target, message: bytes, *, timeout: float = 10,
         tls: ssl.SSLContext | None = None) -> None:
    """Deliver one message; OSError (ssl.SSLError included) when it cannot be."""
    if target.scheme == "udp":
        if len(message) > MAX_UDP:
            raise OSError(f"audit message of {len(message)} bytes is too large for UDP")
        with socket.socket(_family(target), socket.SOCK_DGRAM) as sock:
            sock.sendto(message, (target.host, target.port))
        return
    with socket.create_connection((target.host, target.port), timeout=timeout) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if target.scheme == "tls":
            context = tls or ssl.create_default_context()
            with context.wrap_socket(raw, server_hostname=target.host) as sock:
                sock.sendall(octet_counted(message))
                _close_tls(sock)
        else:
            raw.sendall(octet_counted(message))


def _close_tls(sock: ssl.SSLSocket) -> None:
    """Send close_notify, so the repository reads the whole message before the end."""
    try:
        sock.unwrap()
    except (OSError, ValueError):
        pass


def _family(target: Target) -> int:
    return socket.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)[0][0]
