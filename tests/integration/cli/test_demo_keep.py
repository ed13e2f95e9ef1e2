"""`telederm demo --keep` as its own process: it prints an admin token and a dermatologist's
login that work on the API and the /ui/ pages, and SIGTERM stops it with its Orthanc, as
Ctrl-C does (the process gone, its HTTP port free)."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.cli import clean_env, process_alive
from tests.support.ui import csrf
from tests.support.wait import wait_until

DEMO_DEADLINE = 240  # Orthanc start, one case end to end, a second case opened
EXIT_DEADLINE = 60


class DemoProcess:
    """The demo subprocess and the lines it has printed so far (read by a thread)."""

    def __init__(self):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector.entrypoints.cli", "demo", "--keep"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=clean_env(TCP_NODELAY="1"))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def found(self, pattern: str) -> re.Match | None:
        return re.search(pattern, self.output())


def _port_free(port: int) -> bool:
    """Nobody listens on `port`: it can be bound and listened on again (SO_REUSEADDR, as any
    server does, so the closed connections still in TIME_WAIT there do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
            probe.listen()
        except OSError:
            return False
    return True


@pytest.fixture
def demo():
    running = DemoProcess()
    yield running
    if running.proc.poll() is None:
        running.proc.kill()
        running.proc.wait(EXIT_DEADLINE)
    work = running.found(r"data folder (\S+)")
    if work:
        shutil.rmtree(work.group(1), ignore_errors=True)


def test_demo_keep_prints_working_logins_and_sigterm_stops_its_orthanc(demo):
    wait_until(lambda: demo.found(r"Running until Ctrl-C") or demo.proc.poll() is not None,
               timeout=DEMO_DEADLINE, what="the demo to reach its --keep loop")
    assert demo.proc.poll() is None, demo.output()
    work = Path(demo.found(r"data folder (\S+)").group(1))
    orthanc_port = int(demo.found(r"Orthanc http://127\.0\.0\.1:(\d+)").group(1))
    orthanc_pid = int((work / "orthanc" / "orthanc.pid").read_text())
    base = demo.found(r"Pages for people: (http://\S+)/ui/").group(1)
    token = demo.found(r"Admin token: (\S+)").group(1)
    login, password = demo.found(r"login (\S+) \(specialist\), password (\S+)").groups()
    waiting = demo.found(r"Case (\S+) waits for an answer").group(1)
    assert process_alive(orthanc_pid)

    cases = httpx.get(f"{base}/api/cases", headers={"Authorization": f"Bearer {token}"})
    assert cases.status_code == 200 and len(cases.json()) == 2
    with httpx.Client(base_url=base) as browser:
        form = browser.get("/ui/login")
        r = browser.post("/ui/login", data={"login": login, "password": password,
                                            "csrf": csrf(form.text), "next": "/ui/"})
        assert r.status_code == 303
        worklist = browser.get("/ui/")
        assert worklist.status_code == 200 and f'data-accession="{waiting}"' in worklist.text

    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(EXIT_DEADLINE) == 0, demo.output()
    demo._reader.join(10)
    assert "Stopped Orthanc, the connector and the peers." in demo.output()
    assert "Traceback" not in demo.output()
    assert not process_alive(orthanc_pid)
    assert _port_free(orthanc_port)
