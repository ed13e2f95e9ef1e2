"""Run the `telederm` command line as a real subprocess, read what it says, and write the
configuration files it reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from connector.ports import free_port

# A command that never comes back within this deadline is a failure, not a hang of the suite.
COMMAND_DEADLINE = 120


# The shipped mappings' example dermatoscope is refused outside the demo; the tests that start
# the connector on the shipped mappings accept it, as the demo does.
EXAMPLE_DEVICES = {"TELEDERM_IMAGES_EXAMPLE_DEVICES": "true"}


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the caller's TELEDERM_* overrides (so only the test's config
    counts), accepting the shipped example dermatoscope unless `extra` says otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEDERM_")}
    env.update(EXAMPLE_DEVICES)
    env.update(extra)
    return env


def telederm(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
             stdin: str = "") -> subprocess.CompletedProcess:
    """`python -m connector.entrypoints.cli ARGS` with this interpreter, `stdin` as its standard
    input, output captured as text."""
    return subprocess.run([sys.executable, "-m", "connector.entrypoints.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env or clean_env(),
                          input=stdin, timeout=COMMAND_DEADLINE)


def one_error_line(result: subprocess.CompletedProcess, code: int) -> str:
    """Assert the CLI error rendering (STYLE.md): exit `code`, one `telederm: ` line on stderr,
    no traceback; return that line."""
    lines = result.stderr.splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("telederm: "), result.stderr
    return lines[0]


def process_alive(pid: int) -> bool:
    """True while `pid` is a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def write_config(path: Path, data_dir: Path, body: str = "") -> Path:
    """A config with its data folder in the test's tmp_path and every port free right now."""
    ports: list[int] = []
    for _ in range(4):
        ports.append(free_port(tuple(ports)))
    http, hl7, orthanc, dicom = ports
    path.write_text(f"""data_dir = "{data_dir}"
[http]
listen = "127.0.0.1:{http}"
[hl7]
listen = "127.0.0.1:{hl7}"
[orthanc]
url = "http://127.0.0.1:{orthanc}"
dicom_port = {dicom}
password = "cli-test-secret"
stable_age = 1
stop_seconds = 0
{body}""", encoding="utf-8")
    return path


def write_serve_config(path: Path, *, data_dir: Path, http_port: int, hl7_port: int,
                       orthanc_port: int, dicom_port: int, password: str, ehr_port: int,
                       accounting_port: int, token: str, extra: str = "") -> Path:
    """The telederm.toml of a connector served on loopback ports with its managed Orthanc, an
    EHR peer (requester) and an accounting peer over MLLP, and an admin token; `extra` holds
    more sections (e.g. `[worker]`)."""
    path.write_text(f"""data_dir = "{data_dir}"
[http]
listen = "127.0.0.1:{http_port}"
[hl7]
listen = "127.0.0.1:{hl7_port}"
[orthanc]
url = "http://127.0.0.1:{orthanc_port}"
dicom_port = {dicom_port}
password = "{password}"
stable_age = 1
stop_seconds = 0
{extra}
[[destinations]]
name = "ehr"
role = "requester"
transport = "mllp"
address = "127.0.0.1:{ehr_port}"
[[destinations]]
name = "accounting"
role = "accounting"
transport = "mllp"
address = "127.0.0.1:{accounting_port}"
[[api.tokens]]
name = "it-admin"
role = "admin"
token = "{token}"
""", encoding="utf-8")
    return path
