"""Storage mode (`[hl7] ack_mode = "storage"`): messages acknowledged once stored are applied
here, in arrival order, by one thread; with several processes on one PostgreSQL store, by one
of them at a time (each pass holds a transaction-scoped advisory lock, and claims its rows
`FOR UPDATE SKIP LOCKED`), so a message applied by one process is never applied, or failed,
again by another. A process that dies mid-pass rolls back: its messages stay pending and the
next pass, of any process, takes them.

Each stored message is routed as the intake would have (`entrypoints.hl7_routes.route`), as of
when it was received, marked `done`, or `failed` with the ERR its ACK would have carried in
processing mode; the sender of a refused order is told with an order status UA / UC / UX
(`notify_status.unable`). The applier waits while messages keep arriving: answering senders
comes first.
"""
from __future__ import annotations

import logging
import threading
import time

from ..bootstrap import Services
from ..domain.errors import StoreUnavailable
from ..domain.moment import Moment
from ..entrypoints import hl7_routes
from ..hl7.errors import Hl7Error
from ..hl7.parse import ParsedMessage, parse
from ..store.uow import UnitOfWork
from ..workflow import notify_status, update_patient

log = logging.getLogger("connector.hl7.inbound")

# The lock a pass holds for its transaction (store/leases.py `exclusive`), so that with several
# processes on one PostgreSQL store one applier at a time takes the oldest messages, in order.
APPLIER = "inbox-applier"

# While messages keep arriving (an intake transaction in the last QUIET seconds), the applier
# waits: answering senders comes first, and stored messages are applied in the gaps, at most
# DEFER seconds after they stopped being applied.
QUIET, DEFER = 0.02, 5.0


def process_pending(services: Services, limit: int = 500) -> int:
    """Apply messages acknowledged once stored, oldest first, in one transaction; return how
    many were taken (fewer than `limit` when an intake transaction asks to pass; 0 when
    another process's pass is running).

    A message whose content the case store refuses (a cancel for an unknown order, a change to
    an answered case ...) is marked `failed` with the HL7 error its ACK would have carried; the
    next ones go on. The database being unavailable stops the pass (retried)."""
    taken = 0
    with services.unit() as uow:
        if not uow.leases.exclusive(APPLIER):
            return 0  # another process's applier is at work: arrival order is one line
        for row in uow.inbox.pending(limit):
            _apply_pending(uow.at(Moment.from_iso(row.received_at)), row)
            taken += 1
            if services.store.urgent_waiting():
                break  # commit now: a peer is waiting for its ACK
    return taken


def apply_forever(services: Services, stop: threading.Event, idle: float = 0.05) -> None:
    """The applier thread: apply stored messages until `stop` is set (a batch in hand is
    finished; what is left waits in the inbox for the next start)."""
    deferred_since = None
    while not stop.is_set():
        if services.store.urgent_within(QUIET):
            deferred_since = deferred_since or time.monotonic()
            if time.monotonic() - deferred_since < DEFER:
                stop.wait(QUIET)
                continue
        deferred_since = None
        try:
            taken = process_pending(services)
        except Exception:  # noqa: BLE001 - e.g. the database briefly locked: next pass
            log.exception("inbox pass failed")
            taken = 0
        if not taken:
            stop.wait(idle)


def _apply_pending(uow: UnitOfWork, row) -> None:
    msg = parse(row.raw)
    kind = f"{msg.message_type}^{msg.trigger}"
    try:
        accession, errors = hl7_routes.route(uow, msg)
    except StoreUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug must not block the messages behind it
        log.error("inbox %s (%s %s): failed with %s", row.id, kind, msg.control_id,
                  type(exc).__name__)
        accession = None
        errors = [Hl7Error("internal error while applying the message", hl7_code=207)]
    state = "failed" if errors else "done"
    if errors and (msg.message_type, msg.trigger) in hl7_routes.ORDER_TYPES:
        _tell_requester(uow, msg, errors[0])
    uow.inbox.finish(row.id, state, accession=accession,
                     errors=[{"code": e.hl7_code, "location": e.location, "text": e.text}
                             for e in errors])
    uow.audit.append(at=row.received_at, actor=hl7_routes.actor_of(msg), action="hl7.received",
                     accession=accession,
                     detail={"control_id": msg.control_id, "type": kind, "ack": row.ack_code,
                             "applied": state, "errors": [e.hl7_code for e in errors]})
    if errors:
        log.warning("inbox %s (%s %s) not applied: ERR %s", row.id, kind, msg.control_id,
                    errors[0].hl7_code)


def _tell_requester(uow: UnitOfWork, msg: ParsedMessage, error: Hl7Error) -> None:
    """An order acknowledged AA once stored, refused now: its sender learns it from an order
    status message (UA / UC / UX with the ERR), where its destination takes them."""
    try:
        read = hl7_routes.read_order(uow.services, msg)
    except Hl7Error:  # the mappings changed since the ACK: nothing to tell it with
        return
    if read.teleconsultation is not None:  # an act reported as done is not an order to us
        return
    if read.order is None:  # a cancel naming only the order's numbers: no patient to send
        log.info("order status for refused %s not queued: the cancel carries no order",
                 msg.control_id)
        return
    try:
        with uow.savepoint():
            notify_status.unable(uow, read.order, read.control,
                                 error=(str(error.hl7_code), error.text),
                                 key=update_patient.message_key(msg.sender, msg.control_id))
    except StoreUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - the notice must not block the messages behind
        log.error("order status for refused %s not queued: %s", msg.control_id,
                  type(exc).__name__)
