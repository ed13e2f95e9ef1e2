"""Step 4b: when the report's conduct calls for an in-person visit or procedure (`follow_up`
in mappings/conducts.toml), ask each scheduling destination for it, in the report's unit of
work: one message per destination through the outbox (SIU^S12, ORM^O01 or OMG^O19, see
`hl7/follow_up.py`), a `follow_ups` row `requested`, which the destination's answer makes
`acknowledged` or `refused` (`on_delivered` / `on_dead`, hooks of the outbox worker).

A correction asks again only when no follow-up was requested yet and its conduct now calls
for one: a visit already asked for is not asked twice.
"""

from __future__ import annotations

import json

from ..domain.model import Case, Report
from ..hl7.errors import DeliveryError
from ..hl7.follow_up import build_follow_up
from ..reports.conducts import Conduct
from ..store.outbox import Item
from ..store.uow import UnitOfWork
from .outbound import enqueue_hl7


def request(uow: UnitOfWork, case: Case, report: Report, conduct: Conduct, *,
            version: int) -> list[str]:
    """Queue the follow-up for each scheduling destination; returns the MSH-10s queued."""
    config = uow.services.config
    dests = config.destinations_for("scheduling")
    if not conduct.follow_up or not dests or uow.follow_ups.of_case(case.accession):
        return []
    lang = config.reports.language
    sent = []
    for dest in dests:
        control_id = f"FU{case.accession}V{version}"
        message = build_follow_up(
            control_id=control_id, now=uow.moment.hl7, message_type=dest.follow_up_message,
            urgency=conduct.follow_up, case_accession=case.accession, order=case.order,
            specialist=report.specialist, conduct=(conduct.code, conduct.label(lang)),
            text=report.text, namespace=config.facility.name,
            sending=(config.facility.name, config.facility.id), receiving=(dest.name, ""))
        enqueue_hl7(uow, destination=dest.name, control_id=control_id, message=message,
                    accession=case.accession)
        uow.follow_ups.insert(accession=case.accession, version=version, destination=dest.name,
                              control_id=control_id, message_type=dest.follow_up_message,
                              urgency=conduct.follow_up, now=uow.moment.iso)
        sent.append(control_id)
    uow.audit.append(at=uow.moment.iso, actor="connector", action="follow_up.requested",
                     accession=case.accession,
                     detail={"version": version, "urgency": conduct.follow_up,
                             "destinations": [d.name for d in dests]})
    return sent


def on_delivered(uow: UnitOfWork, item: Item) -> str:
    """The scheduling system accepted the request (AA/CA): acknowledged. Any other message
    delivered is not a follow-up and changes nothing."""
    return uow.follow_ups.mark(item.destination, _control_id(item), "acknowledged",
                               now=uow.moment.iso)


def on_dead(uow: UnitOfWork, item: Item, error: BaseException) -> str:
    """The scheduling system refused it (AE/AR, not retryable): refused, with its codes."""
    if not (isinstance(error, DeliveryError) and error.ack is not None and not error.retryable):
        return ""  # never answered: still requested, an operator re-queues it
    return uow.follow_ups.mark(item.destination, _control_id(item), "refused",
                               now=uow.moment.iso, reason=f"refused: {error.text}")


def _control_id(item: Item) -> str:
    return json.loads(item.payload)["control_id"]
