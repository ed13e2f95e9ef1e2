"""Inbound HL7, in HAPI's order: parse -> duplicate check -> route -> inbox + ACK commit -> ACK.

The ACK is returned only after the transaction holding the inbox row (raw message and the ACK
itself) has committed; messages that arrived together on several connections share that
commit (`handle_batch`). A repeated MSH-10 from the same sender gets the stored ACK again. AR
answers (cannot accept now) are not stored, so a resend is processed afresh; AA and AE are
final and stored.

When the message is applied is `[hl7] ack_mode`:
- "processing" (default): routed in the same transaction, before the ACK, which tells the
  outcome (a domain refusal becomes AE with its ERR).
- "storage": only checked before the ACK (`_check`: everything that needs no case store), and
  stored `pending`; `process_pending` (the applier thread, `apply_forever`) routes stored
  messages in arrival order, marking each `done`, or `failed` with the ERR its ACK would have
  carried; the sender of a failed order is told with an order status UA / UC / UX
  (`notify_status.unable`). The applier waits while messages keep arriving: answering
  senders comes first.

Routing (`_route`): orders (ORM^O01, OMG^O19, OMI^O23) by ORC-1: NW opens a case
(`open_case`), or, when OBR-4 carries a teleconsultation code, records a teleconsultation done
and bills it (`record_teleconsultation`); CA cancels the case and credits what it charged
(`cancel_order`); XO changes it (`change_order`). ADT A08/A31 update the patient
(`update_patient`), A40 merges (`merge_patients`). ORU^R01 and MDM^T02/T10 from the reporting
system go to the report path (`receive_report`).

Images embedded in an order (OBX with value type ED) are attached to the case inside the same
transaction, against a savepoint of it, so the case, its images, their archive jobs and the ACK
commit together, or, when one image is bad, none of them does and the ACK is AE with ERR at
that OBX (`OBX^n^5`). Image files written for an order that is then refused stay in the data
folder as unreferenced files (nothing sends them).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import secrets
import threading
import time

from sqlalchemy.engine import Connection

from ..domain.errors import ConnectorError, StoreUnavailable
from ..domain.model import Case
from ..hl7 import adt, report_in
from ..hl7.ack import ack_for_unparseable, build_ack
from ..hl7.errors import Hl7Error, is_erl
from ..hl7.orm import OrderImage, images_from_orm, order_from_orm, teleconsultation_from_orm
from ..hl7.parse import ParsedMessage, encode, parse
from ..store import audit, inbox
from ..store.clock import iso
from . import attach_image, cancel_order, open_case, record_teleconsultation
from . import change_order, merge_patients, notify_status, receive_report, update_patient
from .bootstrap import Services
from .common import dicom_dt

log = logging.getLogger("connector.hl7.inbound")

ORDER_TYPES = {("ORM", "O01"), ("OMG", "O19"), ("OMI", "O23")}

# Domain error codes that have a precise HL7 rendering (table 0357 code, ERR-2 location, MSA-1
# when the code's default is not right: a state conflict is final, resending will not help).
_DOMAIN_TO_HL7 = {
    "duplicate-order": ("205", "ORC^1^2", None),
    "unknown-order": ("204", "ORC^1^2", None),
    "state-conflict": ("207", "ORC^1^1", "AE"),
}


def _control_id() -> str:
    return "A" + secrets.token_hex(9)


def handle(services: Services, raw: bytes, peer: str) -> bytes:
    """One message in a transaction of its own (the CLI, tests); the listener batches."""
    return handle_batch(services, [(raw, peer)])[0]


def handle_batch(services: Services, items: list[tuple[bytes, str]]) -> list[bytes]:
    """ACKs for messages that arrived together (one per connection at most), in one commit.

    Each message runs in a savepoint of its own, so one that fails unexpectedly is answered AR
    (not stored: the sender resends) without touching the others; the commit covers them all,
    and if it fails every one of them is answered AR by the listener. Group commit is what
    lets several connections share the cost of a durable write.
    """
    moment = services.now()
    now, hl7_now = iso(moment), dicom_dt(moment)
    storage = services.config.hl7_ack_mode == "storage"
    acks: list[bytes] = [b""] * len(items)
    parsed: list[tuple[int, ParsedMessage, bytes, str]] = []
    for index, (raw, peer) in enumerate(items):
        try:
            parsed.append((index, parse(raw), raw, peer))
        except Hl7Error as err:
            log.warning("unparseable message from %s: %s", peer, err.text)
            acks[index] = encode(ack_for_unparseable(raw, err, _control_id(), hl7_now))
    if parsed:
        with _urgent(services), services.engine.begin() as conn:
            answered: dict[tuple[str, str], bytes] = {}
            for index, msg, raw, peer in parsed:
                acks[index] = _receive(conn, services, msg, raw, peer, now=now,
                                       hl7_now=hl7_now, storage=storage, answered=answered)
    return acks


def _urgent(services: Services):
    """A peer waits for this transaction: it goes before background writers (SQLite)."""
    gate = getattr(services.engine, "gate", None)
    return gate.urgent() if gate is not None else contextlib.nullcontext()


def _receive(conn: Connection, services: Services, msg: ParsedMessage, raw: bytes, peer: str, *,
             now: str, hl7_now: str, storage: bool,
             answered: dict[tuple[str, str], bytes]) -> bytes:
    """Duplicate check, then apply (or, in storage mode, only check) the message, store it with
    its ACK and return the ACK."""
    key = (msg.sender, msg.control_id)
    stored = answered.get(key) or inbox.stored_ack(conn, *key)
    if stored is not None:
        log.info("duplicate %s from %s: stored ACK re-sent", msg.control_id, peer)
        return stored
    if storage:  # nothing written before the inbox row: no savepoint needed
        ack, code, accession = _store(conn, services, msg, raw, now=now, hl7_now=hl7_now)
    else:
        try:
            with conn.begin_nested():
                ack, code, accession = _apply(conn, services, msg, raw, now=now,
                                              hl7_now=hl7_now)
        except Exception as exc:  # noqa: BLE001 - this message only: AR, the sender resends
            log.error("%s^%s %s from %s: failed with %s; answered AR", msg.message_type,
                      msg.trigger, msg.control_id, peer, type(exc).__name__)
            return encode(build_ack(msg, "AR", [Hl7Error(
                "internal error while accepting the message", hl7_code=207,
                hint="resend later")], _control_id(), hl7_now))
    if code != "AR":
        answered[key] = ack
    log.info("%s^%s %s from %s -> %s%s", msg.message_type, msg.trigger, msg.control_id, peer,
             code, f" {accession}" if accession else "")
    return ack


def _apply(conn: Connection, services: Services, msg: ParsedMessage, raw: bytes, *, now: str,
           hl7_now: str) -> tuple[bytes, str, str | None]:
    """Processing mode: route the message, then store it with the ACK telling the outcome."""
    accession, errors = _route_in_savepoint(conn, services, msg, now=now, hl7_now=hl7_now)
    return _record(conn, msg, raw, errors, accession, state="done", now=now, hl7_now=hl7_now)


def _route_in_savepoint(conn: Connection, services: Services, msg: ParsedMessage, *, now: str,
                        hl7_now: str) -> tuple[str | None, list[Hl7Error]]:
    """(accession, []) when the message was applied; (None, [the ERR]) when it was refused,
    with nothing it wrote kept. The database being unavailable is raised (try again later)."""
    try:
        with conn.begin_nested():
            return _route(conn, services, msg, now=now, hl7_now=hl7_now,
                          actor=f"hl7:{msg.sender}"), []
    except Hl7Error as err:
        return None, [err]
    except StoreUnavailable:
        raise
    except ConnectorError as err:
        return None, [_as_hl7(err)]


def _store(conn: Connection, services: Services, msg: ParsedMessage, raw: bytes, *, now: str,
           hl7_now: str) -> tuple[bytes, str, str | None]:
    """Storage mode: check what can be checked without the case store, store the message as
    pending (applied by `process_pending`) and acknowledge it."""
    try:
        _check(services, msg)
        errors = []
    except Hl7Error as err:
        errors = [err]
    return _record(conn, msg, raw, errors, None, state="pending" if not errors else "done",
                   now=now, hl7_now=hl7_now)


def _record(conn: Connection, msg: ParsedMessage, raw: bytes, errors: list[Hl7Error],
            accession: str | None, *, state: str, now: str,
            hl7_now: str) -> tuple[bytes, str, str | None]:
    """The ACK, and, unless it is AR (cannot accept now: nothing kept, a resend is processed
    afresh), the inbox row and, for a message dealt with now, its audit row."""
    code = errors[0].ack_code if errors else "AA"
    ack = encode(build_ack(msg, code, errors, _control_id(), hl7_now))
    if code == "AR":
        return ack, code, accession
    kind = f"{msg.message_type}^{msg.trigger}"
    inbox.record(conn, sender=msg.sender, control_id=msg.control_id, message_type=kind,
                 received_at=now, raw=raw, ack=ack, ack_code=code, accession=accession,
                 state=state)
    if state == "done":
        audit.append(conn, at=now, actor=f"hl7:{msg.sender}", action="hl7.received",
                     accession=accession, detail={"control_id": msg.control_id, "type": kind,
                                                  "ack": code,
                                                  "errors": [e.hl7_code for e in errors]})
    return ack, code, accession


def process_pending(services: Services, limit: int = 500) -> int:
    """Apply messages acknowledged once stored, oldest first, in one transaction; return how
    many were taken (fewer than `limit` when an intake transaction asks to pass).

    A message whose content the case store refuses (a cancel for an unknown order, a change to
    an answered case ...) is marked `failed` with the HL7 error its ACK would have carried; the
    next ones go on. The database being unavailable stops the pass (retried)."""
    gate = getattr(services.engine, "gate", None)
    taken = 0
    with services.engine.begin() as conn:
        for row in inbox.pending(conn, limit):
            _apply_pending(conn, services, row)
            taken += 1
            if gate is not None and gate.urgent_waiting():
                break  # commit now: a peer is waiting for its ACK
    return taken


# While messages keep arriving (an intake transaction in the last QUIET seconds), the applier
# waits: answering senders comes first, and stored messages are applied in the gaps, at most
# DEFER seconds after they stopped being applied.
QUIET, DEFER = 0.02, 5.0


def apply_forever(services: Services, stop: threading.Event, idle: float = 0.05) -> None:
    """The applier thread: apply stored messages until `stop` is set (a batch in hand is
    finished; what is left waits in the inbox for the next start)."""
    gate = getattr(services.engine, "gate", None)
    deferred_since = None
    while not stop.is_set():
        if gate is not None and gate.urgent_within(QUIET):
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


def _apply_pending(conn: Connection, services: Services, row: inbox.Pending) -> None:
    msg = parse(row.raw)
    moment = dt.datetime.fromisoformat(row.received_at.replace("Z", "+00:00"))
    actor, kind = f"hl7:{msg.sender}", f"{msg.message_type}^{msg.trigger}"
    try:
        accession, errors = _route_in_savepoint(conn, services, msg, now=row.received_at,
                                                hl7_now=dicom_dt(moment))
    except StoreUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug must not block the messages behind it
        log.error("inbox %s (%s %s): failed with %s", row.id, kind, msg.control_id,
                  type(exc).__name__)
        accession = None
        errors = [Hl7Error("internal error while applying the message", hl7_code=207)]
    state = "failed" if errors else "done"
    if errors and (msg.message_type, msg.trigger) in ORDER_TYPES:
        _tell_requester(conn, services, msg, errors[0], now=row.received_at)
    inbox.finish(conn, row.id, state, accession=accession,
                 errors=[{"code": e.hl7_code, "location": e.location, "text": e.text}
                         for e in errors])
    audit.append(conn, at=row.received_at, actor=actor, action="hl7.received",
                 accession=accession,
                 detail={"control_id": msg.control_id, "type": kind, "ack": row.ack_code,
                         "applied": state, "errors": [e.hl7_code for e in errors]})
    if errors:
        log.warning("inbox %s (%s %s) not applied: ERR %s", row.id, kind, msg.control_id,
                    errors[0].hl7_code)


def _tell_requester(conn: Connection, services: Services, msg: ParsedMessage, error: Hl7Error,
                    *, now: str) -> None:
    """An order acknowledged AA once stored, refused now: its sender learns it from an order
    status message (UA / UC / UX with the ERR), where its destination takes them."""
    try:
        control, order, _, teleconsultation = _read_order(msg, services)
    except Hl7Error:  # the mappings changed since the ACK: nothing to tell it with
        return
    if teleconsultation is None:  # an act reported as done is not an order to us
        try:
            with conn.begin_nested():
                notify_status.unable(conn, services, order, control,
                                     error=(str(error.hl7_code), error.text),
                                     key=update_patient.message_key(msg.sender, msg.control_id),
                                     now=now)
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the notice must not block the messages behind
            log.error("order status for refused %s not queued: %s", msg.control_id,
                      type(exc).__name__)


def _as_hl7(err: ConnectorError) -> Hl7Error:
    """A domain refusal as the ERR the sender reads (table 0357 code, ERR-2 location)."""
    code, location, ack_code = _DOMAIN_TO_HL7.get(err.code, ("207", "", None))
    location = location or (err.where if is_erl(err.where) else "")
    # The hint of an internal error (207) may name our files: not for the sender.
    hint = err.hint if err.code in _DOMAIN_TO_HL7 else ""
    return Hl7Error(err.text, hl7_code=code, location=location, ack_code=ack_code, hint=hint)


def _check(services: Services, msg: ParsedMessage) -> None:
    """Storage mode: everything `_route` checks without the case store (mappings, codes,
    embedded images, report content), so the ACK still refuses what can never be applied."""
    kind = (msg.message_type, msg.trigger)
    if kind in ORDER_TYPES:
        _read_order(msg, services)
    elif kind in adt.events():
        adt.read_adt(msg, orm=services.mappings.orm)
    elif kind in report_in.events():
        report_in.read_report(msg, conducts=services.mappings.conducts)
    else:
        _unsupported(msg)


def _unsupported(msg: ParsedMessage) -> None:
    known = {t for t, _ in ORDER_TYPES} | {adt.MESSAGE_TYPE} | report_in.message_types()
    if msg.message_type not in known:
        raise Hl7Error(f"message type {msg.message_type} is not supported", hl7_code="200",
                       location="MSH^1^9^1", ack_code="AR")
    raise Hl7Error(f"event {msg.trigger} is not supported for {msg.message_type}",
                   hl7_code="201", location="MSH^1^9^2", ack_code="AR")


def _route(conn: Connection, services: Services, msg: ParsedMessage, *, now: str, hl7_now: str,
           actor: str) -> str | None:
    if (msg.message_type, msg.trigger) in ORDER_TYPES:
        control, order, images, teleconsultation = _read_order(msg, services)
        if control == "CA":
            return cancel_order.handle(conn, services, order, hl7_now=hl7_now, now=now,
                                       actor=actor).accession
        if control == "XO":
            case = change_order.handle(conn, services, order, now=now, actor=actor,
                                       key=update_patient.message_key(msg.sender,
                                                                      msg.control_id))
        elif teleconsultation is not None:
            return _teleconsultation(conn, services, order, teleconsultation, now=now,
                                     hl7_now=hl7_now, actor=actor)
        else:
            case = open_case.handle(conn, order, now=now, actor=actor, services=services)
        if images:
            _attach(conn, services, case, images, actor=actor)
        return case.accession
    if (msg.message_type, msg.trigger) in adt.events():
        change = adt.read_adt(msg, orm=services.mappings.orm)
        key = update_patient.message_key(msg.sender, msg.control_id)
        if isinstance(change, adt.PatientMerge):
            merge_patients.handle(conn, services, change.surviving, prior_id=change.prior_id,
                                  prior_issuer=change.prior_issuer, event=change.event, key=key,
                                  now=now, actor=actor)
        else:
            update_patient.handle(conn, services, change.patient, event=change.event, key=key,
                                  now=now, actor=actor)
        return None  # one patient, possibly several cases: each is audited
    if (msg.message_type, msg.trigger) in report_in.events():
        return receive_report.handle(conn, services, msg, now=now, actor=actor)
    _unsupported(msg)


def _read_order(msg: ParsedMessage, services: Services):
    """(ORC-1, order, embedded images, reported teleconsultation or None) with every check
    that needs no case store: shared by `_check` and `_route`."""
    mapping = services.mappings.orm
    control, order = order_from_orm(msg, mapping)
    if control not in ("NW", "CA", "XO"):
        raise Hl7Error(f"order control {control} is not supported yet", hl7_code="103",
                       location="ORC^1^1")
    images = images_from_orm(msg, mapping) if control != "CA" else []  # decoded before writing
    teleconsultation = teleconsultation_from_orm(msg, mapping) if control == "NW" else None
    if teleconsultation is not None and images:
        raise Hl7Error("a teleconsultation reported as done takes no images",
                       hl7_code="102", location=images[0].location,
                       hint="send the images with a tele-expertise order")
    return control, order, images, teleconsultation


def _teleconsultation(conn: Connection, services: Services, order, act, *, now: str,
                      hl7_now: str, actor: str) -> str:
    """Record and bill the act; a majoration the rules do not know is an error at its OBX."""
    try:
        case, _ = record_teleconsultation.handle(conn, services, order, act,
                                                 received_on=hl7_now[:8], hl7_now=hl7_now,
                                                 now=now, actor=actor)
    except ConnectorError as err:
        found = re.match(r"^majorations\[(\d+)\]$", err.where)
        if found is None:
            raise
        raise Hl7Error(err.text, hl7_code="103",
                       location=act.majoration_locations[int(found[1])], hint=err.hint) from None
    return case.accession


def _attach(conn: Connection, services: Services, case: Case, images: list[OrderImage], *,
            actor: str) -> None:
    """Attach each embedded image in the order's transaction; a refusal names its OBX."""
    for number, image in enumerate(images, start=1):
        try:
            prepared = attach_image.prepare(services, case, image.data, number=number,
                                            kind=image.kind, site=image.site)
            attach_image.record(conn, services, prepared, actor=actor)
        except StoreUnavailable as err:
            raise Hl7Error(err.text, hl7_code="207", location=image.location,
                           hint="resend later") from None
        except ConnectorError as err:
            raise Hl7Error(f"embedded image refused: {err.text}", hl7_code="102",
                           location=image.location, hint=err.hint) from None
