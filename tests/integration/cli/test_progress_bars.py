"""The progress bars of the long commands (`wrap`, `hl7 send`) as an operator and a script see
them: drawn on stderr when stderr is a terminal (a real pseudo-terminal here), absent when it
is not, and stdout keeps exactly the lines scripts read in both cases."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from connector.demo import demo_order
from tests.support.cli import COMMAND_DEADLINE, clean_env, telederm
from tests.support.peers import RecordingPeer


def on_terminal_stderr(*args: str | Path) -> tuple[subprocess.CompletedProcess, str]:
    """Run `telederm ARGS` with stdout piped and stderr on a pseudo-terminal (wide enough for
    the whole bar); its result and what the terminal showed."""
    controller, terminal = pty.openpty()
    env = clean_env(COLUMNS="160", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "connector.entrypoints.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=terminal, text=True, env=env)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed the terminal (EIO on Linux)
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    stdout, _ = proc.communicate(timeout=COMMAND_DEADLINE)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, ""), \
        shown.decode("utf-8", "replace")


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    out = []
    for i in range(3):
        path = tmp_path / f"p{i}.jpg"
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 150 + i, 140)).save(buffer, "JPEG")
        path.write_bytes(buffer.getvalue())
        out.append(path)
    return out


def test_wrap_draws_a_bar_on_stderr_when_stderr_is_a_terminal(tmp_path, photos):
    result, shown = on_terminal_stderr("wrap", *photos, "--out", tmp_path / "out")
    assert result.returncode == 0, shown
    assert result.stdout.splitlines() == [str(tmp_path / "out" / f"p{i}.dcm") for i in range(3)]
    assert "wrap" in shown and "3/3" in shown and "/s" in shown, shown


def test_wrap_prints_no_bar_when_stderr_is_not_a_terminal(tmp_path, photos):
    result = telederm("wrap", *photos, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 3


def test_hl7_send_draws_a_bar_and_keeps_the_acks_on_stdout_when_stderr_is_a_terminal(tmp_path):
    files = []
    for i in range(2):
        path = tmp_path / f"o{i}.hl7"
        path.write_text(demo_order(f"BAR-{i}", f"PL-BAR-{i}"), encoding="utf-8")
        files.append(path)
    peer = RecordingPeer("ehr").start()
    try:
        result, shown = on_terminal_stderr("hl7", "send", *files, "--to", f"127.0.0.1:{peer.port}")
    finally:
        peer.stop()
    assert result.returncode == 0, shown
    assert [line.split(": ", 1)[1].split()[:2] for line in result.stdout.splitlines()] == [
        ["AA", "BAR-0"], ["AA", "BAR-1"]]
    assert "send" in shown and "2/2" in shown, shown
    assert "AA" not in shown  # the ACK lines went to the pipe, not through the bar
