"""MLLP framing on bytes: `0x0B` + message + `0x1C 0x0D`.

Bytes only, never text: the character set is known only after MSH-18 is read (`parse.decode`),
so framing must not decode (python-hl7's stream reader does, with one fixed codec).
"""

from __future__ import annotations

from connector.domain.errors import ConnectorError

START = b"\x0b"
END = b"\x1c\x0d"
_HEAD = 4096  # bytes of an oversized frame kept, enough to salvage its MSH for the ACK


def frame(message: bytes) -> bytes:
    """Wrap one message in an MLLP block."""
    return START + message + END


class FrameTooLarge(ConnectorError):
    """A frame grew past the reader's `max_size`; its bytes were dropped.

    `head` is the start of the dropped frame (to salvage MSH for a negative ACK); `frames` are
    the complete frames that came before it in the same `feed()` call, in order. The reader has
    kept the rest of that call's data: call `feed(b"")` to go on.
    """

    code = "hl7-frame-too-large"
    http_status = 413

    def __init__(self, max_size: int, head: bytes, frames: list[bytes]):
        super().__init__(f"MLLP frame larger than {max_size} bytes", where="MLLP",
                         hint="send a smaller message or raise the listener's max_size")
        self.head = head
        self.frames = frames


class FrameReader:
    """Incremental MLLP deframer for one connection.

    - Bytes outside a frame (before a start block) are dropped and counted in `discarded`.
    - A start block inside a frame means the earlier frame was cut short: it is dropped and
      the new one starts (resync).
    - A frame past `max_size` raises `FrameTooLarge`; the reader then skips to that frame's end
      block and carries on with the next frame.
    """

    def __init__(self, max_size: int = 20 * 1024 * 1024):
        self.max_size = max_size
        self.discarded = 0
        self._buf = bytearray()
        self._in_frame = False  # after a start block, before its end block
        self._skipping = False  # inside a frame already reported too large
        self._scanned = 0  # bytes of _buf already searched for block markers

    @property
    def in_frame(self) -> bool:
        """True between a start block and its end block: a frame has begun and is not done
        (the listener then waits `read_timeout` for more, not `idle_timeout`)."""
        return self._in_frame or self._skipping

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return the messages (without framing) completed by it, in order."""
        self._buf += data
        frames: list[bytes] = []
        while True:
            if not (self._in_frame or self._skipping):
                start = self._buf.find(START)
                if start < 0:
                    self.discarded += len(self._buf)
                    self._buf.clear()
                    return frames
                self.discarded += start
                self._enter_frame(start)
            end = self._buf.find(END, self._scanned)
            restart = self._buf.find(START, self._scanned, end if end >= 0 else len(self._buf))
            if restart >= 0:  # a new frame began before this one ended
                if self._in_frame:
                    self.discarded += restart
                self._enter_frame(restart)
                continue
            if end < 0:
                return self._wait_for_more(frames)
            body = bytes(self._buf[:end])
            del self._buf[: end + len(END)]
            was_skipping = self._skipping
            self._in_frame = self._skipping = False
            self._scanned = 0
            if was_skipping:  # the end of a frame already reported too large
                continue
            if len(body) > self.max_size:
                raise FrameTooLarge(self.max_size, body[:_HEAD], frames)
            frames.append(body)

    def _enter_frame(self, start: int) -> None:
        del self._buf[: start + 1]
        self._in_frame, self._skipping, self._scanned = True, False, 0

    def _wait_for_more(self, frames: list[bytes]) -> list[bytes]:
        if self._skipping:  # keep only a trailing 0x1C that may begin the end block
            del self._buf[: -1 if self._buf.endswith(END[:1]) else len(self._buf)]
        elif len(self._buf) - self._buf.endswith(END[:1]) > self.max_size:  # 0x1C: end block
            head = bytes(self._buf[:_HEAD])
            self._buf.clear()
            self._in_frame, self._skipping = False, True
            self._scanned = 0
            raise FrameTooLarge(self.max_size, head, frames)
        self._scanned = max(len(self._buf) - 1, 0)
        return frames
