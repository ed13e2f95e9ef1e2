"""Which step each inbound HL7 message goes to: one table, `ROUTES`, keyed by MSH-9
(type, trigger event), as HAPI's `ApplicationRouter` binds applications to message types.

Each `Route` has two parts:
- `read(services, msg)`: everything that needs no case store — the mapping of fields to the
  domain, codes, embedded images decoded, report content — returning what `apply` needs, or
  raising `Hl7Error` (its ERR tells where). Storage mode runs only this before the ACK, so the
  ACK still refuses what can never be applied.
- `apply(uow, msg, read)`: builds the command and hands it to its step in the unit of work;
  returns the accession it concerns (None for identity messages: one patient, several cases).

Orders (ORM^O01, OMG^O19, OMI^O23) by ORC-1: NW opens a case (`open_case`), or, when OBR-4
carries a teleconsultation code, records a teleconsultation done and bills it
(`record_teleconsultation`); CA cancels the case named by ORC-2 and/or ORC-3, whatever else
the message carries (`cancel_order`); XO changes it
(`change_order`). ADT A08/A31 update the patient (`update_patient`), A40 merges
(`merge_patients`), A47 changes an identifier (`change_identifier`), A24 / A37 link and unlink
two records of one person (`link_patients`). An identity event about a
patient unknown here is AA and counted; a message whose identity contradicts a known patient
(`IdentityConflict`) is AE at the PID field at fault and recorded as an identity incident, with
nothing else it wrote kept. ORU^R01 and MDM^T02/T10 go to the report path (`receive_report`).
Images embedded in an order (OBX value type ED) are attached in the order's transaction; a bad
one refuses the whole order with ERR at its OBX (`OBX^n^5`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from ..bootstrap import Services
from ..domain.errors import ConnectorError, StoreUnavailable
from ..domain.identity import IdentityConflict
from ..domain.model import Case
from ..hl7 import adt, report_in
from ..hl7.errors import Hl7Error, is_erl
from ..hl7.orm import (OrderImage, cancel_from_orm, images_from_orm, order_control,
                       order_from_orm, patient_location, teleconsultation_from_orm)
from ..hl7.parse import ParsedMessage
from ..store.uow import UnitOfWork
from ..workflow import (attach_image, cancel_order, change_identifier, change_order,
                        link_patients, merge_patients, open_case, receive_report,
                        record_teleconsultation, update_patient)
from ..workflow.commands import (AttachImage, CancelOrder, ChangeIdentifier, ChangeOrder,
                                 LinkPatients, MergePatients, OpenCase, ReceiveReport,
                                 RecordTeleconsultation, UpdatePatient)
from ..workflow.study import of_case as study_facts


@dataclass(frozen=True)
class Route:
    read: Callable[[Services, ParsedMessage], Any]
    apply: Callable[[UnitOfWork, ParsedMessage, Any], "str | None"]


@dataclass(frozen=True)
class ReadOrder:
    control: str  # ORC-1
    order: Any  # domain Order; None for a cancel that carries no whole order
    images: list[OrderImage]
    teleconsultation: Any  # hl7.orm.ReportedTeleconsultation, or None
    cancel: Any = None  # hl7.orm.OrderCancel for ORC-1 CA


def actor_of(msg: ParsedMessage) -> str:
    return f"hl7:{msg.sender}"


def read_order(services: Services, msg: ParsedMessage) -> ReadOrder:
    mapping = services.mappings.orm
    control = order_control(msg, mapping)
    if control not in ("NW", "CA", "XO"):
        raise Hl7Error(f"order control {control} is not supported", hl7_code="103",
                       location="ORC^1^1")
    if control == "CA":
        cancel = cancel_from_orm(msg, mapping)
        return ReadOrder(control, cancel.order, [], None, cancel)
    order = order_from_orm(msg, mapping)[1]
    images = images_from_orm(msg, mapping)  # decoded before writing
    teleconsultation = teleconsultation_from_orm(msg, mapping) if control == "NW" else None
    if teleconsultation is not None and images:
        raise Hl7Error("a teleconsultation reported as done takes no images",
                       hl7_code="102", location=images[0].location,
                       hint="send the images with a tele-expertise order")
    return ReadOrder(control, order, images, teleconsultation)


def apply_order(uow: UnitOfWork, msg: ParsedMessage, read: ReadOrder) -> str:
    actor = actor_of(msg)
    if read.control == "CA":
        named = read.cancel
        return cancel_order.handle(CancelOrder(named.sender, named.placer_order_number,
                                               named.filler_order_number, actor), uow).accession
    if read.control == "XO":
        case = change_order.handle(ChangeOrder(
            read.order, update_patient.message_key(msg.sender, msg.control_id), actor), uow)
    elif read.teleconsultation is not None:
        return _teleconsultation(uow, RecordTeleconsultation(read.order, read.teleconsultation,
                                                             actor))
    else:
        case = open_case.handle(OpenCase(read.order, actor), uow)
    _attach(uow, case, read.images, actor=actor)
    return case.accession


def _teleconsultation(uow: UnitOfWork, cmd: RecordTeleconsultation) -> str:
    """Record and bill the act; a majoration the rules do not know is an error at its OBX."""
    try:
        case, _ = record_teleconsultation.handle(cmd, uow)
    except ConnectorError as err:
        found = re.match(r"^majorations\[(\d+)\]$", err.where)
        if found is None:
            raise
        raise Hl7Error(err.text, hl7_code="103",
                       location=cmd.act.majoration_locations[int(found[1])],
                       hint=err.hint) from None
    return case.accession


def _attach(uow: UnitOfWork, case: Case, images: list[OrderImage], *, actor: str) -> None:
    """Attach each embedded image in the order's transaction; a refusal names its OBX."""
    study = study_facts(uow, case)
    for number, image in enumerate(images, start=1):
        try:
            prepared = attach_image.prepare(
                uow.services, case, AttachImage(case.accession, image.data, actor,
                                                kind=image.kind, site=image.site),
                study=study, number=number)
            attach_image.handle(prepared, uow)
        except StoreUnavailable as err:
            raise Hl7Error(err.text, hl7_code="207", location=image.location,
                           hint="resend later") from None
        except ConnectorError as err:
            raise Hl7Error(f"embedded image refused: {err.text}", hl7_code="102",
                           location=image.location, hint=err.hint) from None


def read_adt(services: Services, msg: ParsedMessage):
    return adt.read_adt(msg, orm=services.mappings.orm)


def apply_adt(uow: UnitOfWork, msg: ParsedMessage, change) -> None:
    key = update_patient.message_key(msg.sender, msg.control_id)
    if isinstance(change, adt.PatientMerge):
        accessions = merge_patients.handle(MergePatients(
            change.surviving, change.prior_id, change.prior_issuer, change.event, key,
            actor_of(msg)), uow)
    elif isinstance(change, adt.PatientLink):
        accessions = link_patients.handle(LinkPatients(
            change.patient, change.other, change.link, change.event, actor_of(msg)), uow)
    elif isinstance(change, adt.IdentifierChange):
        accessions = change_identifier.handle(ChangeIdentifier(
            change.patient, change.prior_id, change.prior_issuer, change.event, key,
            actor_of(msg)), uow)
    else:
        accessions = update_patient.handle(UpdatePatient(change.patient, change.event, key,
                                                         actor_of(msg)), uow)
    if accessions is None:
        _incident(uow, msg, "unknown-patient", "no case names this patient")
    return None  # one patient, possibly several cases: each is audited


def _incident(uow: UnitOfWork, msg: ParsedMessage, kind: str, reason: str,
              location: str = "") -> None:
    uow.identity.record_incident(at=uow.moment.iso, kind=kind,
                                 message_type=f"{msg.message_type}^{msg.trigger}",
                                 sender=msg.sender, control_id=msg.control_id, reason=reason,
                                 location=location)


def read_report(services: Services, msg: ParsedMessage):
    return report_in.read_report(msg, conducts=services.mappings.conducts)


def apply_report(uow: UnitOfWork, msg: ParsedMessage, report) -> str:
    return receive_report.handle(ReceiveReport(report, actor_of(msg)), uow)


ORDER_TYPES = frozenset({("ORM", "O01"), ("OMG", "O19"), ("OMI", "O23")})
ROUTES: dict[tuple[str, str], Route] = {
    **{kind: Route(read_order, apply_order) for kind in ORDER_TYPES},
    **{kind: Route(read_adt, apply_adt) for kind in adt.events()},
    **{kind: Route(read_report, apply_report) for kind in report_in.events()},
}


def route_of(msg: ParsedMessage) -> Route:
    """The route of the message's type and event; AR 200/201 when none."""
    route = ROUTES.get((msg.message_type, msg.trigger))
    if route is not None:
        return route
    if msg.message_type not in {t for t, _ in ROUTES}:
        raise Hl7Error(f"message type {msg.message_type} is not supported", hl7_code="200",
                       location="MSH^1^9^1", ack_code="AR")
    raise Hl7Error(f"event {msg.trigger} is not supported for {msg.message_type}",
                   hl7_code="201", location="MSH^1^9^2", ack_code="AR")


# Domain error codes that have a precise HL7 rendering (table 0357 code, ERR-2 location, MSA-1
# when the code's default is not right: a state conflict is final, resending will not help).
_DOMAIN_TO_HL7 = {
    "duplicate-order": ("205", "ORC^1^2", None),
    "unknown-order": ("204", "ORC^1^2", None),
    "unknown-filler-order": ("204", "ORC^1^3", None),
    "state-conflict": ("207", "ORC^1^1", "AE"),
}


def as_hl7(err: ConnectorError) -> Hl7Error:
    """A domain refusal as the ERR the sender reads (table 0357 code, ERR-2 location)."""
    if isinstance(err, Hl7Error):
        return err
    code, location, ack_code = _DOMAIN_TO_HL7.get(err.code, ("207", "", None))
    location = location or (err.where if is_erl(err.where) else "")
    # The hint of an internal error (207) may name our files: not for the sender.
    hint = err.hint if err.code in _DOMAIN_TO_HL7 else ""
    return Hl7Error(err.text, hl7_code=code, location=location, ack_code=ack_code, hint=hint)


def route(uow: UnitOfWork, msg: ParsedMessage,
          read: Any = None) -> tuple[str | None, list[Hl7Error]]:
    """Apply the message in a savepoint: (accession, []) when applied; (None, [the ERR]) when
    refused, with nothing it wrote kept (an identity conflict is then recorded as an identity
    incident). `read` is its route's `read` result when the caller has it. The store being
    unavailable is raised (try again later)."""
    try:
        with uow.savepoint():
            chosen = route_of(msg)
            if read is None:
                read = chosen.read(uow.services, msg)
            return chosen.apply(uow, msg, read), []
    except StoreUnavailable:
        raise
    except IdentityConflict as err:
        if err.party == 1:
            location = patient_location(msg, uow.services.mappings.orm, err.where,
                                        err.identifier)
        else:  # the other patient of a link: its own PID
            n = adt.load_mapping().second_patient
            location = adt.erl_at(patient_location(msg.with_first("PID", n),
                                                   uow.services.mappings.orm, err.where,
                                                   err.identifier), "PID", n)
        _incident(uow, msg, "conflict", err.text, location)
        return None, [Hl7Error(err.text, hl7_code="205" if err.where == "patient.id" else "207",
                               location=location, ack_code="AE", hint=err.hint)]
    except ConnectorError as err:
        return None, [as_hl7(err)]
