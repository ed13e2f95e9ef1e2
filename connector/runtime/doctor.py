"""`telederm doctor`: what is wrong with this installation, in one command.

Each check looks at one thing hospital IT would otherwise test by hand: the archive (Orthanc
answers with our credentials and has loaded the plugins the connector relies on), each peer
(a TCP connect, and the TLS handshake where the link is TLS; no message is ever sent, so a
production EHR sees nothing but a connection), the certificates in the configuration, the disk
of `data_dir`, the queues, and the clock. A check gives findings; a `problem` makes the command
exit non-zero, a `warning` is shown and does not. Nothing here changes any state.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from ..archive.client import ArchiveClient
from ..archive.errors import ArchiveError
from ..domain.errors import ConfigError

CONNECT_TIMEOUT = 5.0            # seconds for one TCP connect or TLS handshake
ORTHANC_TIMEOUT = 10.0           # seconds for one Orthanc REST call
EXPIRY_WARNING_DAYS = 30         # a certificate expiring sooner is worth renewing now
MIN_FREE_BYTES = 1 << 30         # below 1 GiB free, images and the database soon fail to write
MIN_FREE_SHARE = 0.05            # ... or below 5 % of the disk
OLDEST_PENDING = dt.timedelta(minutes=30)  # an outbox item waiting longer is stuck, not slow
CLOCK_SLACK = dt.timedelta(minutes=5)      # the newest audit row may be this far ahead

# The Orthanc plugins the connector relies on, by their `/plugins` id: the TeleDerm plugin
# (stable-study events, the case route, the Explorer link) and the viewer the case page links
# to; DICOMweb and the worklists where the generated config of the managed Orthanc enables them.
REQUIRED_PLUGINS = ("python", "web-viewer")
MANAGED_PLUGINS = ("dicom-web",)
WORKLIST_PLUGIN = "worklists"


@dataclass(frozen=True)
class Finding:
    check: str     # what was looked at, e.g. "orthanc", "destination ehr"
    level: str     # "ok", "warning" or "problem"
    text: str


def ok(check: str, text: str) -> Finding:
    return Finding(check, "ok", text)


def warning(check: str, text: str) -> Finding:
    return Finding(check, "warning", text)


def problem(check: str, text: str) -> Finding:
    return Finding(check, "problem", text)


def examine(services, now: dt.datetime | None = None) -> list[Finding]:
    """Every check on this installation, in the order an operator would look."""
    config = services.config
    now = now or services.now()
    findings = list(orthanc(config))
    findings += destinations(config)
    findings += certificates(config, now)
    findings.append(disk(config.data_dir))
    with services.reading() as uow:
        findings += queues(uow.queries.health(True), now)
        findings.append(clock(uow.audit.newest_at(), now))
    return findings


def orthanc(config) -> Iterator[Finding]:
    """Orthanc answers `/system` with our credentials and has loaded the plugins we need."""
    o = config.orthanc
    client = ArchiveClient(o.url, o.username, o.password, timeout=ORTHANC_TIMEOUT)
    try:
        system = client.system()
        loaded = set(client.plugins())
    except ArchiveError as err:
        start = ("start it with telederm serve or telederm orthanc start" if o.managed
                 else "start it or check orthanc.url")
        yield problem("orthanc", f"{err.text} at {o.url}: {err.hint or start}")
        return
    wanted = list(REQUIRED_PLUGINS)
    if o.managed:
        wanted += MANAGED_PLUGINS
        if config.worklist.enabled:
            wanted.append(WORKLIST_PLUGIN)
    missing = [p for p in wanted if p not in loaded]
    if missing:
        yield problem("orthanc", f"plugin(s) {', '.join(missing)} not loaded at {o.url} "
                      "(loaded: " + (", ".join(sorted(loaded)) or "none") + "): install "
                      "orthanc-python, orthanc-webviewer and orthanc-dicomweb and list them "
                      "in Orthanc's Plugins")
        return
    yield ok("orthanc", f"Orthanc {system.get('Version', '?')} at {o.url}, plugins "
             f"{', '.join(wanted)} loaded")


def _reach(host: str, port: int, context: ssl.SSLContext | None = None,
           server_name: str | None = None) -> str | None:
    """Connect (and shake hands when `context` is given), send nothing, close; why it
    failed, or None."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as sock:
            if context is not None:
                with context.wrap_socket(sock, server_hostname=server_name or host):
                    pass
    except ssl.SSLCertVerificationError as exc:
        return f"TLS handshake failed: {exc.verify_message or exc.reason}"
    except ssl.SSLError as exc:
        return f"TLS handshake failed: {exc.reason or exc}"
    except socket.timeout:
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def destinations(config) -> list[Finding]:
    """Each `[[destinations]]` peer and `[[dicom.forward]]` PACS can be reached; a drop
    folder exists and is writable."""
    from ..hl7.tls import client_context
    out = []
    for d in config.destinations:
        check = f"destination {d.name}"
        if d.transport == "file":
            if not d.folder.is_dir():
                out.append(problem(check, f"drop folder {d.folder} does not exist: create it "
                                          "or fix the address"))
            elif not os.access(d.folder, os.W_OK):
                out.append(problem(check, f"drop folder {d.folder} is not writable by the "
                                          "connector: fix its permissions"))
            else:
                out.append(ok(check, f"drop folder {d.folder} is writable"))
            continue
        if d.transport == "https":
            url = urlsplit(d.address)
            host, port = url.hostname or "", url.port or 443
            server_name = host
        else:
            host, port = d.host_port
            server_name = d.server_name or None
        try:
            context = (client_context(d.ca_file or None, d.cert_file or None, d.key_file or None,
                                      where=f"destinations.{d.name}") if d.tls else None)
        except ConfigError as err:
            out.append(problem(check, err.one_line()))
            continue
        where = f"{d.transport}{' over TLS' if d.tls and d.transport == 'mllp' else ''} " \
                f"{host}:{port}"
        failed = _reach(host, port, context, server_name)
        out.append(problem(check, f"{where} unreachable: {failed}: start the peer or fix "
                                  "its address") if failed
                   else ok(check, f"{where} reachable" + (", TLS handshake done" if d.tls else "")))
    for f in config.dicom.forward:
        check = f"forward {f.name}"
        failed = _reach(f.host, f.port)
        out.append(problem(check, f"PACS {f.ae_title} at {f.host}:{f.port} unreachable: "
                                  f"{failed}: start it or fix host and port") if failed
                   else ok(check, f"PACS {f.ae_title} at {f.host}:{f.port} reachable"))
    return out


def _certificate_files(config) -> list[tuple[str, Path]]:
    """(config key, file) of every certificate the configuration names."""
    files = []
    for listener in config.hl7.mllp_listeners:
        for key in ("cert_file", "client_ca_file"):
            if getattr(listener, key):
                files.append((f"{listener.where}.{key}", Path(getattr(listener, key))))
    for d in config.destinations:
        for key in ("ca_file", "cert_file"):
            if getattr(d, key):
                files.append((f"destinations.{d.name}.{key}", Path(getattr(d, key))))
    return files


def certificates(config, now: dt.datetime) -> list[Finding]:
    """Every certificate in the files the configuration names is valid now, and for
    EXPIRY_WARNING_DAYS more days (else a warning)."""
    out = []
    for key, path in _certificate_files(config):
        check = f"certificate {key}"
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            out.append(problem(check, f"{path} cannot be read as PEM certificates ({exc})"))
            continue
        worst = None
        for cert in certs:
            subject = cert.subject.rfc4514_string() or "(no subject)"
            until, since = cert.not_valid_after_utc, cert.not_valid_before_utc
            if until < now:
                worst = problem(check, f"{subject} in {path} expired on {until:%Y-%m-%d}: "
                                       "renew it")
                break
            if since > now:
                worst = problem(check, f"{subject} in {path} is not valid before "
                                       f"{since:%Y-%m-%d %H:%M} UTC: check the clock or the "
                                       "certificate")
                break
            if until - now < dt.timedelta(days=EXPIRY_WARNING_DAYS) and worst is None:
                worst = warning(check, f"{subject} in {path} expires on {until:%Y-%m-%d} "
                                       f"(in {(until - now).days} days): renew it")
        out.append(worst or ok(check, f"{path}: {len(certs)} certificate(s) valid until "
                                      f"{min(c.not_valid_after_utc for c in certs):%Y-%m-%d}"))
    return out


def disk(data_dir: Path) -> Finding:
    """Free space on the disk that holds `data_dir` (the database, queues, managed Orthanc)."""
    usage = shutil.disk_usage(data_dir)
    free_gib, share = usage.free / (1 << 30), usage.free / usage.total
    text = f"{free_gib:.1f} GiB free ({share:.0%}) on the disk of {data_dir}"
    if usage.free < MIN_FREE_BYTES or share < MIN_FREE_SHARE:
        return problem("disk", f"only {text}: free space or move data_dir")
    return ok("disk", text)


def _when(stored: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stored)


def queues(health: dict, now: dt.datetime) -> list[Finding]:
    """The outbox and the inbox: dead letters, destinations failing now, messages that could
    not be applied (the problems of `telederm status` except Orthanc's, checked above), and an
    item pending for longer than OLDEST_PENDING."""
    out = [problem("queue", line) for line in health["problems"]]
    oldest = health["outbox"]["oldest_pending_item"]
    if oldest and now - _when(oldest["created_at"]) > OLDEST_PENDING:
        waited = now - _when(oldest["created_at"])
        out.append(problem("queue", f"outbox item {oldest['id']} ({oldest['kind']} to "
                                    f"{oldest['destination']}) pending for "
                                    f"{waited.total_seconds() / 60:.0f} min after "
                                    f"{oldest['attempts']} attempt(s): see telederm queue list"))
    if not out:
        depth = health["outbox"]
        out.append(ok("queue", f"outbox {depth['pending']} pending, {depth['dead']} dead; "
                               f"inbox {health['inbox']['pending']} waiting, "
                               f"{health['inbox']['failed']} failed"))
    return out


def clock(newest_audit: str | None, now: dt.datetime) -> Finding:
    """The clock has not been set back: nothing in the audit trail is later than now."""
    if newest_audit and _when(newest_audit) - now > CLOCK_SLACK:
        return problem("clock", f"the system clock ({now:%Y-%m-%d %H:%M} UTC) is behind the "
                                f"newest audit entry ({newest_audit[:16]}): set the time "
                                "(NTP) before going on, deadlines and certificates depend on it")
    return ok("clock", f"{now:%Y-%m-%d %H:%M} UTC, not behind the audit trail")
