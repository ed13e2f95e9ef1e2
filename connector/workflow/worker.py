"""Outbox worker: performs archive stores, HL7 sends, worklist publications and CSV drops for
the accounting feed, with retries and dead letters. Between passes it withdraws the worklist
entries of cases that no longer take images (`publish_worklist.retire`).

Each effect is idempotent on the other side (Orthanc keeps one instance per SOP Instance UID;
HL7 peers see the same MSH-10 on a retry; a CSV batch is rewritten under the same file name),
so an effect performed twice after a crash between "done over there" and "marked done here"
duplicates nothing.

What follows an item's outcome is kept out of the worker: `ON_DONE` and `ON_DEAD` map an outbox
kind to hooks run in the transaction that marks the item done or dead (e.g. charges
acknowledged or refused, `charges_delivered`).
"""

from __future__ import annotations

import json
import logging
import threading
import time

from sqlalchemy import update

from ..billing import csvfeed
from ..config import Destination
from ..domain.errors import ConnectorError
from ..hl7.client import check_delivery, send_message
from ..hl7.https import post_message
from ..hl7.errors import DeliveryError
from ..store import outbox
from ..store.clock import iso
from ..store.schema import images
from . import charges_delivered, post_charges, publish_worklist
from .bootstrap import Services

log = logging.getLogger("connector.worker")

# How often the worker looks for worklist entries to withdraw (answered or cancelled cases).
WORKLIST_SWEEP_SECONDS = 5.0


def _perform(services: Services, item: outbox.Item) -> None:
    if item.kind == "archive.store":
        path = item.payload.decode()
        with open(path, "rb") as fh:
            services.archive.store(fh.read())
        return
    if item.kind == "hl7.send":
        body = json.loads(item.payload)
        dest = _destination(services, item, "mllp", "https")
        if dest.transport == "https":
            ack = post_message(dest.address, body["message"], api_key=dest.api_key,
                               header=dest.api_key_header, ca_file=dest.ca_file or None)
            if ack is None:  # a 2xx without an ACK body: delivered
                return
        else:
            host, port = dest.host_port
            ack = send_message(host, port, body["message"], timeout=30)
        check_delivery(ack, body["control_id"])
        return
    if item.kind == publish_worklist.KIND:
        publish_worklist.perform(services, item.payload)
        return
    if item.kind == post_charges.CSV_KIND:
        body = json.loads(item.payload)
        csvfeed.drop(_destination(services, item, "file").folder, control_id=body["control_id"],
                     text=body["text"])
        return
    raise ConnectorError(f"unknown outbox kind {item.kind}")


def _destination(services: Services, item: outbox.Item, *transports: str) -> Destination:
    dest = next((d for d in services.config.destinations if d.name == item.destination), None)
    if dest is None or dest.transport not in transports:
        raise DeliveryError(f"destination '{item.destination}' is not configured"
                            + (f" with transport {' or '.join(transports)}" if dest else ""),
                            retryable=False)
    return dest


def _archived(services: Services, conn, item: outbox.Item) -> None:
    conn.execute(update(images).where(images.c.path == item.payload.decode())
                 .values(archived_at=iso(services.now())))


# Hooks run in the transaction that marks an item done `hook(services, conn, item)` or dead
# `hook(services, conn, item, error)`, by outbox kind.
def _charges_delivered(services: Services, conn, item: outbox.Item) -> None:
    charges_delivered.on_delivered(conn, item)


def _charges_refused(services: Services, conn, item: outbox.Item, error: BaseException) -> None:
    charges_delivered.on_dead(conn, item, error)


ON_DONE = {
    "archive.store": (_archived,),
    "hl7.send": (_charges_delivered,),
}
ON_DEAD = {
    "hl7.send": (_charges_refused,),
}


def run_once(services: Services) -> int:
    """Claim and perform the due items; return how many were attempted."""
    items = outbox.claim(services.engine, services.now())
    for item in items:
        try:
            _perform(services, item)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the item
            # Content the other side refused, or a case/entry that cannot be built: no retry.
            retryable = getattr(exc, "retryable", True)
            with services.engine.begin() as conn:
                status = outbox.fail(conn, item, services.now(), f"{type(exc).__name__}: {exc}",
                                     max_attempts=services.config.outbox_max_attempts,
                                     retryable=retryable)
                if status == "dead":
                    for hook in ON_DEAD.get(item.kind, ()):
                        hook(services, conn, item, exc)
            log.warning("outbox %s %s (%s) failed, now %s: %s", item.id, item.kind,
                        item.accession or "-", status, exc)
            continue
        with services.engine.begin() as conn:
            outbox.complete(conn, item.id, services.now())
            for hook in ON_DONE.get(item.kind, ()):
                hook(services, conn, item)
        log.info("outbox %s %s (%s) done", item.id, item.kind, item.accession or "-")
    return len(items)


def run_forever(services: Services, stop: threading.Event) -> None:
    """Drain until `stop` is set; finishes the item in hand before returning."""
    last_sweep = None
    while not stop.is_set():
        try:
            busy = run_once(services)
        except Exception:  # noqa: BLE001 - e.g. database briefly locked: log and go on
            log.exception("outbox pass failed")
            busy = 0
        if last_sweep is None or time.monotonic() - last_sweep >= WORKLIST_SWEEP_SECONDS:
            last_sweep = time.monotonic()
            try:
                publish_worklist.retire(services)
            except Exception:  # noqa: BLE001 - a full disk or locked database: next sweep
                log.exception("worklist sweep failed")
        if not busy:
            stop.wait(services.config.worker_poll_seconds)
