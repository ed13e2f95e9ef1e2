"""Shared parts of the reliability tests (crash recovery, outages): orders and photos that are
each unique, MLLP peers that can be stopped and started again on the same port (answering AA,
AR or AE by script, or never answering), the `telederm serve` process, and readers of what the
peers got and what the store and Orthanc hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import hl7 as pyhl7
import httpx
from PIL import Image, ImageDraw

from connector.demo import demo_order
from connector.hl7.ack import build_ack
from connector.hl7.listener import MllpListener
from connector.hl7.mllp import FrameReader
from connector.hl7.parse import encode, parse
from tests.support.cli import clean_env
from tests.support.peers import RecordingPeer
from tests.support.wait import wait_until

SPECIALIST = {"id": "810001234567", "name": "LEROY^Claire"}
PID_LINE = "PID|1||IPP123456^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI||DUPONT^Hélène^^^^^L||19580312|F"


# --- what is sent ---------------------------------------------------------------------------

def order(control_id: str, placer: str, patient: int) -> str:
    """demo_order (ORM^O01 NW) for patient number `patient`: one patient per case, so the
    yearly billing limits never stop a charge and every report sends a DFT."""
    text = demo_order(control_id, placer)
    assert PID_LINE in text
    return text.replace(PID_LINE, PID_LINE.replace("IPP123456", f"IPP{patient:07d}"))


def photo(seed: int) -> bytes:
    """A small lesion photo whose bytes are unique to `seed` (so its SOP Instance UID is)."""
    img = Image.new("RGB", (160, 120), (200 + seed % 40, 150 + seed % 50, 130))
    draw = ImageDraw.Draw(img)
    x, y = 20 + seed % 90, 15 + (seed // 90) % 70
    draw.ellipse((x, y, x + 40, y + 30), fill=(90, 60, 40))
    draw.text((4, 4), f"{seed}", fill=(10, 10, 10))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def report_body(text: str = "Naevus bénin.\nSurveillance annuelle.") -> dict:
    return {"text": text, "conduct": "no_visit", "specialist": SPECIALIST}


# --- peers ----------------------------------------------------------------------------------

class Peer(RecordingPeer):
    """A RecordingPeer on a chosen port (0: any) that answers each message with the next code
    of `script` ("AA", "AR" or "AE"), then `then`. `stop()` and a new Peer on the same port is
    an accounting system restarted."""

    def __init__(self, name: str, port: int = 0, *, script: list[str] | None = None,
                 then: str = "AA"):
        super().__init__(name)
        self.port = port
        self.script = list(script or [])
        self.then = then
        self.answers: list[tuple[str, str]] = []  # (MSH-10, code) in the order answered

    def _handle(self, raw: bytes, peer: str) -> bytes:
        msg = parse(raw)
        self.messages.append(raw.decode("utf-8"))
        code = self.script.pop(0) if self.script else self.then
        self.answers.append((msg.control_id, code))
        return encode(build_ack(msg, code, [], f"{self.name.upper()[:6]}{len(self.messages)}",
                                time.strftime("%Y%m%d%H%M%S"), sending=(self.name.upper(), "")))

    def _run(self) -> None:
        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            listener = MllpListener("127.0.0.1", self.port, self._handle)
            await listener.start()
            self.port = listener.port
            self._ready.set()
            await self._stop.wait()
            await listener.stop()
        asyncio.run(main())

    def start(self) -> "Peer":
        super().start()
        assert self._ready.is_set(), f"peer {self.name} could not listen on {self.port}"
        return self

    def control_ids(self) -> list[str]:
        return [str(m.segment("MSH")[10]) for m in self.parsed()]

    def accepted(self) -> list[str]:
        """MSH-10 of the messages this peer answered AA, in that order."""
        return [cid for cid, code in self.answers if code == "AA"]


class SilentPeer:
    """Accepts MLLP connections, reads what comes, and never answers (a hung interface engine).
    `stop()` closes the listening socket and every connection."""

    def __init__(self, port: int = 0):
        self._server = socket.create_server(("127.0.0.1", port))  # SO_REUSEADDR on POSIX
        self.port = self._server.getsockname()[1]
        self.frames: list[bytes] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="silent-peer", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        reader = FrameReader(64 * 1024 * 1024)
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.frames.extend(f for f in reader.feed(data) if isinstance(f, bytes))

    def control_ids(self) -> list[str]:
        with self._lock:
            return [parse(f).control_id for f in self.frames]

    def stop(self) -> None:
        self._closed = True
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()


# --- what the peers got ---------------------------------------------------------------------

def by_control_id(messages: list[str]) -> dict[str, list[str]]:
    """Received messages grouped by MSH-10 (a repeat is the same message sent again)."""
    out: dict[str, list[str]] = defaultdict(list)
    for text in messages:
        out[str(pyhl7.parse(text).segment("MSH")[10])].append(text)
    return dict(out)


def first_arrivals(messages: list[str]) -> list[str]:
    """Distinct MSH-10s in the order they first arrived."""
    seen: dict[str, None] = {}
    for text in messages:
        seen.setdefault(str(pyhl7.parse(text).segment("MSH")[10]), None)
    return list(seen)


def logical_effects(messages: list[str]) -> dict[tuple, set[str]]:
    """For each logical effect, the MSH-10s that carried it: an ORU by (accession OBR-3,
    result status OBX-11 of its first OBX), a DFT charge line by its FT1-2 transaction id.
    HL7 receivers drop a repeat by MSH-10, so exactly once means one MSH-10 per effect."""
    out: dict[tuple, set[str]] = defaultdict(set)
    for text in messages:
        msg = pyhl7.parse(text)
        control_id = str(msg.segment("MSH")[10])
        kind = str(msg.segment("MSH")[9]).split("^")[0]
        if kind == "ORU":
            out[("ORU", str(msg.segment("OBR")[3]).split("^")[0],
                 str(msg.segment("OBX")[11]))].add(control_id)
        elif kind == "DFT":
            for ft1 in msg.segments("FT1"):
                out[("FT1", str(ft1[2]))].add(control_id)
        else:
            out[(kind, control_id)].add(control_id)
    return dict(out)


def redelivered(messages: list[str]) -> dict[str, int]:
    """MSH-10 -> how many extra copies arrived (at-least-once transport after a failure)."""
    return {cid: n - 1 for cid, n in Counter(
        str(pyhl7.parse(t).segment("MSH")[10]) for t in messages).items() if n > 1}


# --- the store and Orthanc ------------------------------------------------------------------

def db_rows(db: Path, sql: str, *params) -> list[tuple]:
    """Rows from the connector's SQLite file, read-only (the connector may be running)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return conn.execute(sql, params).fetchall()


def orthanc_sop_uids(url: str, auth: tuple[str, str]) -> list[str]:
    """SOP Instance UID of every instance Orthanc holds (a duplicate would show twice)."""
    instances = httpx.get(f"{url}/instances", params={"expand": ""}, auth=auth, timeout=60)
    instances.raise_for_status()
    return [i["MainDicomTags"]["SOPInstanceUID"] for i in instances.json()]


# --- the serve process ----------------------------------------------------------------------

class ServeProcess:
    """`python -m connector.entrypoints.cli serve --config FILE` as a child process, its output in files."""

    def __init__(self, config_path: Path, http_port: int, work: Path):
        self.config_path, self.http_port, self.work = config_path, http_port, work
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self, deadline: float = 90) -> "ServeProcess":
        self.runs += 1
        out = open(self.work / f"serve{self.runs}.out", "wb")
        err = open(self.work / f"serve{self.runs}.err", "wb")
        with out, err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "connector.entrypoints.cli", "serve", "--config",
                 str(self.config_path)], stdout=out, stderr=err, cwd=self.work, env=clean_env())
        wait_until(lambda: self.proc.poll() is not None or self.healthy(), deadline,
                   "GET /api/health to answer")
        assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}:\n{self.logs()}"
        return self

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/api/health",
                             timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (no lease given back, no connection closed)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, deadline: float = 90) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        try:
            return self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.work.glob("serve*.*")))


def telederm(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m connector.entrypoints.cli ARGS` with this interpreter, output captured as text."""
    return subprocess.run([sys.executable, "-m", "connector.entrypoints.cli", *map(str, args)],
                          capture_output=True, text=True, env=clean_env(), timeout=timeout)

