"""A syslog collector for tests (an Audit Record Repository's receiving side): a real socket
server on loopback taking RFC 5424 messages over TCP with octet counting (RFC 6587), over TLS
(RFC 5425, with the test PKI's server certificate) or over UDP (RFC 5426), kept in
`.messages` as the bytes between the framing. `parse(message)` splits one into its header
fields and its MSG (the BOM removed)."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Syslog:
    pri: str
    version: str
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    msg: bytes


def parse(message: bytes) -> Syslog:
    head, _, rest = message.partition(b">")
    fields = rest.split(b" ", 7)
    msg = fields[7].removeprefix(b"\xef\xbb\xbf")
    return Syslog(head.lstrip(b"<").decode(), *(f.decode("ascii") for f in fields[:7]), msg)


class SyslogCollector:
    def __init__(self, scheme: str = "tcp", *, tls: ssl.SSLContext | None = None):
        self.scheme = scheme
        self.tls = tls
        self.messages: list[bytes] = []
        self.errors: list[str] = []
        kind = socket.SOCK_DGRAM if scheme == "udp" else socket.SOCK_STREAM
        self._sock = socket.socket(socket.AF_INET, kind)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> "SyslogCollector":
        if self.scheme != "udp":
            self._sock.listen()
        self._sock.settimeout(0.2)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if self.scheme == "udp":
                    self.messages.append(self._sock.recvfrom(65535)[0])
                    continue
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        """Octet-counted frames until the peer closes."""
        conn.settimeout(10)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            buffer = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while b" " in buffer:
                    length, _, rest = buffer.partition(b" ")
                    if not length.isdigit():
                        self.errors.append(f"not octet counted: {buffer[:20]!r}")
                        return
                    if len(rest) < int(length):
                        break
                    self.messages.append(rest[:int(length)])
                    buffer = rest[int(length):]
            if buffer:
                self.errors.append(f"{len(buffer)} bytes left unframed")
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
