"""Inbound HL7, in HAPI's order: parse -> duplicate check -> route -> inbox + ACK commit -> ACK.

The ACK is returned only after the transaction holding the inbox row (raw message and the ACK
itself) has committed; messages that arrived together on several connections share that
commit (`handle_batch`). A repeated MSH-10 from the same sender gets the stored ACK again. AR
answers (cannot accept now) are not stored, so a resend is processed afresh; AA and AE are
final and stored.

When the message is applied is `[hl7] ack_mode`:
- "processing" (default): routed (`hl7_routes.route`) in the same transaction, before the
  ACK, which tells the outcome (a domain refusal becomes AE with its ERR).
- "storage": only read before the ACK (the route's `read`: everything that needs no case
  store), and stored `pending`; the applier (`runtime/hl7_applier.py`) routes stored messages
  in arrival order.

Image files written for an order that is then refused stay in the data folder as unreferenced
files (nothing sends them).
"""
from __future__ import annotations

import logging
import secrets

from ..bootstrap import Services
from ..hl7.ack import ack_for_unparseable, build_ack
from ..hl7.errors import Hl7Error
from ..hl7.parse import ParsedMessage, encode, parse
from ..store.uow import UnitOfWork
from . import hl7_routes

log = logging.getLogger("connector.hl7.inbound")


def control_id() -> str:
    """MSH-10 of an ACK we send."""
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
    moment = services.moment()
    storage = services.config.hl7.ack_mode == "storage"
    acks: list[bytes] = [b""] * len(items)
    parsed: list[tuple[int, ParsedMessage, bytes, str]] = []
    for index, (raw, peer) in enumerate(items):
        try:
            parsed.append((index, parse(raw), raw, peer))
        except Hl7Error as err:
            log.warning("unparseable message from %s: %s", peer, err.text)
            acks[index] = encode(ack_for_unparseable(raw, err, control_id(), moment.hl7))
    if parsed:
        with services.unit(moment, urgent=True) as uow:
            answered: dict[tuple[str, str], bytes] = {}
            for index, msg, raw, peer in parsed:
                acks[index] = _receive(uow, msg, raw, peer, storage=storage, answered=answered)
    return acks


def _receive(uow: UnitOfWork, msg: ParsedMessage, raw: bytes, peer: str, *, storage: bool,
             answered: dict[tuple[str, str], bytes]) -> bytes:
    """Duplicate check, then apply (or, in storage mode, only read) the message, store it with
    its ACK and return the ACK."""
    key = (msg.sender, msg.control_id)
    stored = answered.get(key) or uow.inbox.stored_ack(*key)
    if stored is not None:
        log.info("duplicate %s from %s: stored ACK re-sent", msg.control_id, peer)
        return stored
    if storage:  # nothing written before the inbox row: no savepoint needed
        ack, code, accession = _store(uow, msg, raw)
    else:
        try:
            with uow.savepoint():
                accession, errors = hl7_routes.route(uow, msg)
                ack, code, accession = _record(uow, msg, raw, errors, accession, state="done")
        except Exception as exc:  # noqa: BLE001 - this message only: AR, the sender resends
            log.error("%s^%s %s from %s: failed with %s; answered AR", msg.message_type,
                      msg.trigger, msg.control_id, peer, type(exc).__name__)
            return encode(build_ack(msg, "AR", [Hl7Error(
                "internal error while accepting the message", hl7_code=207,
                hint="resend later")], control_id(), uow.moment.hl7))
    if code != "AR":
        answered[key] = ack
    log.info("%s^%s %s from %s -> %s%s", msg.message_type, msg.trigger, msg.control_id, peer,
             code, f" {accession}" if accession else "")
    return ack


def _store(uow: UnitOfWork, msg: ParsedMessage, raw: bytes) -> tuple[bytes, str, str | None]:
    """Storage mode: read what can be read without the case store, store the message as
    pending (applied by the applier) and acknowledge it."""
    try:
        hl7_routes.route_of(msg).read(uow.services, msg)
        errors = []
    except Hl7Error as err:
        errors = [err]
    return _record(uow, msg, raw, errors, None, state="pending" if not errors else "done")


def _record(uow: UnitOfWork, msg: ParsedMessage, raw: bytes, errors: list[Hl7Error],
            accession: str | None, *, state: str) -> tuple[bytes, str, str | None]:
    """The ACK, and, unless it is AR (cannot accept now: nothing kept, a resend is processed
    afresh), the inbox row and, for a message dealt with now, its audit row."""
    code = errors[0].ack_code if errors else "AA"
    ack = encode(build_ack(msg, code, errors, control_id(), uow.moment.hl7))
    if code == "AR":
        return ack, code, accession
    kind = f"{msg.message_type}^{msg.trigger}"
    now = uow.moment.iso
    uow.inbox.record(sender=msg.sender, control_id=msg.control_id, message_type=kind,
                     received_at=now, raw=raw, ack=ack, ack_code=code, accession=accession,
                     state=state)
    if state == "done":
        uow.audit.append(at=now, actor=hl7_routes.actor_of(msg), action="hl7.received",
                         accession=accession, detail={"control_id": msg.control_id,
                                                      "type": kind, "ack": code,
                                                      "errors": [e.hl7_code for e in errors]})
    return ack, code, accession
