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
| a stored order could not be applied (`receive_hl7`, storage mode) | `unable` | UA, UC, UX / - | `RJ<message key>` |

MSH-10 is derived from the case and the step, and the outbox key from MSH-10 and the
destination, so a step replayed (a READY reached twice, a resent cancel) queues nothing new,
and the peer sees the same MSH-10 on a retry. Messages to one destination leave in the order
they were queued (the outbox keeps order per destination): OK before IP before the report
before CM.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Connection

from ..domain.model import Case, Order, Practitioner
from ..hl7.order_status import build_order_status
from . import send_report
from .bootstrap import Services
from .common import dicom_dt

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


def accepted(conn: Connection, services: Services, case: Case, *, now: str) -> str | None:
    return notify(conn, services, case, "accepted", now=now)


def in_progress(conn: Connection, services: Services, case: Case, *, now: str,
                tag: str = "") -> str | None:
    return notify(conn, services, case, "in_progress", now=now, tag=tag)


def completed(conn: Connection, services: Services, case: Case, *, now: str,
              tag: str = "") -> str | None:
    return notify(conn, services, case, "completed", now=now, tag=tag)


def cancelled_as_requested(conn: Connection, services: Services, case: Case, *,
                           now: str) -> str | None:
    return notify(conn, services, case, "cancelled_as_requested", now=now)


def refused(conn: Connection, services: Services, case: Case, *, now: str, code: str, text: str,
            action_by: Practitioner | None = None) -> str | None:
    return notify(conn, services, case, "refused", now=now, reason=(code, text),
                  action_by=action_by)


# ORC-1 for an order control we acknowledged once stored but could not apply (table 0119).
UNABLE = {"NW": "UA", "CA": "UC", "XO": "UX"}


def unable(conn: Connection, services: Services, order: Order, order_control: str, *,
           error: tuple[str, str], key: str, now: str) -> str | None:
    """Tell the requester that an order acknowledged once stored (`[hl7] ack_mode =
    "storage"`) could not be applied: ORC-1 UA / UC / UX for NW / CA / XO, ORC-16 the HL7
    error (table 0357 code, text) its ACK would have carried in processing mode. `key` is the
    refused message's (`update_patient.message_key`): one notice per message, however often
    it is applied. Returns the MSH-10, or None when no destination takes order status."""
    targets = [d for d in services.config.destinations_for("requester")
               if d.order_status != "off"]
    if not targets:
        return None
    control_id = f"RJ{key[:18]}"  # MSH-10 is at most 20 characters in v2.5
    for dest in targets:
        message = build_order_status(
            control_id=control_id, now=hl7_time(now), message_type=dest.order_status,
            order_control=UNABLE[order_control], order_status="", case_accession="",
            order=order, reason=error, reason_system="HL70357",
            sending=(services.config.facility.name, services.config.facility.id),
            receiving=send_report.sender_of(order))
        send_report.enqueue_hl7(conn, destination=dest.name, control_id=control_id,
                                message=message, accession=None, now=now)
    return control_id


def notify(conn: Connection, services: Services, case: Case, step: str, *, now: str,
           tag: str = "", reason: tuple[str, str] = ("", ""),
           action_by: Practitioner | None = None) -> str | None:
    """Queue the status message of `step` for each requester destination that takes them;
    returns its MSH-10, or None when no destination takes order status messages. `now` is the
    ISO time of the change (its HL7 form is MSH-7, ORC-9 and OBR-22)."""
    control, status, suffix = STEPS[step]
    targets = [d for d in services.config.destinations_for("requester")
               if d.order_status != "off"]
    if not targets:
        return None
    control_id = f"ST{case.accession}{suffix}{tag}"
    hl7_now = hl7_time(now)
    for dest in targets:
        message = build_order_status(
            control_id=control_id, now=hl7_now, message_type=dest.order_status,
            order_control=control, order_status=status, case_accession=case.accession,
            order=case.order, reason=reason, action_by=action_by,
            sending=(services.config.facility.name, services.config.facility.id),
            receiving=send_report.sender_of(case.order))
        send_report.enqueue_hl7(conn, destination=dest.name, control_id=control_id,
                                message=message, accession=case.accession, now=now)
    return control_id


def hl7_time(now: str) -> str:
    """The HL7 TS (local time, as `common.dicom_dt`) of an ISO time as the store writes it."""
    return dicom_dt(dt.datetime.fromisoformat(now.replace("Z", "+00:00")))
