"""`telederm serve --workers N`: N connector processes on one machine, sharing one PostgreSQL
store and the same listening addresses.

Each worker is a `telederm serve --worker-index I` child process running everything a single
serve runs (MLLP listeners, HTTP API, outbox worker, inbox applier), its MLLP and HTTP sockets
bound with SO_REUSEPORT: the kernel spreads the incoming connections between the workers.
Shared work is claimed in the store (store/outbox.py, store/inbox.py, store/leases.py), so it
is done once whichever worker takes it. Worker 0 also runs the DICOM C-STORE SCP and the
watched folder (one port, one folder). This process, the supervisor, migrates the store,
starts the managed Orthanc (when the config has one) before the workers and stops it after
them, restarts a worker that exits once serving (one that exits before it could serve ends
serve with an error: the cause, a port or the store, will not go away on its own), and stops
every worker on SIGTERM or Ctrl-C. Each worker dies with it (PR_SET_PDEATHSIG).

SO_REUSEPORT rather than one listening process handing connections to workers: no extra hop,
no process that every message crosses, a worker that dies takes only its own connections (their
peers reconnect and land on another one), and the same shape as several nodes behind a TCP
load balancer. Connections are spread, not messages: an MLLP peer keeps its connection, so one
busy sender is served by one worker (docs/deploy.md).
"""

from __future__ import annotations

import ctypes
import logging
import secrets
import signal
import subprocess
import sys
import threading
import time

from ..archive.managed import ManagedOrthanc
from ..bootstrap import audit_key
from ..config import Config, split_address
from ..domain.errors import ConfigError, ConnectorError
from ..store.db import migrate
from ..store.uow import Store
from .server import start_managed

log = logging.getLogger("connector.server")

READY_SECONDS = 120.0   # a worker announces itself within this (store, listeners)
RESTART_SECONDS = 1.0   # pause before a worker that exited is started again
STOP_SECONDS = 60.0     # SIGTERM, then SIGKILL


def check(config: Config, workers: int) -> None:
    """Refuse what N processes cannot share: a SQLite store (one writer process), a listening
    port chosen by the system (each worker would get its own)."""
    if workers < 1:
        raise ConfigError("--workers must be at least 1", where="--workers")
    if workers == 1:
        return
    if config.db_url.startswith("sqlite"):
        raise ConfigError("several workers need a PostgreSQL store", where="database.url",
                          hint="set database.url to postgresql://..., or run one worker")
    addresses = [("http.listen", config.http.listen)] + [
        (f"{spec.where}.listen", spec.listen) for spec in config.hl7.mllp_listeners]
    for key, address in addresses:
        if split_address(address, key)[1] == 0:
            raise ConfigError(f"several workers cannot share port 0 ({address})", where=key,
                              hint="give a fixed port")


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, even SIGKILLed."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervisor:
    def __init__(self, config: Config, workers: int, config_path: str | None,
                 debug: bool = False):
        self.config, self.workers = config, workers
        self.command = [sys.executable, "-m", "connector.entrypoints.cli"]
        if debug:
            self.command.append("--debug")
        self.command.append("serve")
        if config_path:
            self.command += ["--config", config_path]
        self.procs: dict[int, subprocess.Popen] = {}
        self.ready = [threading.Event() for _ in range(workers)]
        self.stopping = threading.Event()
        self.orthanc: ManagedOrthanc | None = None
        self._own_orthanc = False

    def _spawn(self, index: int) -> None:
        proc = subprocess.Popen([*self.command, "--worker-index", str(index)],
                                stdout=subprocess.PIPE, text=True, bufsize=1,
                                preexec_fn=_die_with_parent)
        self.ready[index].clear()
        self.procs[index] = proc
        threading.Thread(target=self._relay, args=(index, proc), daemon=True,
                         name=f"worker-{index}-out").start()

    def _relay(self, index: int, proc: subprocess.Popen) -> None:
        """The worker's standard output, passed on; its announcement marks it ready."""
        for line in proc.stdout:
            if line.startswith("telederm: serving"):
                self.ready[index].set()
            sys.stdout.write(f"[worker {index}] {line}")
            sys.stdout.flush()

    def start(self) -> None:
        """Migrate, start Orthanc and the workers, and wait until each one serves."""
        store = Store.open(self.config.db_url, audit_key(self.config))
        try:
            migrate(store.engine)
        finally:
            store.close()
        if self.config.orthanc.managed:
            self.orthanc, self._own_orthanc, _ = start_managed(self.config,
                                                               secrets.token_urlsafe(32))
        for index in range(self.workers):
            self._spawn(index)
        deadline = time.monotonic() + READY_SECONDS
        for index in range(self.workers):
            while not self.ready[index].wait(0.2):
                code = self.procs[index].poll()
                if code is not None or time.monotonic() > deadline:
                    self.stop()
                    raise ConnectorError(
                        f"worker {index} did not start"
                        + (f" (exit code {code})" if code is not None else ""),
                        where="serve --workers", hint="see its output above")

    def run(self) -> None:
        """Restart workers that exit until `stopping` is set; then stop them all."""
        while not self.stopping.wait(0.5):
            for index, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                if not self.ready[index].is_set():  # it could not start: nor will it again
                    self.stop()
                    raise ConnectorError(f"worker {index} exited at start with code {code}",
                                         where="serve --workers", hint="see its output above")
                log.warning("worker %s exited with code %s; starting it again", index, code)
                if self.stopping.wait(RESTART_SECONDS):
                    break
                self._spawn(index)
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for proc in self.procs.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self.orthanc is not None and self._own_orthanc:
            self.orthanc.stop()
            self.orthanc = None
