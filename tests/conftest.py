"""Shared fixtures: real parts on free ports, never mocks where the real thing runs here.

`orthanc` is one Debian Orthanc (with the TeleDerm plugin and DICOMweb) per test module;
`orthanc_factory` starts extra instances with their own settings (e.g. a `connector_url`) and
stops them when the test ends; `postgres_server` is a throwaway PostgreSQL cluster for the
session (`postgres_server.py`). Helpers are importable as `from conftest import free_port`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import subprocess

import pytest

from connector.archive.client import ArchiveClient
from connector.archive.managed import ManagedOrthanc
from connector.ports import free_port  # noqa: F401 - re-exported for tests
from postgres_server import postgres_server  # noqa: F401 - fixture: a throwaway PostgreSQL

ORTHANC_USER = "telederm"
ORTHANC_PASSWORD = "test-secret"


def unused_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class RunningOrthanc:
    """A started ManagedOrthanc and a client logged into it."""

    managed: ManagedOrthanc
    client: ArchiveClient

    @property
    def url(self) -> str:
        return self.managed.url

    @property
    def dicom_port(self) -> int:
        return self.managed.dicom_port

    @property
    def username(self) -> str:
        return self.managed.username

    @property
    def password(self) -> str:
        return self.managed.password


def start_orthanc(folder: Path, **settings) -> RunningOrthanc:
    """Start an Orthanc in `folder` on free ports; `settings` override ManagedOrthanc arguments."""
    http_port = free_port()
    options = {
        "http_port": http_port,
        "dicom_port": free_port(exclude=(http_port,)),
        "username": ORTHANC_USER,
        "password": ORTHANC_PASSWORD,
        "stable_age": 1,
        "connector_url": unused_url(),
        "connector_token": "test-token",
    }
    options.update(settings)
    managed = ManagedOrthanc(folder, **options)
    managed.start()
    return RunningOrthanc(managed, ArchiveClient(managed.url, managed.username, managed.password))


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> RunningOrthanc:
    """One Orthanc for the whole module; its plugin notifies a connector URL where nothing listens."""
    running = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield running
    running.managed.stop()


@pytest.fixture
def orthanc_factory(tmp_path_factory):
    """Call with ManagedOrthanc keyword arguments (and optionally a folder) to start a dedicated
    Orthanc for this test; it is stopped when the test ends."""
    started: list[RunningOrthanc] = []

    def start(folder: Path | None = None, **settings) -> RunningOrthanc:
        running = start_orthanc(folder or tmp_path_factory.mktemp("orthanc"), **settings)
        started.append(running)
        return running

    yield start
    for running in started:
        running.managed.stop()


def dciodvfy_errors(path) -> list[str]:
    """The "Error" lines dicom3tools' dciodvfy reports for a file (it writes to stderr)."""
    # errors="replace": dciodvfy echoes values in the file's own charset (ISO_IR 100 is Latin-1)
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                         errors="replace", timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


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
