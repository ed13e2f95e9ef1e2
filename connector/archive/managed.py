"""A local Orthanc that the connector owns: generated config, start, stop, status.

The embedded default runs Debian's Orthanc as a child process with its whole state (config,
database, log, pid file) in one folder, so `telederm orthanc stop` in another process can stop
what `telederm serve` started, and deleting the folder resets the archive.

Orthanc 1.10 quirks handled here: it listens on all interfaces and has no bind address, so
`RemoteAccessAllowed` is false (HTTP from another host is refused), a password is always set,
and DICOM is open only to the declared modalities, each checked by calling AE title and host
(`DicomCheckModalityHost`) and called AE title; it resolves relative paths against its working directory
(so it runs with cwd = folder), and it is started in its own session so that a Ctrl-C on the
CLI reaches us, not Orthanc, and we decide how to stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import httpx

from connector.archive.errors import ArchiveError

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
# The web viewer gives each series a DICOM viewer page (/web-viewer/app/viewer.html?series=ID),
# beside Orthanc Explorer's preview.
PLUGIN_LIBRARIES = ("libOrthancPython.so", "libOrthancDicomWeb.so", "libModalityWorklists.so",
                    "libOrthancWebViewer.so")
WORKLIST_FOLDER = "worklists"  # default `Worklists.Database`, inside the Orthanc folder
PLUGIN_SCRIPT = Path(__file__).resolve().parents[2] / "orthanc_plugin" / "telederm_orthanc.py"

CONFIG_NAME = "orthanc.json"
PID_NAME = "orthanc.pid"
# The pid of the `telederm serve` that started (or adopted) this Orthanc and stops it on exit;
# absent for an Orthanc started by `telederm orthanc start`, which an operator stops.
OWNER_NAME = "orthanc.owner"
LOG_NAME = "orthanc.log"
POLL_INTERVAL = 0.1

# Fragments of Orthanc 1.10 error lines at start-up, mapped to what the user should do.
_LOG_HINTS = (
    ("already in use", "a port is taken: choose free http/dicom ports or stop the other server"),
    ("python", "the TeleDerm Python plugin failed: see the traceback in the log"),
    ("plugin", "an Orthanc plugin failed to load: check the orthanc-python, orthanc-dicomweb "
               "and orthanc-webviewer packages"),
    ("sqlite", "the Orthanc database in the folder is unusable: check permissions or move it away"),
)


@dataclass(frozen=True)
class Modality:
    """A DICOM device the managed Orthanc accepts: it may store, query the worklist and echo
    when it calls as `ae_title` from `host`, nothing else (no C-FIND on studies, no C-MOVE or
    C-GET: viewers use HTTP)."""

    name: str
    ae_title: str
    host: str
    port: int

    def entry(self) -> dict:
        """Its `DicomModalities` entry."""
        return {"AET": self.ae_title, "Host": self.host, "Port": self.port,
                "AllowEcho": True, "AllowStore": True, "AllowFindWorklist": True,
                "AllowFind": False, "AllowMove": False, "AllowGet": False,
                "AllowStorageCommitment": False}


def find_plugin(name: str) -> Path:
    """Absolute path of an Orthanc plugin library from the Debian packages (symlink or versioned file)."""
    for folder in PLUGIN_DIRS:
        for candidate in sorted(folder.glob(name + "*")):
            if candidate.is_file():
                return candidate
    raise ArchiveError(
        f"Orthanc plugin {name} not found",
        where=" or ".join(str(d) for d in PLUGIN_DIRS),
        hint="install the Debian packages orthanc-python, orthanc-dicomweb and orthanc-webviewer",
    )


class ManagedOrthanc:
    """One Orthanc process whose config, database, log and pid file live in `folder`."""

    def __init__(
        self,
        folder: Path,
        *,
        http_port: int,
        dicom_port: int,
        username: str,
        password: str,
        aet: str = "TELEDERM",
        stable_age: int = 60,
        connector_url: str = "",
        connector_token: str = "",
        connector_ca_file: Path | None = None,
        site_packages: list[str] | None = None,
        worklist_folder: Path | None = None,
        modalities: Sequence[Modality] = (),
        stop_timeout: float = 20,
    ):
        self.folder = Path(folder).resolve()
        self.http_port = http_port
        self.dicom_port = dicom_port
        self.username = username
        self.password = password
        self.aet = aet
        self.stable_age = stable_age
        self.connector_url = connector_url
        self.connector_token = connector_token
        # over HTTPS: the connector's certificate, which the plugin pins (telederm_seat.py)
        self.connector_ca_file = connector_ca_file
        self.modalities = tuple(modalities)
        # Seconds a SIGTERM gets before SIGKILL. Orthanc 1.10 takes ~5 s to wind down (its HTTP
        # and DICOM servers and the web viewer each stop on a poll); 0 kills at once, for
        # throwaway folders whose index nobody reopens.
        self.stop_timeout = stop_timeout
        # Where the ModalityWorklists plugin reads `*.wl` entries (the connector writes them).
        self.worklist_folder = Path(worklist_folder or self.folder / WORKLIST_FOLDER).resolve()
        # The plugin runs in Debian's embedded Python; give it our interpreter's packages.
        self.site_packages = (
            site_packages if site_packages is not None else [sysconfig.get_paths()["purelib"]]
        )
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_NAME

    @property
    def pid_path(self) -> Path:
        return self.folder / PID_NAME

    @property
    def log_path(self) -> Path:
        return self.folder / LOG_NAME

    def config(self) -> dict:
        """The Orthanc configuration, as written to `orthanc.json`."""
        return {
            "Name": f"TeleDerm {self.aet}",
            "StorageDirectory": "db",
            "IndexDirectory": "db",
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.username: self.password},
            "DicomServerEnabled": True,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            # Only declared capture devices send images in and ask for their worklist (which
            # lists every open case's patient); the connector itself stores over HTTP, and
            # nobody queries or pulls images by DICOM (viewers use HTTP/DICOMweb).
            "DicomCheckCalledAet": True,
            "DicomCheckModalityHost": True,
            "DicomModalitiesInDatabase": False,
            "DicomModalities": {m.name: m.entry() for m in self.modalities},
            "DicomAlwaysAllowEcho": False,
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowFindWorklist": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "StableAge": self.stable_age,
            "Plugins": [str(find_plugin(name)) for name in PLUGIN_LIBRARIES],
            "PythonScript": str(PLUGIN_SCRIPT),
            "PythonVerbose": False,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            # Decoded frames are cached in the folder; two decoding threads (default 4) leave
            # the CPU to Orthanc and the connector on a small machine.
            "WebViewer": {"CachePath": "web-viewer-cache", "Threads": 2},
            # One `*.wl` file per scheduled step, read at each query (dicom/worklist.py).
            "Worklists": {"Enable": True, "Database": str(self.worklist_folder)},
            "TeleDerm": {
                "ConnectorUrl": self.connector_url,
                "ConnectorToken": self.connector_token,
                "ConnectorCaFile": str(self.connector_ca_file or ""),
                "SitePackages": list(self.site_packages),
            },
        }

    def written_token(self) -> str:
        """The connector token in the written `orthanc.json`: the one the plugin of a running
        Orthanc was started with ("" when there is none)."""
        try:
            settings = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ""
        return str((settings.get("TeleDerm") or {}).get("ConnectorToken") or "")

    def write_config(self) -> Path:
        """Write `folder/orthanc.json` (owner-readable only: it holds passwords and a token)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.worklist_folder.mkdir(parents=True, exist_ok=True)  # the plugin fails on a missing one
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.config(), f, indent=2)
            f.write("\n")
        return self.config_path

    def start(self, timeout: float = 30) -> None:
        """Start Orthanc and return once *our* process answers on its REST API.

        Readiness is `GET /telederm/status` reporting our child's pid, so another server that
        already holds the port cannot pass for ours, and a plugin that failed to load is caught.
        """
        pid = self._running_pid()
        if pid is not None:
            raise ArchiveError(
                f"Orthanc is already running (pid {pid})",
                where=str(self.pid_path),
                hint="use it, or run `telederm orthanc stop` first",
            )
        self.pid_path.unlink(missing_ok=True)
        for port, key in ((self.http_port, "orthanc.url"), (self.dicom_port, "orthanc.dicom_port")):
            if _port_taken(port):
                raise ArchiveError(
                    f"port {port} is already in use",
                    where=key,
                    hint="choose a free port or stop the server that holds it",
                )
        if not ORTHANC_BINARY.exists():
            raise ArchiveError(
                "Orthanc is not installed", where=str(ORTHANC_BINARY), hint="install the Debian package orthanc"
            )
        self.write_config()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [str(ORTHANC_BINARY), CONFIG_NAME],
                cwd=self.folder,
                env={**os.environ, "TCP_NODELAY": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{self._process.pid}\n")

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.pid_path.unlink(missing_ok=True)
                raise self._start_failure(f"Orthanc exited with code {self._process.returncode}", log_offset)
            plugin = self._get("/telederm/status")
            if plugin is not None and plugin.get("pid") == self._process.pid:
                return
            time.sleep(POLL_INTERVAL)
        self.stop()
        raise self._start_failure(f"Orthanc did not answer on {self.url} within {timeout:g} s", log_offset)

    @property
    def owner_path(self) -> Path:
        return self.folder / OWNER_NAME

    def claim(self, pid: int) -> None:
        """Record that process `pid` (a serve) owns this Orthanc: it stops it when it exits."""
        self.owner_path.write_text(f"{pid}\n")

    def orphaned(self) -> bool:
        """Whether this Orthanc runs for a serve that is gone (killed before it could stop it):
        the next serve on this folder adopts it, and stops it on exit."""
        try:
            owner = int(self.owner_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return False
        return self._running_pid() is not None and not self._alive(owner)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the Orthanc named by the pid file (SIGTERM, then SIGKILL after `timeout`, by
        default `stop_timeout`); False if none was running."""
        timeout = self.stop_timeout if timeout is None else timeout
        self.owner_path.unlink(missing_ok=True)
        pid = self._running_pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):  # it may exit between the check and the signal
            os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                os.kill(pid, signal.SIGKILL)
                self._wait_exit(pid, 5)
        self.pid_path.unlink(missing_ok=True)
        return True

    def status(self) -> dict:
        """Running state from the pid file, and the Orthanc version when its REST API answers."""
        pid = self._running_pid()
        system = self._get("/system") if pid is not None else None
        return {
            "running": pid is not None,
            "pid": pid,
            "url": self.url,
            "version": system.get("Version") if system else None,
            "folder": str(self.folder),
        }

    def _get(self, path: str) -> dict | None:
        """JSON from our Orthanc's REST API, or None if it does not answer (yet) with 200 and JSON."""
        try:
            response = httpx.get(self.url + path, auth=(self.username, self.password), timeout=1)
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def _running_pid(self) -> int | None:
        """The pid from the pid file if that process is alive and is an Orthanc (not a reused pid)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not self._alive(pid):
            return None
        try:
            program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            return None
        return pid if program.endswith(b"Orthanc") else None

    def _alive(self, pid: int) -> bool:
        """True unless the process is gone or a zombie (exited, waiting for its parent to reap it)."""
        if self._process is not None and self._process.pid == pid:
            self._process.poll()  # reap our own child so it does not linger as a zombie
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return True
            time.sleep(POLL_INTERVAL)
        return False

    def _start_failure(self, what: str, log_offset: int) -> ArchiveError:
        """An error carrying the gist of Orthanc's log since this start, and a hint from it."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(log_offset)
                lines = f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            lines = []
        errors = [line.strip() for line in lines if line.startswith("E")]
        gist = " | ".join(errors[-2:]) or (lines[-1].strip() if lines else "")
        text = " ".join(errors).lower()
        hint = next((h for fragment, h in _LOG_HINTS if fragment in text), "see the Orthanc log")
        return ArchiveError(f"{what}: {gist}" if gist else what, where=str(self.log_path), hint=hint)


def _port_taken(port: int) -> bool:
    """True if something listens on `port` (Orthanc 1.10 binds all interfaces, so test those)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            return True
    return False
