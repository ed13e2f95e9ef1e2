"""Outbox worker: performs archive stores, archive patient updates (ADT, `update_patient`), HL7
sends, worklist publications, CSV drops for the accounting feed, C-STORE forwards to the
hospital PACS (`forward_study`) and audit events to the ATNA repository (`connector/atna/`),
with retries and dead letters. Between passes it withdraws the worklist entries of cases that no longer take images
(`publish_worklist.retire`).

Each effect is idempotent on the other side (Orthanc keeps one instance per SOP Instance UID;
HL7 peers see the same MSH-10 on a retry; a CSV batch is rewritten under the same file name; a
PACS is offered only the objects it has not acknowledged),
so an effect performed twice after a crash between "done over there" and "marked done here"
duplicates nothing.

`run_forever` gives each destination a lane of its own (a thread performing that destination's
items one at a time, oldest first), so a peer that keeps the worker waiting for its ACK holds
back its own line only, not the archive or the other peers. At start it voids the leases a
process that died left behind (SQLite: one serving process per store), so its items are taken
again at once rather than when their leases run out. Between passes it also reads Orthanc's
Changes Log (`catch_up`), so a stable-study notification lost while the connector was down
still makes its case READY.

Every pass also fires the care network's timers that are due (`fire_timers`: reminders and
escalations, `escalate_case`); they are rows in the store, so a restart loses none, and each
is claimed in the transaction that performs it, so none fires twice.

Several processes may share one PostgreSQL store (`telederm serve --workers N`, or nodes):
outbox items are leased (`[worker] lease_seconds`; the leases of a process that died run out
and its items are claimed by the others), and the timers and the Changes Log cursor are each
followed by the one process holding their lease (`_Owned`, store/leases.py). Every CHECKPOINT_SECONDS,
and once when it stops, it anchors the audit chain's head outside the database
(connector/audit.py).

What follows an item's outcome is kept out of the worker: `ON_DONE` and `ON_DEAD` map an outbox
kind to hooks run in the unit of work that marks the item done or dead (e.g. charges
acknowledged or refused, `charges_delivered`; a follow-up request acknowledged or refused by
the scheduling system, `request_follow_up`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time

from ..atna import message as atna_message, syslog as atna_syslog
from ..billing import csvfeed
from ..audit import CHECKPOINT_SECONDS
from ..bootstrap import Services
from ..config import Destination
from ..domain.errors import ConnectorError, NotFound
from ..hl7.client import check_delivery, send_to
from ..hl7.errors import DeliveryError
from ..hl7.https import post_message
from ..hl7.tls import client_context
from ..hl7.parse import salvage_header
from ..store.audit import ATNA_KIND
from ..store.outbox import Item
from ..store.uow import UnitOfWork
from ..workflow import (charges_delivered, escalate_case, forward_study, post_charges,
                        publish_worklist, request_follow_up, update_patient)
from ..workflow.commands import FireTimer
from . import catch_up

log = logging.getLogger("connector.worker")

# How often the worker looks for worklist entries to withdraw (answered or cancelled cases).
WORKLIST_SWEEP_SECONDS = 5.0
# How often it reads Orthanc's Changes Log for stable studies it was not told about.
CATCH_UP_SECONDS = 10.0
# The work one process at a time does when several share a PostgreSQL store (leases).
TIMERS = "routing-timers"
CHANGES = catch_up.LEASE
OWNED = (TIMERS, CHANGES)
RENEW_SECONDS = 5.0
# How long, when stopping, the lanes may take to finish the item in hand (an ACK being waited for).
LANE_STOP_SECONDS = 25.0


def _perform(services: Services, item: Item) -> None:
    if item.kind == "archive.store":
        services.archive.store(services.files.read(item.payload.decode()))
        return
    if item.kind == "hl7.send":
        body = json.loads(item.payload)
        dest = _destination(services, item, "mllp", "https")
        if dest.transport == "https":
            ack = post_message(dest.address, body["message"], api_key=dest.api_key,
                               header=dest.api_key_header, ca_file=dest.ca_file or None,
                               cert_file=dest.cert_file or None, key_file=dest.key_file or None,
                               timeout=dest.answer_timeout())
            if ack is None:  # a 2xx without an ACK body: delivered
                return
        else:  # the destination's persistent connection, MLLP over TLS when configured
            ack = send_to(dest, body["message"], timeout=dest.answer_timeout())
        check_delivery(ack, body["control_id"])
        return
    if item.kind == publish_worklist.KIND:
        publish_worklist.perform(services, item.payload)
        return
    if item.kind == update_patient.KIND:
        update_patient.perform(services, item.payload)
        return
    if item.kind == forward_study.KIND:
        forward_study.perform(services, item)
        return
    if item.kind == ATNA_KIND:
        _send_audit_event(services, item)
        return
    if item.kind == post_charges.CSV_KIND:
        body = json.loads(item.payload)
        csvfeed.drop(_destination(services, item, "file").folder, control_id=body["control_id"],
                     text=body["text"])
        return
    raise ConnectorError(f"unknown outbox kind {item.kind}")


def _send_audit_event(services: Services, item: Item) -> None:
    """An audit row as a DICOM audit message to `[audit] syslog` (connector/atna/), with the
    case's patient ID and study looked up now (the row holds the accession only)."""
    settings = services.config.audit
    if not settings.syslog:
        raise DeliveryError("[audit] syslog is not configured", retryable=False)
    row = json.loads(item.payload)
    detail = row.get("detail") or {}
    patient_id = study_uid = ""
    if row["accession"]:
        with services.reading() as uow:
            try:
                case = uow.cases.load(row["accession"])
            except NotFound:  # an accession refused before any case had it
                case = None
        if case is not None:
            patient_id, study_uid = case.order.patient.id, case.study_uid
    peer = str(detail.get("peer") or detail.get("client") or "")
    if not peer and "@" in row["actor"]:  # dicom:AE@host:port
        peer = row["actor"].rpartition("@")[2]
    event = atna_message.AuditEvent(
        at=row["at"], actor=row["actor"], action=row["action"],
        outcome_ok=row["action"] not in atna_message.FAILED_ACTIONS, peer=peer,
        accession=row["accession"], patient_id=patient_id, study_uid=study_uid)
    host = socket.gethostname()
    source = atna_message.AuditSource(site_id=services.config.facility.id,
                                      source_id=services.config.facility.name, host=host)
    target = atna_syslog.Target.parse(settings.syslog)
    tls = None if target.scheme != "tls" else client_context(
        settings.syslog_ca_file, settings.syslog_cert_file, settings.syslog_key_file,
        where="audit.syslog")
    message = atna_syslog.frame(atna_message.build(event, source), timestamp=row["at"],
                                hostname=host)
    atna_syslog.send(target, message, tls=tls)


def _destination(services: Services, item: Item, *transports: str) -> Destination:
    dest = next((d for d in services.config.destinations if d.name == item.destination), None)
    if dest is None or dest.transport not in transports:
        raise DeliveryError(f"destination '{item.destination}' is not configured"
                            + (f" with transport {' or '.join(transports)}" if dest else ""),
                            retryable=False)
    return dest


def _archived(services: Services, uow: UnitOfWork, item: Item) -> None:
    uow.images.mark_archived(item.payload.decode(), uow.moment.iso)


def _forward_report(services: Services, uow: UnitOfWork, item: Item) -> None:
    """A report's PDF in the archive goes on to the PACS (archive.store keys are
    `archive:<SOP Instance UID>`)."""
    forward_study.report_archived(uow, item.key.removeprefix("archive:"))


# Hooks run in the unit of work that marks an item done `hook(services, uow, item)` or dead
# `hook(services, uow, item, error)`, by outbox kind.
def _charges_delivered(services: Services, uow: UnitOfWork, item: Item) -> None:
    charges_delivered.on_delivered(uow, item)


def _charges_refused(services: Services, uow: UnitOfWork, item: Item,
                     error: BaseException) -> None:
    charges_delivered.on_dead(uow, item, error)


def _follow_up_delivered(services: Services, uow: UnitOfWork, item: Item) -> None:
    request_follow_up.on_delivered(uow, item)


def _follow_up_refused(services: Services, uow: UnitOfWork, item: Item,
                       error: BaseException) -> None:
    request_follow_up.on_dead(uow, item, error)


def _message_sent(services: Services, uow: UnitOfWork, item: Item) -> None:
    """A message delivered is an event of the trail (its type, control id and destination,
    not its content), committed with the item's completion."""
    header = salvage_header(json.loads(item.payload)["message"].encode("utf-8"))
    uow.audit.append(at=uow.moment.iso, actor="worker", action="message.sent",
                     accession=item.accession,
                     detail={"destination": item.destination, "control_id": header.control_id,
                             "type": f"{header.message_type}^{header.trigger}"})


ON_DONE = {
    "archive.store": (_archived, _forward_report),
    "hl7.send": (_charges_delivered, _follow_up_delivered, _message_sent),
}
ON_DEAD = {
    "hl7.send": (_charges_refused, _follow_up_refused),
}


def run_once(services: Services) -> int:
    """Claim and perform the due items (one per destination); return how many were attempted."""
    items = _claim(services)
    for item in items:
        attempt(services, item)
    return len(items)


def fire_timers(services: Services) -> int:
    """Fire the due timers, each in a unit of work of its own; return how many this worker
    fired (those another worker fired first are not counted)."""
    with services.unit() as uow:
        due = uow.routing.due(uow.moment.iso)
    fired = 0
    for timer in due:
        with services.unit() as uow:
            outcome = escalate_case.handle(FireTimer(timer.id, "worker:timer"), uow)
        if outcome is not None:
            fired += 1
            log.info("timer %s %s (%s): %s", timer.id, timer.kind, timer.accession, outcome)
    return fired


def _claim(services: Services, *, exclude: tuple[str, ...] = ()) -> list[Item]:
    """Lease the due head item of each destination (not of those in `exclude`), in a
    transaction of its own."""
    with services.unit() as uow:
        return uow.outbox.claim_in(uow.moment.utc, services.config.worker.lease_seconds,
                                   exclude=exclude)


def attempt(services: Services, item: Item, *, claim_next: bool = False) -> Item | None:
    """Perform one claimed item and record the outcome: done, to be retried, or dead. With
    `claim_next`, the next due item of the same destination is claimed in the transaction
    that records the outcome, and returned (None when there is none)."""
    following: list[Item] = []
    try:
        _perform(services, item)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the item
        # Content the other side refused, or a case/entry that cannot be built: no retry.
        retryable = getattr(exc, "retryable", True)
        with services.unit() as uow:
            status = uow.outbox.fail(item, uow.moment.utc, f"{type(exc).__name__}: {exc}",
                                     max_attempts=services.config.worker.max_attempts,
                                     retryable=retryable)
            if status == "dead":
                for hook in ON_DEAD.get(item.kind, ()):
                    hook(services, uow, item, exc)
            if claim_next:
                following = uow.outbox.claim_in(uow.moment.utc,
                                                services.config.worker.lease_seconds,
                                                limit=1, destination=item.destination)
        log.warning("outbox %s %s (%s) failed, now %s: %s", item.id, item.kind,
                    item.accession or "-", status, exc)
        return following[0] if following else None
    with services.unit() as uow:
        uow.outbox.complete(item.id, uow.moment.utc)
        for hook in ON_DONE.get(item.kind, ()):
            hook(services, uow, item)
        if claim_next:
            following = uow.outbox.claim_in(uow.moment.utc,
                                            services.config.worker.lease_seconds, limit=1,
                                            destination=item.destination)
    if item.kind == "hl7.send":  # type and control id only: the message holds patient data
        header = salvage_header(json.loads(item.payload)["message"].encode("utf-8"))
        log.info("%s^%s %s to %s: accepted (outbox %s, %s)", header.message_type,
                 header.trigger, header.control_id, item.destination, item.id,
                 item.accession or "-")
    else:
        log.info("outbox %s %s (%s) done", item.id, item.kind, item.accession or "-")
    return following[0] if following else None


def _lane(services: Services, item: Item, stop: threading.Event) -> None:
    """Perform `item`, then the next due items of its destination, until none is due or
    `stop` is set (an item claimed but not attempted is then given back)."""
    while item is not None:
        if stop.is_set():
            with services.unit() as uow:
                uow.outbox.release(item.id)
            return
        try:
            item = attempt(services, item, claim_next=True)
        except Exception:  # noqa: BLE001 - e.g. database briefly locked: the next pass
            log.exception("outbox lane %s failed", item.destination)
            return


class _Owned:
    """The work one process at a time does (store/leases.py `hold`): the leases of OWNED this
    process holds, taken or renewed every third of `[worker] lease_seconds` (at most every
    RENEW_SECONDS), so a holder that keeps running never loses them and one that died loses
    them once they expire."""

    def __init__(self, services: Services):
        self.services = services
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.seconds = services.config.worker.lease_seconds
        self.held: frozenset[str] = frozenset()
        self._renewed: float | None = None

    def refresh(self) -> frozenset[str]:
        if (self._renewed is not None
                and time.monotonic() - self._renewed < min(self.seconds / 3, RENEW_SECONDS)):
            return self.held
        self._renewed = time.monotonic()
        try:
            with self.services.unit() as uow:
                held = frozenset(name for name in OWNED if uow.leases.hold(
                    name, self.owner, uow.moment.utc, self.seconds))
        except Exception:  # noqa: BLE001 - the database briefly down: nothing held meanwhile
            log.exception("leases not renewed")
            held = frozenset()
        for name in sorted(held - self.held):
            log.info("lease %s taken (%s)", name, self.owner)
        for name in sorted(self.held - held):
            log.warning("lease %s lost to another process", name)
        self.held = held
        return held

    def release(self) -> None:
        """Give the leases up (a clean stop): another process takes them at its next renewal."""
        try:
            with self.services.unit() as uow:
                for name in self.held:
                    uow.leases.release(name, self.owner)
        except Exception:  # noqa: BLE001 - they then expire on their own
            log.exception("leases not released")
        self.held = frozenset()


def _release_leases(services: Services) -> None:
    """Void the leases of a worker that died (SQLite only: there, the serving process is the
    only worker; several workers share a PostgreSQL store and keep their leases)."""
    if services.store.dialect != "sqlite":
        return
    with services.unit() as uow:
        released = uow.outbox.release_leases()
    if released:
        log.warning("outbox: %s item(s) leased by a previous run taken back", released)


def run_forever(services: Services, stop: threading.Event) -> None:
    """Drain until `stop` is set, one lane per destination; the items in hand are finished
    (within LANE_STOP_SECONDS) before returning."""
    try:
        _release_leases(services)
    except Exception:  # noqa: BLE001 - the leases then run out on their own
        log.exception("outbox: could not release old leases")
    owned = _Owned(services)
    lanes: dict[str, threading.Thread] = {}
    last_sweep = last_catch_up = last_checkpoint = None
    catch_up_failing = False
    while not stop.is_set():
        for name in [name for name, lane in lanes.items() if not lane.is_alive()]:
            del lanes[name]
        try:
            items = _claim(services, exclude=tuple(lanes))
        except Exception:  # noqa: BLE001 - e.g. database briefly locked: log and go on
            log.exception("outbox pass failed")
            items = []
        for item in items:
            lane = threading.Thread(target=_lane, args=(services, item, stop), daemon=True,
                                    name=f"outbox-{item.destination}")
            lanes[item.destination] = lane
            lane.start()
        held = owned.refresh()
        try:
            if TIMERS in held:
                fire_timers(services)
        except Exception:  # noqa: BLE001 - e.g. database briefly locked: the next pass
            log.exception("timers pass failed")
        if last_checkpoint is None or time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS:
            last_checkpoint = time.monotonic()
            _checkpoint(services)
        if last_sweep is None or time.monotonic() - last_sweep >= WORKLIST_SWEEP_SECONDS:
            last_sweep = time.monotonic()
            try:
                publish_worklist.retire(services)
            except Exception:  # noqa: BLE001 - a full disk or locked database: next sweep
                log.exception("worklist sweep failed")
        if CHANGES in held and (last_catch_up is None
                                or time.monotonic() - last_catch_up >= CATCH_UP_SECONDS):
            last_catch_up = time.monotonic()
            try:
                catch_up.run_once(services, owner=owned.owner, lease_seconds=owned.seconds)
                if catch_up_failing:
                    log.info("Orthanc changes catch-up works again")
                catch_up_failing = False
            except Exception as exc:  # noqa: BLE001 - Orthanc down: the next sweep
                # Once per outage, not every sweep (health reports Orthanc's reachability).
                (log.debug if catch_up_failing else log.warning)(
                    "Orthanc changes catch-up failed: %s (retried every %.0f s)", exc,
                    CATCH_UP_SECONDS)
                catch_up_failing = True
        if not items:
            stop.wait(services.config.worker.poll_seconds)
    deadline = time.monotonic() + LANE_STOP_SECONDS
    for lane in lanes.values():
        lane.join(max(deadline - time.monotonic(), 0))
    owned.release()
    _checkpoint(services)  # what this run appended is anchored before the process ends


def _checkpoint(services: Services) -> None:
    """Anchor the audit chain's head outside the database (connector/audit.py)."""
    try:
        with services.reading() as uow:
            services.anchor.checkpoint(uow, services.moment().iso)
    except Exception:  # noqa: BLE001 - a full disk or locked database: the next pass
        log.exception("audit checkpoint failed")
