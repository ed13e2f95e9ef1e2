"""`telederm` command line. Each command turns its arguments into a workflow call.

Errors are one line on stderr, `telederm: <what failed> (<where>): <what to do>`, exit 2 for
bad input and 1 for runtime failures; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import os
import re
import signal
import sys
from pathlib import Path

from ..domain.errors import ConfigError, ConnectorError, DomainError, ImageError, NotFound
from ..domain.model import Priority
from ..domain.moment import Moment
from ..domain.states import CaseStatus
from ..domain.roles import USER_ROLES

BAD_INPUT = (DomainError, ImageError, NotFound, ConfigError)
ACCEPTED = ("AA", "CA")  # MSA-1 codes of a message the peer took


def _config(args):
    from ..config import load_config
    return load_config(getattr(args, "config", None))


def cmd_serve(args) -> int:
    from ..runtime.logs import configure
    from ..runtime.server import RunningConnector
    config = _config(args)
    if args.worker_index is None and args.workers != 1:
        return _serve_workers(args, config)
    if args.worker_index is None:
        running = RunningConnector(config)
    else:  # one of `--workers N` (runtime/supervisor.py)
        running = RunningConnector(config, reuse_port=True, channels=args.worker_index == 0,
                                   manage_orthanc=False)
    running.start()  # a start-up failure stays one line
    if not args.debug:
        configure(config.log.level, config.log.format)
    print(f"telederm: serving HL7 on {config.hl7.listen}, HTTP on {config.http.listen}, "
          f"Orthanc at {config.orthanc.url}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: running.stop())
    try:
        running.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
    return 0


def _serve_workers(args, config) -> int:
    """`serve --workers N`: N serving processes on the same addresses (runtime/supervisor.py)."""
    from ..runtime import supervisor
    from ..runtime.logs import configure
    supervisor.check(config, args.workers)
    if not args.debug:
        configure(config.log.level, config.log.format)
    running = supervisor.Supervisor(config, args.workers, args.config, debug=args.debug)
    signal.signal(signal.SIGTERM, lambda *_: running.stopping.set())
    try:
        running.start()
        print(f"telederm: {args.workers} workers serving HL7 on {config.hl7.listen}, HTTP on "
              f"{config.http.listen}", flush=True)
        running.run()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
    return 0


def cmd_demo(args) -> int:
    from ..demo import run_demo
    return run_demo(keep=args.keep)


def cmd_wrap(args) -> int:
    """Wrap each file into `--out`, instance numbers in the order given; a batch is shared
    between worker processes, one per CPU (a file's work is CPU-bound: hashing, scanning,
    writing), and the written paths are printed in the order given. The first refused file
    ends the command with its error: files before it are written, later ones may be too."""
    from concurrent.futures import ProcessPoolExecutor

    from ..dicom.sites import load_sites, lookup
    from ..dicom.uids import series_uid, wrap_study_uid
    from ..dicom.wrap import check_kind
    from ..config import default_mappings_dir
    from ..domain.model import Patient, PersonName
    from ..domain.moment import hl7_dt

    check_kind(args.kind, where="--kind")
    dermoscope = None
    if args.kind == "dermoscopy":
        from ..dicom.dermoscopy import load_devices, select_device
        dermoscope = select_device(load_devices(default_mappings_dir() / "devices.toml"),
                                   args.device or "", tracking_id=args.tracking_id or "")
    elif args.device or args.tracking_id:
        raise ImageError("--device and --tracking-id apply to --kind dermoscopy only",
                         where="--device", hint="add --kind dermoscopy")
    try:
        patient = Patient(id=args.patient_id, name=PersonName.parse(args.patient_name),
                          birth_date=args.birth_date or "", sex=args.sex or "")
    except DomainError as err:
        options = {"patient.id": "--patient-id", "patient.birth_date": "--birth-date",
                   "patient.sex": "--sex", "name": "--patient-name"}
        raise DomainError(err.text, where=options.get(err.where, err.where),
                          hint="see telederm wrap --help") from None
    site = lookup(load_sites(default_mappings_dir() / "body_sites.csv"), args.site) if args.site else None
    for name in args.files:  # a wrong path is named before any file is written
        if not Path(name).is_file():
            raise ImageError(f"{name} is not a readable file", where=name, hint="check the path")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    now = hl7_dt(dt.datetime.now(dt.timezone.utc))
    study_uid = wrap_study_uid(args.accession or patient.id)
    common = {"kind": args.kind, "patient": patient, "study_uid": study_uid,
              "accession": args.accession or "", "series_uid": series_uid(study_uid, args.kind),
              "study_datetime": now, "content_datetime": now, "site": site,
              "laterality": args.laterality or "", "dermoscope": dermoscope}
    jobs = [(name, number, out, common) for number, name in enumerate(args.files, start=1)]
    workers = min(os.cpu_count() or 1, len(jobs))
    if workers == 1:
        results = map(_wrap_file, jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_wrap_file, jobs)
    try:
        with progress() as bar:
            task = bar.add_task("wrap", total=len(jobs))
            for target, refusal in results:
                if refusal is not None:
                    text, hint, code = refusal
                    raise ImageError(text, where=target, hint=hint, code=code)
                print(target, flush=True)
                bar.advance(task)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return 0


def _wrap_file(job) -> tuple[str, tuple[str, str, str] | None]:
    """Wrap one file of `telederm wrap` (in a worker process): its target path, or the file's
    name and the refusal (text, hint, code; an exception with keyword arguments does not cross
    processes)."""
    from ..dicom.uids import image_uid
    from ..dicom.wrap import wrap_image

    name, number, out, common = job
    path = Path(name)
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        wrapped = wrap_image(data, sop_uid=image_uid(common["study_uid"], common["kind"], sha256),
                             instance_number=number, sha256=sha256, **common)
    except ImageError as err:
        return name, (err.text, err.hint, err.code)
    target = out / f"{path.stem}.dcm"
    partial = target.with_name(target.name + ".tmp")  # a failed write leaves no .dcm behind
    with partial.open("wb") as fh:
        wrapped.write(fh)
    partial.replace(target)
    return str(target), None


def cmd_import(args) -> int:
    from ..workflow import attach_image
    from ..workflow.commands import AttachImage
    from ..bootstrap import build
    folder = Path(args.dir)
    if not folder.is_dir():
        raise ImageError(f"{args.dir} is not a folder", where=args.dir, hint="give a folder of images")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        raise ImageError(f"{args.dir} holds no file", where=args.dir,
                         hint="give the folder that holds the case's images")
    services = build(_config(args))
    with services.reading() as uow:
        uow.cases.load(args.accession)  # an unknown case is named before any file is read
    failed = 0

    def command(path: Path):
        return lambda: AttachImage(args.accession, path.read_bytes(), "cli:import",
                                   kind=args.kind)

    with progress() as bar:
        task = bar.add_task("import", total=len(files))
        results = attach_image.attach_each(services, args.accession, map(command, files))
        for path, result in zip(files, results):
            if isinstance(result, ImageError):
                failed += 1
                bar.console.print(f"telederm: {path.name} refused: {result.one_line()}",
                                  markup=False, highlight=False, soft_wrap=True)
            bar.advance(task)
    print(f"imported {len(files) - failed} of {len(files)} file(s) into {args.accession}")
    return 1 if failed else 0


def progress():
    """The progress bar of a long command, on stderr (stdout keeps what scripts read): done
    and total counts, the rate, the time left. Drawn on a terminal only: a script reading
    stderr gets the error lines alone. What the command prints on stdout goes through the bar
    (drawn above it) only when stdout is that terminal too: piped, it stays on stdout."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                               TextColumn, TimeRemainingColumn)

    class _Rate(TextColumn):
        def __init__(self):
            super().__init__("")

        def render(self, task):
            from rich.text import Text
            return Text(f"{task.speed or 0:.1f}/s")

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), _Rate(), TimeRemainingColumn(), console=console,
                    disable=not console.is_terminal, redirect_stdout=sys.stdout.isatty())


def cmd_hl7_send(args) -> int:
    from ..config import split_address
    from ..hl7.client import send_message
    from ..hl7.errors import Hl7Error
    from ..hl7.parse import decode
    host, port = split_address(args.to, "--to")
    messages = []
    for name in args.files:  # read them all first: a bad file sends nothing
        if not Path(name).is_file():
            raise DomainError(f"{name} is not a readable file", where=name, hint="check the path")
        try:
            text = decode(Path(name).read_bytes())
        except Hl7Error as err:
            raise DomainError(f"{name} cannot be read as HL7: {err.text}", where=name,
                              hint="check MSH-18 against the file's encoding") from None
        messages.append((name, text.replace("\r\n", "\r").replace("\n", "\r").strip("\r") + "\r"))
    refused = []
    with progress() as bar:
        task = bar.add_task("send", total=len(messages))
        for name, text in messages:
            ack = send_message(host, port, text, timeout=args.timeout)
            print(f"{name}: {ack.code} {ack.control_id_acked} {ack.text}".rstrip(), flush=True)
            for err in ack.errors:
                print(f"  ERR {err}", flush=True)
            if ack.code not in ACCEPTED:
                refused.append((name, ack.code))
            bar.advance(task)
    for name, code in refused:  # a script sees the refusal in the exit status
        print(f"telederm: {name} refused by the peer ({args.to}): it answered {code}, see the "
              "ERR lines above", file=sys.stderr)
    return 1 if refused else 0


def cmd_stats(args) -> int:
    from ..bootstrap import build
    from ..statistics import figures, period, render
    try:
        start, end = period(args.date_from, args.date_to)
    except DomainError as err:
        raise DomainError(err.text, where=f"--{err.where}", hint=err.hint) from None
    services = build(_config(args))
    with services.reading() as uow:
        text = render(figures(uow, start, end), args.format)
    _audit_disclosure(services, "stats.exported", period=[str(start), str(end)],
                      format=args.format)
    sys.stdout.write(text)
    return 0


def cmd_queue(args) -> int:
    from ..bootstrap import build
    services = build(_config(args))
    with services.unit() as uow:
        if args.queue_command == "list":
            rows = uow.outbox.items(status=args.status, limit=args.limit)
            for r in rows:
                print(f"{r['id']:>6} {r['status']:<9} {r['kind']:<15} {r['destination']:<12} "
                      f"{r['accession'] or '-':<12} attempts={r['attempts']} "
                      f"{r['last_error'][:80]}".rstrip())
            print(f"{len(rows)} item(s)")
            return 0
        if args.queue_command == "retry":
            done = uow.outbox.retry(args.id, uow.moment.utc)
        else:
            done = uow.outbox.discard(args.id, args.reason, uow.moment.utc)
    if not done:
        raise NotFound(f"no pending or dead outbox item {args.id}", where="ID",
                       hint="list items with telederm queue list")
    print(f"item {args.id} {'queued again' if args.queue_command == 'retry' else 'discarded'}")
    return 0


def cmd_status(args) -> int:
    from ..bootstrap import build
    services = build(_config(args))
    reachable = services.archive.is_alive()
    with services.reading() as uow:
        report = uow.queries.health(reachable)
    report["orthanc"]["url"] = services.config.orthanc.url
    print(json.dumps(report, indent=2))
    for problem in report["problems"]:
        print(f"telederm: {problem}", file=sys.stderr)
    return 1 if report["problems"] else 0


def cmd_doctor(args) -> int:
    from ..bootstrap import build
    from ..runtime.doctor import examine
    findings = examine(build(_config(args)))
    problems = [f for f in findings if f.level == "problem"]
    warnings = [f for f in findings if f.level == "warning"]
    for f in findings:
        if f.level == "problem":
            print(f"telederm: {f.check}: {f.text}", file=sys.stderr)
        else:
            print(f"{f.level:<8}{f.check}: {f.text}")
    print(f"doctor: {len(findings)} check(s), {len(problems)} problem(s), "
          f"{len(warnings)} warning(s)" + ("" if problems else ": all is well"))
    return 1 if problems else 0


def cmd_cases(args) -> int:
    from ..bootstrap import build
    services = build(_config(args))
    with services.reading() as uow:
        if args.cases_command == "list":
            page = uow.queries.list_cases(status=args.status, priority=args.priority,
                                          limit=args.limit)
            for c in page.items:
                print(f"{c['accession']:<16} {c['status']:<15} {c['priority']:<8} "
                      f"{c['placer_order_number']:<20} {c['created_at']}")
            print(f"{len(page.items)} of {page.total} case(s)")
            return 0
        detail = uow.queries.case_detail(args.accession)
    if detail is None:
        raise NotFound(f"no case with accession {args.accession}", where="ACCESSION",
                       hint="list cases with telederm cases list")
    if args.show_patient_data:
        _audit_disclosure(services, "case.shown", accession=args.accession)
    else:
        detail["patient"] = HIDDEN
    print(json.dumps(detail, indent=2, ensure_ascii=False))
    return 0


HIDDEN = "hidden: add --show-patient-data (audited)"


def _audit_disclosure(services, action: str, **detail) -> None:
    """Record who was shown patient data from the command line, before it is shown."""
    import getpass
    accession = detail.pop("accession", None)
    with services.unit() as uow:
        uow.audit.append(at=uow.moment.iso, actor=f"cli:{getpass.getuser()}", action=action,
                         accession=accession, detail=detail)


def cmd_messages(args) -> int:
    from ..bootstrap import build
    from ..hl7.parse import decode, salvage_header
    services = build(_config(args))
    if args.messages_command == "list":
        with services.reading() as uow:
            rows = uow.queries.messages(direction=args.direction, accession=args.accession,
                                        limit=args.limit)
        for m in rows:
            h = salvage_header(m["raw"])
            kind = f"{h.message_type}^{h.trigger}" if h.message_type else m.get("type", "")
            print(f"{m['id']:<10} {m['at'][:19]:<19} {m['direction']:<3} {m['peer'][:20]:<20} "
                  f"{kind:<8} {m['control_id'][:24]:<24} {m['ack'] or '-':<8} "
                  f"{m['status']:<9} {m['accession'] or '-'}")
        print(f"{len(rows)} message(s)")
        return 0
    with services.reading() as uow:
        m = uow.queries.message(args.id)
    if m is None:
        raise NotFound(f"no message {args.id}", where="ID",
                       hint="ids are in-N or out-N: list them with telederm messages list")
    h = salvage_header(m["raw"])
    text = decode(m.pop("raw"))
    out = {**m, "type": f"{h.message_type}^{h.trigger}", "version": h.version,
           "sending": "|".join(h.sending_application[:1] + h.sending_facility[:1]),
           "receiving": "|".join(h.receiving_application[:1] + h.receiving_facility[:1]),
           "segments": [s[:3] for s in text.replace("\n", "\r").split("\r") if s]}
    if "ack_raw" in out:
        out["ack_sent"] = decode(out.pop("ack_raw")).replace("\r", "\n").strip()
    if args.show_patient_data:
        _audit_disclosure(services, "message.shown", accession=m["accession"], message=args.id)
        out["message"] = text.replace("\r", "\n").strip()
    else:
        out["message"] = HIDDEN
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def cmd_audit_verify(args) -> int:
    from ..bootstrap import build
    services = build(_config(args))
    with services.reading() as uow:
        verdict = services.anchor.verify(uow)
    if not verdict.intact:
        more = f" (and {len(verdict.problems) - 1} more problem(s))" if verdict.problems[1:] else ""
        print(f"telederm: audit trail tampered with: {verdict.problems[0]}{more}; restore the "
              "database from a backup and investigate", file=sys.stderr)
        return 1
    print(f"audit chain intact: {verdict.rows} rows, {verdict.checkpoints} checkpoint(s) "
          f"in {services.anchor.path}")
    return 0


def _since(text: str) -> str:
    """--since: a date (YYYY-MM-DD) or an ISO instant, as the audit rows' `at` compares."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO "
                                         "instant") from None
    from ..domain.moment import iso
    return iso(moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc))


def cmd_audit_list(args) -> int:
    """The audit rows oldest first (who, what, which case, when); details hold no patient
    data, so listing them is not itself a disclosure."""
    from ..bootstrap import build
    services = build(_config(args))
    with services.reading() as uow:
        rows = uow.audit.listing(accession=args.accession, since=args.since, limit=args.limit)
    if args.format == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        detail = json.dumps(row["detail"], ensure_ascii=False, sort_keys=True)
        print(f"{row['id']:<8} {row['at'][:19]:<19} {row['actor'][:30]:<30} "
              f"{row['action']:<22} {row['accession'] or '-':<12} {detail}")
    print(f"{len(rows)} row(s)")
    return 0


def cmd_config_check(args) -> int:
    from ..mappings import load_mappings
    config = _config(args)
    mappings = load_mappings(config)
    rules, facilities = mappings.rules, mappings.facilities
    billed = facilities.get(config.facility.id).id
    print(f"config ok: data_dir={config.data_dir}, database={config.db_url.split('://')[0]}, "
          f"destinations={[d.name for d in config.destinations] or 'none'}, "
          f"body sites={len(mappings.sites)}, conducts={len(mappings.conducts)}")
    print(f"billing ok: tariffs={len(mappings.tariffs.rows)}, rules={len(rules.lines)} lines "
          f"{len(rules.combinations)} combinations {len(rules.limits)} limits "
          f"{len(rules.exclusions)} exclusions, facilities={sorted(facilities.facilities)} "
          f"(default {facilities.default}), billed as {billed}"
          + ("" if billed == config.facility.id else
             f" (facility.id {config.facility.id} is not in facilities.toml)"))
    q = mappings.questionnaire
    print(f"hl7 ok: mappings={sorted(mappings.hl7)}, questionnaire={len(q.items)} items "
          f"(levels {'/'.join(name for name, _ in q.triage.levels)}), consent="
          + (mappings.orm.consent.source if mappings.orm.consent.required else "not required")
          + (", TEST MODE (test/demo INS accepted)" if config.hl7.test_mode else ""))
    for warning in config_warnings(config):
        print(f"warning: {warning}")
    return 0


def config_warnings(config) -> list[str]:
    """What loads but should not go live, one line each: an Orthanc password everyone knows
    or none for an external Orthanc, a managed Orthanc no device may send to, nowhere to send
    orders' answers and charges. (The example dermatoscope is not a warning: it stops the
    start, see `mappings.load_mappings`.)"""
    out = []
    if config.orthanc.password == "change-me":
        out.append("orthanc.password is 'change-me', a password everyone knows: set a secret "
                   "of this site (TELEDERM_ORTHANC_PASSWORD), or none to have one generated")
    elif not config.orthanc.password and not config.orthanc.managed:
        out.append("orthanc.password is empty for an external Orthanc: set its password "
                   "(TELEDERM_ORTHANC_PASSWORD)")
    if config.orthanc.managed and not config.orthanc.modalities:
        out.append("no [[orthanc.modalities]]: the managed Orthanc refuses every DICOM device "
                   "(declare each one's name, ae_title, host and port)")
    if not config.destinations:
        out.append("no [[destinations]]: reports, order status and charges reach no system "
                   "(add the EHR and the accounting feed)")
    if config.reports.signing_key is None:
        out.append("no [reports] signing_key/signing_cert: report PDFs go out unsigned "
                   "(telederm keys init makes a trial pair; use the facility's certificate)")
    if (config.db_url.startswith("sqlite:") and not config.database.key
            and config.database.key_file is None):
        out.append("no [database] key_file (or TELEDERM_DATABASE_KEY): the SQLite store is not "
                   "encrypted (name a key file outside data_dir, then telederm keys "
                   "encrypt-store)")
    if not config.storage.key and config.storage.key_file is None:
        out.append("no [storage] key_file (or TELEDERM_STORAGE_KEY): images and report objects "
                   "waiting in data_dir are written in clear")
    for token in config.api.tokens:
        if token.role == "specialist" and not token.practitioner_id:
            out.append(f"[[api.tokens]] {token.name} is a specialist token bound to no "
                       "practitioner: it signs reports as whichever dermatologist they name "
                       "(set its practitioner_id, or give each one a token of their own)")
    if not config.http.tls and not _loopback(config.http.listen.rpartition(":")[0]):
        out.append(f"[http] listen = {config.http.listen} is reachable from the network over "
                   "plain HTTP: tokens, passwords and patient data cross it in clear (set "
                   "[http] cert_file and key_file, or listen on 127.0.0.1 behind a TLS proxy)")
    return out


def _loopback(host: str) -> bool:
    """Whether `host` is this machine only (a name other than localhost is not assumed so)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cmd_keys_init(args) -> int:
    """A self-signed key pair for trials, printed as the [reports] lines that use it."""
    from ..reports.signing import make_trial_pair
    key, cert = make_trial_pair(Path(args.out), common_name=args.name,
                                now=dt.datetime.now(dt.timezone.utc))
    print(f"[reports]\nsigning_key = \"{key}\"\nsigning_cert = \"{cert}\"")
    print("note: a self-signed certificate proves a report unchanged, not who signed it; "
          "use the facility's certificate in production", file=sys.stderr)
    return 0


# The data_dir folders whose files are sealed with the storage keys (store/files.py).
SPOOLED_FOLDERS = ("images", "reports", "archive-updates")


def cmd_keys_rotate(args) -> int:
    """A new current storage key at the end of the key file; the old ones stay, so files
    sealed with them still open. `--rewrite` seals every spooled file again with the new one
    (the connector stopped: a running one knows its key ring as it was when it started)."""
    from ..bootstrap import rotate_storage_key
    from ..store.files import DataFiles
    config = _config(args)
    ring, made = rotate_storage_key(config)
    print(f"storage key {ring.current} is current ({len(ring.keys)} key(s) in "
          f"{config.storage.key_file}){'; the file was made' if made else ''}")
    if args.rewrite:
        count = DataFiles(ring).rewrite([config.data_dir / f for f in SPOOLED_FOLDERS])
        print(f"{count} file(s) sealed again with {ring.current}")
    else:
        print("restart telederm serve so that new files are sealed with it")
    return 0


def cmd_keys_encrypt_store(args) -> int:
    """Encrypt an existing plain SQLite store in place with the configured database key."""
    from ..store.db import encrypt_sqlite
    path, key = _keyed_sqlite(_config(args), "encrypt-store")
    if not path.is_file():
        raise ConfigError(f"no database at {path}: a new store is made encrypted on first start",
                          where="database.url")
    encrypt_sqlite(path, key)
    print(f"database encrypted: {path} (it now opens only with the configured key)")
    return 0


def cmd_keys_backup_store(args) -> int:
    """An online, encrypted copy of the SQLite store (the connector may keep running)."""
    from ..store.db import backup_sqlite
    config = _config(args)
    path, key = _keyed_sqlite(config, "backup-store")
    backup_sqlite(path, key, Path(args.to))
    print(f"database copied to {args.to} (encrypted with the same key)")
    return 0


def _keyed_sqlite(config, command: str) -> tuple[Path, bytes]:
    """The SQLite store's file and key, or the one-line refusal of `keys <command>`."""
    from ..bootstrap import database_key
    if not config.db_url.startswith("sqlite:///"):
        raise ConfigError(f"keys {command} is for the SQLite store; PostgreSQL is encrypted "
                          "by its server (docs/operations.md)", where="database.url")
    key = database_key(config)
    if key is None:
        raise ConfigError("no database key: set [database] key_file (or TELEDERM_DATABASE_KEY)"
                          " first", where="database.key_file")
    return Path(config.db_url[len("sqlite:///"):]), key


def cmd_report_verify(args) -> int:
    """Signer, time and whether the PDF is intact; exit 1 when it is not (or not trusted,
    with --trust)."""
    from ..reports.signing import verify
    path = Path(args.file)
    if not path.is_file():
        raise DomainError(f"{args.file} is not a readable file", where=args.file,
                          hint="give the report PDF (GET /api/cases/<accession>/report.pdf)")
    trust = tuple(Path(t) for t in args.trust)
    for t in trust:
        if not t.is_file():
            raise DomainError(f"{t} is not a readable file", where="--trust",
                              hint="give the signer's certificate or its CA (PEM)")
    # its validator logs each untrusted chain with a traceback; the verdict says it in a line
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    got = verify(path.read_bytes(), trust=trust)
    if got.problem and not got.signer:
        print(f"{path}: {got.problem}")
        return 1
    print(f"signer: {got.signer}")
    print(f"signed at: {got.signed_at or 'not stated'}")
    intact = got.intact and got.valid
    print("intact: yes" if intact else
          f"intact: NO, {got.problem or 'the signature does not match the signer key'}")
    if trust:
        print(f"trusted: {'yes' if got.trusted else 'NO, the signer is not one of --trust'}")
    return 0 if intact and (got.trusted or not trust) else 1


def cmd_billing_explain(args) -> int:
    from ..billing.engine import explain
    from ..billing.rules import load_rules
    from ..billing.tariffs import load_tariffs
    config = _config(args)
    path = Path(args.act)
    if not path.is_file():
        raise DomainError(f"{args.act} is not a readable file", where=args.act,
                          hint="give a JSON file describing the act")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DomainError(f"{args.act} is not JSON: {exc}", where=args.act,
                          hint="see telederm billing explain --help for the fields") from None
    folder = config.mappings_dir / "billing"
    tariffs = load_tariffs(folder / "ngap.toml")
    result = explain(data, tariffs=tariffs, rules=load_rules(folder / "rules.toml",
                                                               tariffs=tariffs))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def cmd_billing_report(args) -> int:
    from ..billing.reconcile import reconcile, render_csv
    from ..bootstrap import build
    first, last = _iso_day(args.date_from, "--from"), _iso_day(args.date_to, "--to")
    if last < first:
        raise DomainError(f"the period ends ({args.date_to}) before it starts "
                          f"({args.date_from})", where="--to", hint="swap --from and --to")
    services = build(_config(args))
    with services.reading() as uow:
        rows = uow.queries.charge_rows(first_day=first.replace("-", ""),
                                       last_day=last.replace("-", ""))
    report = reconcile(rows, date_from=first, date_to=last)
    _audit_disclosure(services, "billing.exported", period=[first, last], lines=len(rows),
                      format="csv" if args.csv else "json")
    if args.csv:
        sys.stdout.write(render_csv(report))
    else:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    return 0


def _iso_day(text: str, option: str) -> str:
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise DomainError(f"{text!r} is not a date written YYYY-MM-DD", where=option,
                      hint="e.g. --from 2026-01-01 --to 2026-01-31")


_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def cmd_users(args) -> int:
    from ..bootstrap import build
    if args.users_command == "add":
        user = _new_user(args)  # every check before the store is opened
    services = build(_config(args))
    with services.unit() as uow:
        if args.users_command == "add":
            uow.users.add(**user, now=uow.moment.iso)
            uow.audit.append(at=uow.moment.iso, actor="cli:users", action="user.added",
                             detail={"login": args.login, "role": args.role,
                                     "scopes": user["scopes"]})
            print(f"user {args.login} added ({args.role})")
        elif args.users_command == "disable":
            if not uow.users.disable(args.login):
                raise NotFound(f"no user {args.login!r}", where="LOGIN",
                               hint="list users with telederm users list")
            uow.audit.append(at=uow.moment.iso, actor="cli:users", action="user.disabled",
                             detail={"login": args.login})
            print(f"user {args.login} disabled (their sessions are closed)")
        else:
            rows = uow.users.listing()
            for u in rows:
                print(f"{u['login']:<20} {u['role']:<10} {u['name']:<30} "
                      f"{u['practitioner_id'] or '-':<14} "
                      f"{'disabled' if u['disabled'] else 'active':<8} {u['scopes'] or '*'}")
            print(f"{len(rows)} user(s)")
    return 0


TOKEN_ROLES = ("requester", "specialist", "device", "manager", "admin")


def cmd_tokens(args) -> int:
    """API tokens kept in the store: the secret is printed once, only its digest is kept."""
    import secrets
    from ..bootstrap import build
    if args.tokens_command == "create":
        if not _LOGIN.match(args.name):
            raise DomainError(f"token name {args.name!r} is not 1-64 letters, digits or "
                              ". _ @ -", where="NAME", hint="e.g. ehr-cardio")
        if args.role == "specialist" and not args.practitioner_id:
            raise DomainError("a specialist token needs the id its holder signs with",
                              where="--practitioner-id",
                              hint="give the IdNatPS (8 + RPPS number)")
        if not 1 <= args.days <= 3650:
            raise DomainError("--days must be between 1 and 3650", where="--days")
        scopes = _scopes(args)
    services = build(_config(args))
    with services.unit() as uow:
        now = uow.moment
        if args.tokens_command == "create":
            secret = "tdt_" + secrets.token_urlsafe(32)
            expires = Moment(now.utc + dt.timedelta(days=args.days)).iso
            uow.tokens.create(name=args.name, role=args.role,
                              practitioner_id=args.practitioner_id, secret=secret,
                              now=now.iso, expires_at=expires, scopes=scopes)
            uow.audit.append(at=now.iso, actor="cli:tokens", action="token.created",
                             detail={"name": args.name, "role": args.role,
                                     "expires_at": expires, "scopes": scopes})
            print(secret)
            print(f"token {args.name} created ({args.role}, expires {expires[:10]}): "
                  "copy it now, it is not shown again", file=sys.stderr)
        elif args.tokens_command == "revoke":
            if not uow.tokens.revoke(args.name, now.iso):
                raise NotFound(f"no live token {args.name!r}", where="NAME",
                               hint="list tokens with telederm tokens list")
            uow.audit.append(at=now.iso, actor="cli:tokens", action="token.revoked",
                             detail={"name": args.name})
            print(f"token {args.name} revoked")
        else:
            rows = uow.tokens.listing()
            for t in rows:
                state = ("revoked" if t["revoked_at"] else
                         "expired" if t["expires_at"] <= now.iso else "active")
                print(f"{t['name']:<24} {t['role']:<10} {t['practitioner_id'] or '-':<14} "
                      f"{t['expires_at'][:10]:<10} {state:<8} {t['scopes'] or '*'}")
            print(f"{len(rows)} token(s)")
    return 0


def _scopes(args) -> str:
    """The --scope options of `users add` / `tokens create`, checked, as stored (space-separated).

    A requester must say which cases it reaches (`--scope '*'` for every one), so that a new
    person or token never reaches every service by omission; other roles take none (a
    specialist reaches its routing pools, an admin or manager everything; a device may be
    limited)."""
    from ..domain.roles import SCOPED_ROLES, parse_scopes
    given = args.scope or []
    if given and args.role not in SCOPED_ROLES:
        raise DomainError(f"--scope limits {' and '.join(SCOPED_ROLES)} only; role {args.role} "
                          "reaches cases by its role", where="--scope")
    if args.role == "requester" and not given:
        raise DomainError("a requester needs the facilities and services it reaches",
                          where="--scope", hint="give --scope FINESS/SERVICE (repeatable), "
                                                "or --scope '*' for every case")
    scopes = parse_scopes(given)
    return "" if scopes is None else " ".join(str(s) for s in scopes)


def _new_user(args) -> dict:
    """The row of `users add`, checked: login, name, the id a specialist signs with, and the
    password (from --password-stdin or a prompt, never the command line)."""
    from ..domain.model import PersonName, Practitioner
    from .ui.passwords import hash_password, problem
    if not _LOGIN.match(args.login):
        raise DomainError(f"login {args.login!r} is not 1-64 letters, digits or . _ @ -",
                          where="LOGIN", hint="e.g. jdupont")
    try:
        name = PersonName.parse(args.name)
        if args.id:
            Practitioner(args.id, name)
    except DomainError as err:
        raise DomainError(err.text, where="--id" if err.where.startswith("practitioner") else "--name",
                          hint="--name FAMILY^GIVEN, --id the RPPS-based IdNatPS") from None
    if args.role == "specialist" and not args.id:
        raise DomainError("a specialist needs the id they sign with", where="--id",
                          hint="give --id with the IdNatPS (8 + RPPS number)")
    scopes = _scopes(args)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass
        password = getpass.getpass(f"password for {args.login}: ")
        if getpass.getpass("again: ") != password:
            raise DomainError("the two passwords differ", where="password",
                              hint="type the same password twice")
    refused = problem(password)
    if refused:
        raise DomainError(refused, where="password", hint="choose a longer passphrase")
    return {"login": args.login, "name": name.hl7(), "role": args.role,
            "practitioner_id": args.id or "", "password": hash_password(password),
            "scopes": scopes}


def cmd_orthanc(args) -> int:
    import secrets
    from ..runtime.server import managed_orthanc
    config = _config(args)
    if not config.orthanc.managed:
        raise ConfigError("this config uses an external Orthanc", where="orthanc.managed",
                          hint="set orthanc.managed = true to let telederm start one")
    # a token for this Orthanc's run: the `serve` that uses it takes it from its config
    orthanc = managed_orthanc(config, secrets.token_urlsafe(32))
    if args.action == "start":
        orthanc.start()
        print(f"Orthanc running at {orthanc.url} (DICOM port {config.orthanc.dicom_port})")
    elif args.action == "stop":
        print("Orthanc stopped" if orthanc.stop() else "Orthanc was not running")
    else:
        print(json.dumps(orthanc.status(), indent=2))
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"telederm: {message} ({self.prog}): see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="telederm", description="TeleDerm Connector: tele-dermatology orders, "
                     "images, reports and billing between HL7 v2 systems and an Orthanc archive.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_config(p):
        p.add_argument("--config", help="telederm.toml (default: built-in defaults)")
        return p

    p = sub.add_parser("demo", help="run one tele-expertise case end to end on a local Orthanc")
    p.add_argument("--keep", action="store_true",
                   help="keep running until Ctrl-C or SIGTERM to browse the study and try the "
                        "/ui/ pages (prints an admin token and demo logins)")
    p.set_defaults(func=cmd_demo)

    p = with_config(sub.add_parser("serve", help="run the connector (listeners, API, workers)"))
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="serving processes on this machine, sharing the listening addresses "
                        "(SO_REUSEPORT) and the store (PostgreSQL when N > 1)")
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("wrap", help="offline: wrap images as DICOM Part-10 files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--kind", choices=["photo", "dermoscopy"], default="photo")
    p.add_argument("--patient-id", default="UNKNOWN")
    p.add_argument("--patient-name", default="ANONYMOUS")
    p.add_argument("--birth-date", metavar="YYYYMMDD")
    p.add_argument("--sex", choices=["M", "F", "O"])
    p.add_argument("--accession", default="")
    p.add_argument("--site", metavar="CODE", help="CID 4029 code (mappings/body_sites.csv)")
    p.add_argument("--laterality", choices=["R", "L", "B", "U"])
    p.add_argument("--device", help="dermatoscope id from mappings/devices.toml (dermoscopy)")
    p.add_argument("--tracking-id", help="lesion label followed over time (dermoscopy)")
    p.set_defaults(func=cmd_wrap)

    p = with_config(sub.add_parser("import", help="attach a folder of images to a case"))
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--accession", required=True)
    p.add_argument("--kind", choices=["photo", "dermoscopy"], default="photo")
    p.set_defaults(func=cmd_import)

    hl7 = sub.add_parser("hl7", help="HL7 tools").add_subparsers(dest="hl7_command", required=True, parser_class=_Parser)
    p = hl7.add_parser("send", help="send HL7 files over MLLP and print the ACKs")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--to", required=True, metavar="HOST:PORT")
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_hl7_send)

    p = with_config(sub.add_parser(
        "stats", help="turnaround, outcomes, volumes, photo quality, billing, incidents",
        description="Figures of the cases opened in a period (whole days, UTC; all time "
                    "by default). Which conducts count as answered without a visit: "
                    "mappings/statistics.toml."))
    p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    p.add_argument("--format", choices=["table", "json", "csv"], default="json")
    p.set_defaults(func=cmd_stats)
    with_config(sub.add_parser("status", help="queue depths, peers, Orthanc reachability")).set_defaults(
        func=cmd_status)
    with_config(sub.add_parser(
        "doctor", help="check Orthanc, peers, certificates, disk, queues and clock",
        description="Connects to each peer without sending anything. Exits 1 with one line "
                    "per problem on stderr, 0 when all is well.")).set_defaults(func=cmd_doctor)
    queue = sub.add_parser("queue", help="the outbox: list, retry or discard items")
    queue_sub = queue.add_subparsers(dest="queue_command", required=True, parser_class=_Parser)
    p = with_config(queue_sub.add_parser("list", help="list outbox items, newest first"))
    p.add_argument("--status", choices=["pending", "done", "dead", "discarded"])
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_queue)
    p = with_config(queue_sub.add_parser("retry", help="queue a dead item again, due now"))
    p.add_argument("id", type=int, metavar="ID")
    p.set_defaults(func=cmd_queue)
    p = with_config(queue_sub.add_parser("discard", help="give up on an item, with a reason"))
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_queue)
    cases_parser = sub.add_parser("cases", help="the cases: list them, show one")
    cases_sub = cases_parser.add_subparsers(dest="cases_command", required=True,
                                            parser_class=_Parser)
    p = with_config(cases_sub.add_parser("list", help="list cases, newest first (no patient "
                                                      "data)"))
    p.add_argument("--status", choices=[s.value for s in CaseStatus])
    p.add_argument("--priority", choices=[p.value for p in Priority])
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_cases)
    p = with_config(cases_sub.add_parser("show", help="one case as JSON: images, reports, "
                                                      "charges, outbox"))
    p.add_argument("accession", metavar="ACCESSION")
    p.add_argument("--show-patient-data", action="store_true",
                   help="include the patient's identity (admin; recorded in the audit trail)")
    p.set_defaults(func=cmd_cases)
    msgs = sub.add_parser("messages", help="HL7 messages received and sent, with their ACKs")
    msgs_sub = msgs.add_subparsers(dest="messages_command", required=True, parser_class=_Parser)
    p = with_config(msgs_sub.add_parser("list", help="list messages, newest first (header "
                                                     "fields only)"))
    p.add_argument("--direction", choices=["in", "out"])
    p.add_argument("--accession")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_messages)
    p = with_config(msgs_sub.add_parser("show", help="one message: header, segments, ACK"))
    p.add_argument("id", metavar="ID", help="in-N (received) or out-N (sent)")
    p.add_argument("--show-patient-data", action="store_true",
                   help="include the message itself (admin; recorded in the audit trail)")
    p.set_defaults(func=cmd_messages)
    audit = sub.add_parser("audit", help="audit trail").add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    with_config(audit.add_parser("verify", help="check the audit chain and its signed "
                                                "checkpoints")).set_defaults(func=cmd_audit_verify)
    p = with_config(audit.add_parser("list", help="audit rows, oldest first"))
    p.add_argument("--accession", help="only this case's rows")
    p.add_argument("--since", type=_since, metavar="DATE|INSTANT",
                   help="only rows from then on (YYYY-MM-DD or ISO 8601; UTC if no offset)")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_audit_list)
    conf = sub.add_parser("config", help="configuration").add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    with_config(conf.add_parser("check", help="load and validate config and mappings")).set_defaults(
        func=cmd_config_check)
    billing = sub.add_parser("billing", help="billing: explain an act, reconcile a period")
    billing_sub = billing.add_subparsers(dest="billing_command", required=True,
                                         parser_class=_Parser)
    p = with_config(billing_sub.add_parser(
        "explain", help="print as JSON what an act would bill, without sending anything",
        description="ACT.json fields: kind (teleexpertise|teleconsultation), date (YYYY-MM-DD), "
                    "patient, requester, specialist, requester_site, specialist_site, "
                    "patient_hospitalised, specialist_is_gp, level (1|2), majorations (codes), "
                    "prior_acts ([{kind, date, requester, specialist[, level]}])."))
    p.add_argument("act", metavar="ACT.json")
    p.set_defaults(func=cmd_billing_explain)
    p = with_config(billing_sub.add_parser(
        "report", help="reconcile the charges recorded for acts dated in a period"))
    p.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--csv", action="store_true", help="one CSV table instead of JSON")
    p.set_defaults(func=cmd_billing_report)
    users = sub.add_parser("users", help="people who log in to the /ui/ pages")
    users_sub = users.add_subparsers(dest="users_command", required=True, parser_class=_Parser)
    p = with_config(users_sub.add_parser(
        "add", help="add a user; the password is asked for (or read from stdin)"))
    p.add_argument("login", metavar="LOGIN")
    p.add_argument("--role", required=True, choices=list(USER_ROLES))
    p.add_argument("--name", required=True, metavar="FAMILY^GIVEN")
    p.add_argument("--id", metavar="RPPS", help="IdNatPS the specialist signs with (8 + RPPS)")
    p.add_argument("--scope", action="append", metavar="FAC/SERVICE",
                   help="FINESS/SERVICE a requester reaches (FINESS alone: all its services; '*': every case); repeatable, required for a requester")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.set_defaults(func=cmd_users)
    with_config(users_sub.add_parser("list", help="list users")).set_defaults(func=cmd_users)
    p = with_config(users_sub.add_parser("disable", help="disable a user and end their "
                                                         "sessions"))
    p.add_argument("login", metavar="LOGIN")
    p.set_defaults(func=cmd_users)
    tokens = sub.add_parser("tokens", help="API tokens kept in the store (digests only)")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True,
                                       parser_class=_Parser)
    p = with_config(tokens_sub.add_parser("create", help="make a token and print it once"))
    p.add_argument("name", metavar="NAME")
    p.add_argument("--role", required=True, choices=list(TOKEN_ROLES))
    p.add_argument("--practitioner-id", default="",
                   help="a specialist token: the IdNatPS its holder signs with")
    p.add_argument("--days", type=int, default=365, help="valid for this many days (365)")
    p.add_argument("--scope", action="append", metavar="FAC/SERVICE",
                   help="FINESS/SERVICE a requester reaches (FINESS alone: all its services; '*': every case); repeatable, required for a requester")
    p.set_defaults(func=cmd_tokens)
    with_config(tokens_sub.add_parser("list", help="list tokens (never their secret)")
                ).set_defaults(func=cmd_tokens)
    p = with_config(tokens_sub.add_parser("revoke", help="revoke a token at once"))
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_tokens)
    keys = sub.add_parser("keys", help="the report signing key, the keys of data at rest")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, parser_class=_Parser)
    p = keys_sub.add_parser("init", help="make a self-signed key and certificate for trials")
    p.add_argument("--out", required=True, help="folder to write signing-key.pem and "
                   "signing-cert.pem into (never overwritten)")
    p.add_argument("--name", default="TeleDerm trial signer",
                   help="the certificate's common name (the facility)")
    p.set_defaults(func=cmd_keys_init)
    p = with_config(keys_sub.add_parser("rotate", help="add a new current storage key (old "
                                        "files stay readable)"))
    p.add_argument("--rewrite", action="store_true",
                   help="seal every spooled file again with the new key (connector stopped)")
    p.set_defaults(func=cmd_keys_rotate)
    with_config(keys_sub.add_parser("encrypt-store", help="encrypt a plain SQLite store with "
                                    "the database key (connector stopped)")
                ).set_defaults(func=cmd_keys_encrypt_store)
    p = with_config(keys_sub.add_parser("backup-store", help="an online copy of the encrypted "
                                        "SQLite store, encrypted with the same key"))
    p.add_argument("--to", required=True, help="the new file to copy the store into")
    p.set_defaults(func=cmd_keys_backup_store)
    report = sub.add_parser("report", help="report PDFs")
    report_sub = report.add_subparsers(dest="report_command", required=True, parser_class=_Parser)
    p = report_sub.add_parser("verify", help="check a report PDF's signature: signer, time, "
                              "intact (exit 1 when not)")
    p.add_argument("file", help="the report PDF")
    p.add_argument("--trust", action="append", default=[], metavar="CERT",
                   help="a certificate (PEM) the signer must chain to; repeatable")
    p.set_defaults(func=cmd_report_verify)
    p = with_config(sub.add_parser("orthanc", help="the managed Orthanc"))
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_orthanc)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.debug:  # its connection retries are noise; we report the outcome ourselves
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        return args.func(args)
    except BAD_INPUT as err:
        if args.debug:
            raise
        for problem in err.problems if isinstance(err, ConfigError) else (err,):
            print(f"telederm: {problem.one_line()}", file=sys.stderr)
        return 2
    except ConnectorError as err:
        if args.debug:
            raise
        print(f"telederm: {err.one_line()}", file=sys.stderr)
        return 1
    except OSError as err:
        if args.debug:
            raise
        print(f"telederm: {err.strerror or err} ({getattr(err, 'filename', '') or 'system'}): "
              "check the path, permissions or port", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
