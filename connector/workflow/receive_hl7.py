"""Inbound HL7, in HAPI's order: parse -> duplicate check -> route -> inbox + ACK commit -> ACK.

The ACK is returned only after the transaction holding the case, the inbox row (raw message
and the ACK itself) and the audit row has committed. A repeated MSH-10 from the same sender
gets the stored ACK again. AR answers (cannot accept now) are not stored, so a resend is
processed afresh; AA and AE are final and stored.

Orders by ORC-1: NW opens a case (`open_case`), or, when OBR-4 carries a teleconsultation code,
records a teleconsultation done and bills it (`record_teleconsultation`); CA cancels the case
and credits what it charged (`cancel_order`).

Images embedded in a new order (OBX with value type ED) are attached to the new case inside
the same transaction: `attach_image` runs against a savepoint of it (`_InTransaction`), so the
case, its images, their archive jobs and the ACK commit together, or, when one image is bad,
none of them does and the ACK is AE with ERR at that OBX (`OBX^n^5`). Image files written for
an order that is then refused stay in the data folder as unreferenced files (nothing sends them).
"""

from __future__ import annotations

import logging
import re
import secrets

from sqlalchemy.engine import Connection

from ..domain.errors import ConnectorError, StoreUnavailable
from ..domain.model import Case
from ..hl7.ack import ack_for_unparseable, build_ack
from ..hl7.errors import Hl7Error
from ..hl7.orm import OrderImage, images_from_orm, order_from_orm, teleconsultation_from_orm
from ..hl7.parse import ParsedMessage, encode, parse
from ..store import audit, inbox
from ..store.clock import iso
from . import attach_image, cancel_order, open_case, record_teleconsultation
from .bootstrap import Services
from .common import dicom_dt

log = logging.getLogger("connector.hl7.inbound")

ORDER_TYPES = {("ORM", "O01"), ("OMG", "O19")}

# Domain error codes that have a precise HL7 rendering (table 0357 code, ERR-2 location, MSA-1
# when the code's default is not right: a state conflict is final, resending will not help).
_DOMAIN_TO_HL7 = {
    "duplicate-order": ("205", "ORC^1^2", None),
    "unknown-order": ("204", "ORC^1^2", None),
    "state-conflict": ("207", "ORC^1^1", "AE"),
}
_ERL = re.compile(r"^[A-Z][A-Z0-9]{2}\^\d+(\^\d+){0,4}$")


def _control_id() -> str:
    return "A" + secrets.token_hex(9)


def handle(services: Services, raw: bytes, peer: str) -> bytes:
    moment = services.now()
    hl7_now = dicom_dt(moment)
    try:
        msg = parse(raw)
    except Hl7Error as err:
        log.warning("unparseable message from %s: %s", peer, err.text)
        return encode(ack_for_unparseable(raw, err, _control_id(), hl7_now))
    with services.engine.begin() as conn:
        stored = inbox.stored_ack(conn, msg.sender, msg.control_id)
        if stored is not None:
            log.info("duplicate %s from %s: stored ACK re-sent", msg.control_id, peer)
            return stored
        accession, errors = None, []
        try:
            with conn.begin_nested():
                accession = _route(conn, services, msg, now=iso(moment), hl7_now=hl7_now,
                                   actor=f"hl7:{msg.sender}")
        except Hl7Error as err:
            errors = [err]
        except ConnectorError as err:
            code, location, ack_code = _DOMAIN_TO_HL7.get(err.code, ("207", "", None))
            location = location or (err.where if _ERL.match(err.where) else "")
            # The hint of an internal error (207) may name our files: not for the sender.
            hint = err.hint if err.code in _DOMAIN_TO_HL7 else ""
            errors = [Hl7Error(err.text, hl7_code=code, location=location, ack_code=ack_code,
                               hint=hint)]
        code = errors[0].ack_code if errors else "AA"
        ack = encode(build_ack(msg, code, errors, _control_id(), hl7_now))
        if code == "AR":
            return ack
        inbox.record(conn, sender=msg.sender, control_id=msg.control_id,
                     message_type=f"{msg.message_type}^{msg.trigger}", received_at=iso(moment),
                     raw=raw, ack=ack, ack_code=code, accession=accession)
        audit.append(conn, at=iso(moment), actor=f"hl7:{msg.sender}", action="hl7.received",
                     accession=accession, detail={"control_id": msg.control_id,
                                                  "type": f"{msg.message_type}^{msg.trigger}",
                                                  "ack": code,
                                                  "errors": [e.hl7_code for e in errors]})
    log.info("%s^%s %s from %s -> %s%s", msg.message_type, msg.trigger, msg.control_id, peer,
             code, f" {accession}" if accession else "")
    return ack


def _route(conn: Connection, services: Services, msg: ParsedMessage, *, now: str, hl7_now: str,
           actor: str) -> str | None:
    if (msg.message_type, msg.trigger) in ORDER_TYPES:
        control, order = order_from_orm(msg)
        if control == "CA":
            return cancel_order.handle(conn, services, order, hl7_now=hl7_now, now=now,
                                       actor=actor).accession
        if control != "NW":
            raise Hl7Error(f"order control {control} is not supported yet", hl7_code="103",
                           location="ORC^1^1")
        teleconsultation = teleconsultation_from_orm(msg)
        images = images_from_orm(msg)  # decoded before anything is written
        if teleconsultation is not None:
            if images:
                raise Hl7Error("a teleconsultation reported as done takes no images",
                               hl7_code="102", location=images[0].location,
                               hint="send the images with a tele-expertise order")
            return _teleconsultation(conn, services, order, teleconsultation, now=now,
                                     hl7_now=hl7_now, actor=actor)
        case = open_case.handle(conn, order, now=now, actor=actor)
        if images:
            _attach(conn, services, case, images, actor=actor)
        return case.accession
    if msg.message_type not in {t for t, _ in ORDER_TYPES}:
        raise Hl7Error(f"message type {msg.message_type} is not supported", hl7_code="200",
                       location="MSH^1^9^1", ack_code="AR")
    raise Hl7Error(f"event {msg.trigger} is not supported for {msg.message_type}",
                   hl7_code="201", location="MSH^1^9^2", ack_code="AR")


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
