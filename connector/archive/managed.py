"""A local Orthanc that the connector owns: generated config, start, stop, status.

The embedded default runs Debian's Orthanc as a child process with its whole state (config,
database, log, pid file) in one folder, so `telederm orthanc stop` in another process can stop
what `telederm serve` started, and deleting the folder resets the archive.

Orthanc 1.10 quirks handled here: it listens on all interfaces (so `RemoteAccessAllowed` is
false and a password is always set), it resolves relative paths against its working directory
(so it runs with cwd = folder), and it is started in its own session so that a Ctrl-C on the
CLI reaches us, not Orthanc, and we decide how to stop it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

import httpx

from connector.archive.errors import ArchiveError

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
PLUGIN_LIBRARIES = ("libOrthancPython.so", "libOrthancDicomWeb.so")
PLUGIN_SCRIPT = Path(__file__).resolve().parents[2] / "orthanc_plugin" / "telederm_orthanc.py"

CONFIG_NAME = "orthanc.json"
PID_NAME = "orthanc.pid"
LOG_NAME = "orthanc.log"
POLL_INTERVAL = 0.1

# Log fragments of Orthanc 1.10 start-up failures, mapped to what the user should do.
_LOG_HINTS = (
    ("address already in use", "a port is taken: choose free http/dicom ports or stop the other server"),
    ("cannot bind", "a port is taken: choose free http/dicom ports or stop the other server"),
    ("python", "the TeleDerm Python plugin failed: see the traceback in the log"),
    ("plugin", "an Orthanc plugin failed to load: check the orthanc-python/orthanc-dicomweb packages"),
    ("database", "the Orthanc database in the folder is unusable: check permissions or move it away"),
)


def find_plugin(name: str) -> Path:
    """Absolute path of an Orthanc plugin library from the Debian packages (symlink or versioned file)."""
    for folder in PLUGIN_DIRS:
        for candidate in sorted(folder.glob(name + "*")):
            if candidate.is_file():
                return candidate
    raise ArchiveError(
        f"Orthanc plugin {name} not found",
        where=" or ".join(str(d) for d in PLUGIN_DIRS),
        hint="install the Debian packages orthanc-python and orthanc-dicomweb",
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
        site_packages: list[str] | None = None,
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
            # Capture devices and the connector send images in; nobody queries or pulls by
            # DICOM (viewers use HTTP/DICOMweb). Worklist C-FIND must be allowed explicitly
            # since Orthanc 1.10, ready for when a worklist plugin is added.
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowFindWorklist": True,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "StableAge": self.stable_age,
            "Plugins": [str(find_plugin(name)) for name in PLUGIN_LIBRARIES],
            "PythonScript": str(PLUGIN_SCRIPT),
            "PythonVerbose": False,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "TeleDerm": {
                "ConnectorUrl": self.connector_url,
                "ConnectorToken": self.connector_token,
                "SitePackages": list(self.site_packages),
            },
        }

    def write_config(self) -> Path:
        """Write `folder/orthanc.json` (owner-readable only: it holds passwords and a token)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.config(), f, indent=2)
            f.write("\n")
        return self.config_path

    def start(self, timeout: float = 30) -> None:
        """Start Orthanc and return once its REST API answers with our credentials."""
        pid = self._running_pid()
        if pid is not None:
            raise ArchiveError(
                f"Orthanc is already running (pid {pid})",
                where=str(self.pid_path),
                hint="use it, or run `telederm orthanc stop` first",
            )
        self.pid_path.unlink(missing_ok=True)
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
            if self._system() is not None:
                return
            time.sleep(POLL_INTERVAL)
        self.stop()
        raise self._start_failure(f"Orthanc did not answer on {self.url} within {timeout:g} s", log_offset)

    def stop(self, timeout: float = 20) -> bool:
        """Stop the Orthanc named by the pid file (SIGTERM, then SIGKILL); False if none was running."""
        pid = self._running_pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 5)
        self.pid_path.unlink(missing_ok=True)
        return True

    def status(self) -> dict:
        """Running state from the pid file, and the Orthanc version when its REST API answers."""
        pid = self._running_pid()
        system = self._system() if pid is not None else None
        return {
            "running": pid is not None,
            "pid": pid,
            "url": self.url,
            "version": system.get("Version") if system else None,
            "folder": str(self.folder),
        }

    def _system(self) -> dict | None:
        try:
            response = httpx.get(f"{self.url}/system", auth=(self.username, self.password), timeout=1)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def _running_pid(self) -> int | None:
        """The pid from the pid file if that process is alive and is an Orthanc (not a reused pid)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        self._reap(pid)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return None
        if state == "Z" or not cmdline[0].endswith(b"Orthanc"):
            return None
        return pid

    def _reap(self, pid: int) -> None:
        """Collect our own child's exit status so it does not linger as a zombie."""
        if self._process is not None and self._process.pid == pid:
            self._process.poll()

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._reap(pid)
            if not Path(f"/proc/{pid}").exists():
                return True
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                return True
            if state == "Z":  # exited; its parent (another CLI process, or init) will reap it
                return True
            time.sleep(POLL_INTERVAL)
        return False

    def _start_failure(self, what: str, log_offset: int) -> ArchiveError:
        lines = self._log_since(log_offset)
        gist = " | ".join(line.strip() for line in lines[-3:])
        text = lines and " ".join(lines).lower() or ""
        hint = next((h for fragment, h in _LOG_HINTS if fragment in text), "see the log for details")
        return ArchiveError(f"{what}: {gist}" if gist else what, where=str(self.log_path), hint=hint)

    def _log_since(self, offset: int) -> list[str]:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return [line for line in data.splitlines() if line.strip()]
