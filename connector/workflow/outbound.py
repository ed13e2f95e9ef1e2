"""Outbound HL7 shared by the steps that write to peers (order status, reports, charges): the
outbox item of one message, and the MSH-5/6 a message about an order or a case goes to."""

from __future__ import annotations

import json

from ..domain.model import Case, Order
from ..store.uow import UnitOfWork


def enqueue_hl7(uow: UnitOfWork, *, destination: str, control_id: str, message: str,
                accession: str | None) -> bool:
    """Queue one outbound HL7 message; the key makes a replay of the same step a no-op."""
    payload = json.dumps({"control_id": control_id, "message": message}).encode("utf-8")
    return uow.outbox.enqueue(kind="hl7.send", destination=destination,
                              key=f"hl7:{destination}:{control_id}", payload=payload,
                              accession=accession, now=uow.moment.iso)


def requester_of(case: Case) -> tuple[str, str]:
    """MSH-5/6 of what we send about a case: the application and facility that ordered it."""
    return sender_of(case.order)


def sender_of(order: Order) -> tuple[str, str]:
    """MSH-5/6 of what we send about an order: the application and facility that sent it."""
    sender = order.sender
    return tuple(sender.split("|", 1)) if "|" in sender else (sender, "")
