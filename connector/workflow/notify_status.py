"""Order status to the requester: one message per status change, queued in the outbox in the
transaction of the change, to every requester destination whose `order_status` is not "off"
(`[[destinations]] order_status = "ORM^O01" | "OMG^O19" | "ORU^R01"`; off by default, so an
EHR interface that expects the report only gets the report).

| step | call | ORC-1 / ORC-5 | MSH-10 |
|---|---|---|---|
| order accepted (`open_case`) | `accepted` | OK / SC | `ST<accession>OK` |
| images archived, case READY (`mark_ready`) | `in_progress` | SC / IP | `ST<accession>IP` |
| back in review after a withdrawal (`withdraw_report`) | `in_progress(tag="W<n>")` | SC / IP | `ST<accession>IPW<n>` |
| final report sent (`send_report`) | `completed(tag="V<n>")` | SC / CM | `ST<accession>CMV<n>` |
| the requester's cancel applied (`cancel_order`) | `cancelled_as_requested` | CR / CA | `ST<accession>CR` |
| we refuse / cancel (`refuse_order`) | `refused` | OC / CA, ORC-16 | `ST<accession>OC` |
| a stored order could not be applied (`runtime/hl7_applier`, storage mode) | `unable` | UA, UC, UX / - | `RJ<message key>` |

MSH-10 is derived from the case and the step, and the outbox key from MSH-10 and the
destination, so a step replayed (a READY reached twice, a resent cancel) queues nothing new,
and the peer sees the same MSH-10 on a retry. Messages to one destination leave in the order
they were queued (the outbox keeps order per destination): OK before IP before the report
before CM.
"""

from __future__ import annotations

from ..domain.model import Case, Order, Practitioner
from ..hl7.order_status import build_order_status
from ..store.uow import UnitOfWork
from .outbound import enqueue_hl7, sender_of

# step -> (ORC-1, ORC-5, MSH-10 suffix)
STEPS = {
    "accepted": ("OK", "SC", "OK"),
    "in_progress": ("SC", "IP", "IP"),
    "completed": ("SC", "CM", "CM"),
    "cancelled_as_requested": ("CR", "CA", "CR"),
    "refused": ("OC", "CA", "OC"),
}

# ORC-16 codes (local table, CE-3 `L`) of what we refuse or cancel on our side.
DECLINED = "DECLINED"     # the dermatologist declines the request
CANCELLED = "CANCELLED"   # an operator cancels the case


def accepted(uow: UnitOfWork, case: Case) -> str | None:
    return notify(uow, case, "accepted")


def in_progress(uow: UnitOfWork, case: Case, *, tag: str = "") -> str | None:
    return notify(uow, case, "in_progress", tag=tag)


def completed(uow: UnitOfWork, case: Case, *, tag: str = "") -> str | None:
    return notify(uow, case, "completed", tag=tag)


def cancelled_as_requested(uow: UnitOfWork, case: Case) -> str | None:
    return notify(uow, case, "cancelled_as_requested")


def refused(uow: UnitOfWork, case: Case, *, code: str, text: str,
            action_by: Practitioner | None = None) -> str | None:
    return notify(uow, case, "refused", reason=(code, text), action_by=action_by)


# ORC-1 for an order control we acknowledged once stored but could not apply (table 0119).
UNABLE = {"NW": "UA", "CA": "UC", "XO": "UX"}


def unable(uow: UnitOfWork, order: Order, order_control: str, *, error: tuple[str, str],
           key: str) -> str | None:
    """Tell the requester that an order acknowledged once stored (`[hl7] ack_mode =
    "storage"`) could not be applied: ORC-1 UA / UC / UX for NW / CA / XO, ORC-16 the HL7
    error (table 0357 code, text) its ACK would have carried in processing mode. `key` is the
    refused message's (`update_patient.message_key`): one notice per message, however often
    it is applied. Returns the MSH-10, or None when no destination takes order status."""
    config = uow.services.config
    targets = [d for d in config.destinations_for("requester") if d.order_status != "off"]
    if not targets:
        return None
    control_id = f"RJ{key[:18]}"  # MSH-10 is at most 20 characters in v2.5
    for dest in targets:
        message = build_order_status(
            control_id=control_id, now=uow.moment.hl7, message_type=dest.order_status,
            order_control=UNABLE[order_control], order_status="", case_accession="",
            order=order, reason=error, reason_system="HL70357",
            sending=(config.facility.name, config.facility.id),
            receiving=sender_of(order))
        enqueue_hl7(uow, destination=dest.name, control_id=control_id, message=message,
                    accession=None)
    return control_id


def notify(uow: UnitOfWork, case: Case, step: str, *, tag: str = "",
           reason: tuple[str, str] = ("", ""),
           action_by: Practitioner | None = None) -> str | None:
    """Queue the status message of `step` for each requester destination that takes them;
    returns its MSH-10, or None when no destination takes order status messages. The unit of
    work's moment is the time of the change (MSH-7, ORC-9 and OBR-22)."""
    control, status, suffix = STEPS[step]
    config = uow.services.config
    targets = [d for d in config.destinations_for("requester") if d.order_status != "off"]
    if not targets:
        return None
    control_id = f"ST{case.accession}{suffix}{tag}"
    for dest in targets:
        message = build_order_status(
            control_id=control_id, now=uow.moment.hl7, message_type=dest.order_status,
            order_control=control, order_status=status, case_accession=case.accession,
            order=case.order, reason=reason, action_by=action_by,
            sending=(config.facility.name, config.facility.id),
            receiving=sender_of(case.order))
        enqueue_hl7(uow, destination=dest.name, control_id=control_id, message=message,
                    accession=case.accession)
    return control_id
