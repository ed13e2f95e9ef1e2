"""`telederm serve`: the MLLP listener, the HTTP API, the outbox worker and (unless the config
points at an existing Orthanc) a managed Orthanc, run together in one process; with them, when
configured, the DICOM C-STORE SCP (`[dicom] listen`) and the watched folder (`[watch] folder`).

`RunningConnector` runs the same thing on a background thread for the demo and the tests;
`telederm serve --workers N` runs N of them in child processes (runtime/supervisor.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import ssl
import threading
from urllib.parse import urlparse

import uvicorn

from ..entrypoints.api.app import create_app
from ..entrypoints.api.guard import HttpLimits, header_timeout_protocol
from ..archive.managed import ManagedOrthanc, Modality
from ..config import Config, DicomSection, Hl7Listener, HttpSection, split_address
from ..dicom.scp import StoreScp
from ..domain.errors import ConnectorError
from ..hl7.client import close_connections
from ..hl7.listener import MllpListener
from ..hl7.tls import server_context
from ..bootstrap import Services, build, with_orthanc_password
from ..entrypoints import dicom_scp, hl7_intake
from ..entrypoints.watch_folder import FolderWatcher
from . import hl7_applier, worker

log = logging.getLogger("connector.server")


def managed_orthanc(config: Config, token: str = "") -> ManagedOrthanc:
    """The Orthanc this config manages, its plugin pointed back at our HTTP API with `token`
    (written in its config when it is started; status and stop need none)."""
    config = with_orthanc_password(config)
    http_port = urlparse(config.orthanc.url).port or 8042
    host, port = split_address(config.http.listen, "http.listen")
    return ManagedOrthanc(
        config.data_dir / "orthanc", http_port=http_port, dicom_port=config.orthanc.dicom_port,
        username=config.orthanc.username, password=config.orthanc.password,
        stable_age=config.orthanc.stable_age,
        connector_url=f"{'https' if config.http.tls else 'http'}://{host}:{port}",
        connector_token=token, connector_ca_file=config.http.cert_file,
        worklist_folder=config.worklist_folder,
        modalities=[Modality(m.name, m.ae_title, m.host, m.port)
                    for m in config.orthanc.modalities],
        stop_timeout=config.orthanc.stop_seconds)


def _tls_context(spec: Hl7Listener | HttpSection | DicomSection, where: str) -> ssl.SSLContext | None:
    """The server TLS context of a listener's settings (MLLP, HTTP, DICOM), None without TLS."""
    if not spec.tls:
        return None
    return server_context(spec.cert_file, spec.key_file, client_ca_file=spec.client_ca_file,
                          require_client_cert=spec.require_client_cert, where=where)


def start_managed(config: Config, token: str) -> tuple[ManagedOrthanc, bool, str]:
    """The managed Orthanc, running: started here with this run's internal `token` (True: this
    process stops it on exit), or already running. Also the token its plugin calls us with:
    `token`, or the one of the run that started it."""
    orthanc = managed_orthanc(config, token)
    started = False
    if not orthanc.status()["running"]:
        orthanc.start()
        started = True
    else:
        token = orthanc.written_token() or token
        if orthanc.orphaned():  # a serve killed before it could stop it
            log.warning("using the Orthanc a previous run left running; it is stopped on exit")
            started = True
        # else an Orthanc of `telederm orthanc start` (or of another serve): theirs to stop
    if started:
        orthanc.claim(os.getpid())
    return orthanc, started, token


def _record_configuration(services: Services) -> None:
    """The configuration a start runs with is an event of the trail: its digest (the settings
    as loaded, secrets included, so a changed password shows too) and the mappings folder, so
    an auditor can tell when what the site set changed."""
    config = services.config
    digest = hashlib.sha256(config.model_dump_json().encode("utf-8")).hexdigest()
    with services.unit() as uow:
        uow.audit.append(at=uow.moment.iso, actor=f"connector:{os.getpid()}",
                         action="config.loaded",
                         detail={"sha256": digest, "mappings": str(config.mappings_dir)})


def _bind_error(key: str, address: str, exc: OSError) -> ConnectorError:
    return ConnectorError(f"cannot listen on {address}: {exc.strerror or exc}", where=key,
                          hint=f"free that port or change {key} in the config")


class RunningConnector:
    """Start everything, wait until it answers, stop it in reverse order."""

    def __init__(self, config: Config, services: Services | None = None, *,
                 http_limits: HttpLimits | None = None, reuse_port: bool = False,
                 channels: bool = True, manage_orthanc: bool = True):
        self.config = with_orthanc_password(config)
        # One of several processes on the same addresses (runtime/supervisor.py): the MLLP and
        # HTTP sockets are bound with SO_REUSEPORT; the DICOM SCP and the watched folder run
        # in the process given `channels` only (one port, one folder to drain), and the
        # supervisor, not they, starts and stops the managed Orthanc (`manage_orthanc` False).
        self.reuse_port = reuse_port
        self.channels = channels
        self.manage_orthanc = manage_orthanc
        self.services = services or build(config)
        self.http_limits = http_limits or HttpLimits()  # body size, slow-client timeouts
        self.orthanc: ManagedOrthanc | None = None
        self._started_orthanc = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop_worker = threading.Event()
        self._stop_channels = threading.Event()
        self._error: BaseException | None = None
        self.hl7_port = 0  # the first MLLP listener's port
        self.hl7_ports: dict[str, int] = {}  # every MLLP listener's port, by name
        self.http_port = 0
        self.dicom_port = 0  # the C-STORE SCP's port, when `[dicom] listen` is set
        self.scp: StoreScp | None = None
        self.watcher: FolderWatcher | None = None
        self._watch_thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 60) -> "RunningConnector":
        if self._thread is not None:  # `with RunningConnector(...).start()` starts it once
            return self
        _record_configuration(self.services)
        if self.config.orthanc.managed and self.manage_orthanc:
            self.orthanc, self._started_orthanc, self.services.internal_token = start_managed(
                self.config, self.services.internal_token)
        elif self.config.orthanc.managed:  # a worker of `serve --workers`: the supervisor's
            self.services.internal_token = (managed_orthanc(self.config).written_token()
                                            or self.services.internal_token)
        self._thread = threading.Thread(target=self._run_loop, name="connector-io", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error:
            self.stop()
            if isinstance(self._error, ConnectorError):
                raise self._error
            raise ConnectorError(f"the connector did not start: {self._error or 'timed out'}",
                                 hint="run with --debug for details")
        self._worker = threading.Thread(target=worker.run_forever,
                                        args=(self.services, self._stop_worker),
                                        name="outbox-worker", daemon=True)
        self._worker.start()
        self._applier = threading.Thread(target=hl7_applier.apply_forever,
                                         args=(self.services, self._stop_worker),
                                         name="inbox-applier", daemon=True)
        self._applier.start()
        if self.channels:
            self._start_channels()
        return self

    def _start_channels(self) -> None:
        """The DICOM SCP and the watched folder, each only when configured."""
        config = self.config
        if config.dicom.listen:
            host, port = split_address(config.dicom.listen, "dicom.listen")
            dicom = config.dicom
            try:
                tls = _tls_context(dicom, "dicom")
            except ConnectorError:
                self.stop()
                raise
            # the declared capture devices, when the site lists them, are the only callers
            scp = StoreScp(host, port, dicom.ae_title,
                           lambda received: dicom_scp.answer(self.services, received),
                           calling_aes=[m.ae_title for m in config.orthanc.modalities],
                           ssl_context=tls)
            try:
                scp.start()
            except OSError as exc:
                self.stop()
                raise _bind_error("dicom.listen", config.dicom.listen, exc) from None
            self.scp, self.dicom_port = scp, scp.port
        if config.watch.folder is not None:
            try:
                config.watch.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.stop()
                raise ConnectorError(f"cannot use the watched folder: {exc.strerror or exc}",
                                     where="watch.folder",
                                     hint="create it, or make it writable by the connector") from None
            self.watcher = FolderWatcher(self.services, config.watch.folder,
                                         pattern=config.watch.pattern, kind=config.watch.kind,
                                         interval=config.watch.interval)
            self._watch_thread = threading.Thread(target=self.watcher.run_forever,
                                                  args=(self._stop_channels,),
                                                  name="watched-folder", daemon=True)
            self._watch_thread.start()

    def stop(self) -> None:
        # Inputs first (no new work), then the worker, the I/O thread, and Orthanc last.
        self._stop_channels.set()
        if self.scp is not None:
            self.scp.stop()
            self.scp = None
        if self._watch_thread is not None:
            self._watch_thread.join(60)
            self._watch_thread = None
        self._stop_worker.set()
        if getattr(self, "_worker", None):
            self._worker.join(30)
        if getattr(self, "_applier", None):
            self._applier.join(30)
        close_connections()
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._shutdown.set)
            self._thread.join(30)
        if self.orthanc and self._started_orthanc:
            self.orthanc.stop()
        self.services.store.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait(self) -> None:
        """Block until the I/O thread ends (Ctrl-C or SIGTERM handled by the caller)."""
        while self._thread and self._thread.is_alive():
            self._thread.join(0.5)

    # --- the I/O thread --------------------------------------------------------------------
    def _run_loop(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        http_host, http_port = split_address(self.config.http.listen, "http.listen")
        hl7_io = _LoopThread("hl7-io")
        try:
            listeners = await hl7_io.run(self._start_listeners())
        except BaseException:
            hl7_io.close()
            raise
        http_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        http_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:
            http_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            http_socket.bind((http_host, http_port))
        except OSError as exc:
            http_socket.close()
            await hl7_io.run(_stop_all(listeners))
            hl7_io.close()
            raise _bind_error("http.listen", self.config.http.listen, exc) from None
        self.http_port = http_socket.getsockname()[1]
        http = self.config.http
        try:
            tls = _tls_context(http, "http")  # ours (TLS 1.2 at least), not uvicorn's own
        except ConnectorError:
            http_socket.close()
            await hl7_io.run(_stop_all(listeners))
            hl7_io.close()
            raise
        server = uvicorn.Server(uvicorn.Config(
            create_app(self.services, limits=self.http_limits), log_level="warning",
            lifespan="off", http=header_timeout_protocol(self.http_limits.header_timeout),
            ssl_context_factory=None if tls is None else lambda _config, _default: tls))
        api = asyncio.create_task(server.serve(sockets=[http_socket]))
        while not server.started:
            if api.done():
                await api
            await asyncio.sleep(0.05)
        log.info("listening: HL7 %s, HTTP %s:%s%s",
                 ", ".join(f"{item.name} {item.host}:{item.port}{' (TLS)' if item.ssl else ''}"
                           for item in listeners), http_host, self.http_port,
                 " (TLS)" if tls else "")
        self._ready.set()
        await self._shutdown.wait()
        server.should_exit = True
        await api
        await hl7_io.run(_stop_all(listeners))
        hl7_io.close()

    async def _start_listeners(self) -> list[MllpListener]:
        """Every inbound MLLP listener (`[hl7] listen` or each [[hl7.listeners]] table), on
        the HL7 loop: they share it, so one handler runs at a time across listeners as within
        one. When one cannot start, those already started are stopped."""
        config = self.config

        def handle(raw: bytes, peer: str) -> bytes:
            return hl7_intake.handle(self.services, raw, peer)

        def handle_batch(items: list[tuple[bytes, str]]) -> list[bytes]:
            return hl7_intake.handle_batch(self.services, items)

        started: list[MllpListener] = []
        try:
            for spec in config.hl7.mllp_listeners:
                host, port = spec.host_port
                context = _tls_context(spec, spec.where)
                listener = MllpListener(
                    host, port, handle, max_size=int(config.hl7.max_message_mb * 1024 * 1024),
                    idle_timeout=config.hl7.idle_timeout, read_timeout=config.hl7.read_timeout,
                    ssl=context, name=spec.name, batch_handler=handle_batch,
                    reuse_port=self.reuse_port)
                try:
                    await listener.start()
                except OSError as exc:
                    raise _bind_error(f"{spec.where}.listen", spec.listen, exc) from None
                started.append(listener)
        except BaseException:
            await _stop_all(started)
            raise
        self.hl7_ports = {listener.name: listener.port for listener in started}
        self.hl7_port = started[0].port
        return started


async def _stop_all(listeners: list[MllpListener]) -> None:
    for listener in listeners:
        await listener.stop()


class _LoopThread:
    """An event loop on a thread of its own. The MLLP listeners run their handlers on their
    loop (the durable writes): on a loop of their own, a batch being written never holds up
    the HTTP API, and the API's requests never hold up an ACK."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    async def run(self, coroutine):
        """Run `coroutine` on this loop and wait for it from the caller's loop."""
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        if not self.thread.is_alive():
            self.loop.close()
