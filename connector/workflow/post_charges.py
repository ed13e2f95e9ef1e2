"""Step 6: an act's lines reach the accounting feed, in the caller's unit of work.

- `handle`: a final tele-expertise report bills what the rules allow (requis and requérant).
- `charge_act`: any act (also a teleconsultation reported as done, `record_teleconsultation`):
  `engine.evaluate`, then the new charges are recorded (status `sent`) with one batch, and the
  lines the rules refuse are recorded as `not_billable` with the rule's reason, never sent.
- `credit_case`: a withdrawn report or a cancelled act credits (CD) exactly the charges that
  were booked (sent or acknowledged) and not credited yet.

A batch is one DFT^P03 for each MLLP accounting destination and one CSV file (`CSV_KIND`) for
each `transport = "file"` accounting destination, all with the same MSH-10 `DFT<accession>N<n>`.
Exactly once: FT1-2 ids are stable (`engine.pending` drops what is already recorded, the
`charges.transaction_id` column is unique) and outbox keys are unique per destination and batch.

Where the act's facts come from:
- requester site: the order's sending facility (MSH-4.1), else its sending application
  (MSH-3.1); specialist site: `[facility] id` of the config (the connector's own site). Both are
  compared by the `same_site` exclusion.
- patient hospitalised: PV1-2 of the order (`Order.patient_hospitalised`).
- facility codes: `mappings/billing/facilities.toml`, facility `[facility] id` (else its default).
- prior acts for yearly limits: the same patient's other cases with a charge booked and not
  credited (`prior_acts`); a case whose lines were all refused by the rules did not use quota.
- level: tele-expertise before 2022-04-01 is billed as level 2 (TE2): nothing in an order tells
  a level-1 "simple question" apart.
- billing round: 0 for a case's first final report, 1, 2... for a new final report after a
  withdrawal (the credited charges keep their ids, the new ones get new ids).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

from ..billing.csvfeed import render_csv
from ..billing.engine import (Act, PriorAct, credits_for, evaluate, labels_for, not_billable_id,
                              pending)
from ..billing.facilities import Facility
from ..billing.teleexpertise import credit_id
from ..domain.model import ActKind, Case, Charge, Order, PersonName, Practitioner
from ..hl7.dft import build_dft
from ..store import charges as lines
from ..store.uow import UnitOfWork
from .outbound import enqueue_hl7

CSV_KIND = "billing.csv"
BOOKED = ("sent", "acknowledged")


def handle(uow: UnitOfWork, case: Case, specialist: Practitioner, *, act_date: str) -> str | None:
    """Bill the final report of a tele-expertise answered by `specialist` on `act_date`.

    Returns the batch's MSH-10, or None when nothing new is billable (replay, all lines
    refused by the rules) or no accounting destination is configured (the lines are still
    recorded for reconciliation)."""
    day = _day(act_date)
    rules = uow.services.mappings.rules
    act = Act(kind=ActKind.TELEEXPERTISE.value, date=day, patient=case.order.patient.id,
              requester=case.order.requester, specialist=specialist,
              requester_site=requester_site(case.order),
              specialist_site=uow.services.config.facility.id,
              patient_hospitalised=case.order.patient_hospitalised,
              level=2 if rules.needs_level(ActKind.TELEEXPERTISE.value, day) else None,
              prior_acts=prior_acts(uow, case.accession), accession=case.accession,
              billing_round=_report_round(uow, case.accession))
    return charge_act(uow, case, act)


def charge_act(uow: UnitOfWork, case: Case, act: Act) -> str | None:
    """Evaluate `act`, record its new lines and queue one batch of its new charges."""
    services = uow.services
    result = evaluate(act, tariffs=services.mappings.tariffs, rules=services.mappings.rules)
    facility = services.mappings.facilities.get(services.config.facility.id)
    line = lines.Line(accession=case.accession, kind=act.kind, patient_id=act.patient,
                      facility=facility.id, level=act.level, billing_round=act.billing_round)
    known = uow.charges.recorded_ids(case.accession)
    new = pending(result.charges, known)
    control_id = _batch(uow, case, facility, [(c, line, None) for c in new]) if new else None
    for refused in result.not_billable:
        key = not_billable_id(case.accession, refused, act.billing_round)
        if key in known:
            continue
        doctor = act.requester if refused.role == "requerant" else act.specialist
        uow.charges.record_not_billable(
            line, transaction_id=key, code=refused.code, role=refused.role,
            reason=refused.reason, act_date=act.act_date, performed_by=doctor.id,
            performed_by_name=doctor.name.hl7(), ordered_by=act.requester.id,
            now=uow.moment.iso)
    return control_id


def credit_case(uow: UnitOfWork, case: Case, *, reason: str) -> str | None:
    """Credit every charge of the case that was booked (sent or acknowledged) and not credited
    yet: one CD per CG, same code, role, amount, date and doctors. Refused charges were never
    booked and are not credited. Returns the batch's MSH-10 (the last one when the charges
    were billed for several facilities), or None when there is nothing to credit."""
    rows = [r for r in uow.charges.of_case(case.accession)
            if r.type == "CD" or (r.type == "CG" and r.status in BOOKED)]
    originals = {credit_id(r.transaction_id): r for r in rows if r.type == "CG"}
    by_facility: dict[str, list] = defaultdict(list)
    for credit in credits_for([_charge_of(uow, case, r) for r in rows]):
        original = originals[credit.transaction_id]
        by_facility[original.facility].append((credit, _line_of(original),
                                               original.transaction_id))
    control_id = None
    for facility_id, entries in by_facility.items():
        facility = uow.services.mappings.facilities.get(facility_id)
        control_id = _batch(uow, case, facility, entries, reason=reason)
    return control_id


def requester_site(order: Order) -> str:
    """The requesting site: MSH-4.1 (sending facility) of the order, else MSH-3.1."""
    application, _, facility = order.sender.partition("|")
    return facility.strip() or application.strip()


def prior_acts(uow: UnitOfWork, accession: str) -> tuple[PriorAct, ...]:
    """The other acts of the case's patient that still stand: for each case and billing round,
    one act when a charge of it was booked (sent or acknowledged) and not credited."""
    rows = uow.charges.of_patient(accession)
    credited = {r.credit_of for r in rows if r.type == "CD"}
    rounds: dict[tuple[str, int], list] = defaultdict(list)
    for row in rows:
        rounds[(row.accession, row.billing_round)].append(row)
    acts = []
    for (other, _), group in rounds.items():
        booked = [r for r in group if r.type == "CG" and r.status in BOOKED
                  and r.transaction_id not in credited]
        if not booked:
            continue
        first = booked[0]
        specialist = next((r.performed_by for r in group if r.role in ("requis", "doctor")),
                          first.performed_by)
        acts.append(PriorAct(kind=first.kind, date=_day(first.act_date),
                             requester=first.ordered_by or first.performed_by,
                             specialist=specialist, level=first.level, accession=other))
    return tuple(acts)


# --- batches ------------------------------------------------------------------------------

def _batch(uow: UnitOfWork, case: Case, facility: Facility,
           entries: list[tuple[Charge, lines.Line, str | None]], *, reason: str = "") -> str | None:
    """Record the lines of one batch and queue it to every accounting destination."""
    services, now, hl7_now = uow.services, uow.moment.iso, uow.moment.hl7
    control_id = f"DFT{case.accession}N{uow.charges.next_batch(case.accession)}"
    batch = [charge for charge, _, _ in entries]
    labels = labels_for(batch, services.mappings.tariffs)
    for charge, line, credit_of in entries:
        uow.charges.record_charge(line, charge, control_id=control_id, now=now,
                                  credit_of=credit_of, reason=reason)
    destinations = services.config.destinations_for("accounting")
    for dest in destinations:
        if dest.transport == "file":
            text = render_csv(control_id=control_id, now=hl7_now, order=case.order,
                              accession=case.accession, charges=batch, facility=facility,
                              labels=labels)
            uow.outbox.enqueue(kind=CSV_KIND, destination=dest.name,
                               key=f"{CSV_KIND}:{dest.name}:{control_id}",
                               payload=json.dumps({"control_id": control_id,
                                                   "text": text}).encode(),
                               accession=case.accession, now=now)
            continue
        message = build_dft(control_id=control_id, now=hl7_now, order=case.order,
                            accession=case.accession, charges=batch, labels=labels,
                            facility=facility,
                            sending=(services.config.facility.name, services.config.facility.id),
                            receiving=(dest.name.upper(), ""))
        enqueue_hl7(uow, destination=dest.name, control_id=control_id, message=message,
                    accession=case.accession)
    return control_id if destinations else None


def _report_round(uow: UnitOfWork, accession: str) -> int:
    """0 for the first final report of the case, 1 for the next one (after a withdrawal)..."""
    return max(uow.reports.finals(accession) - 1, 0)


def _line_of(row) -> lines.Line:
    return lines.Line(accession=row.accession, kind=row.kind, patient_id=row.patient_id,
                      facility=row.facility, level=row.level, billing_round=row.billing_round)


def _charge_of(uow: UnitOfWork, case: Case, row) -> Charge:
    """A recorded CG/CD row as the Charge it was sent as (doctors with their names)."""
    requester = case.order.requester
    if row.performed_by == requester.id:  # the requérant's act: the requester as ordered
        performer = requester
    elif row.performed_by_name:
        performer = Practitioner(row.performed_by, PersonName.parse(row.performed_by_name),
                                 row.performed_by_authority, id_type=row.performed_by_id_type)
    else:  # rows written before migration 0003 kept no name: the specialist of a report
        found = uow.reports.specialist_name(case.accession, row.performed_by)
        performer = Practitioner(row.performed_by,
                                 PersonName(*found) if found else PersonName(row.performed_by))
    ordered_by = requester if row.ordered_by in ("", requester.id) else Practitioner(
        row.ordered_by, PersonName(row.ordered_by))
    return Charge(transaction_id=row.transaction_id, code=row.code, role=row.role,
                  amount_cents=row.amount_cents, type=row.type, act_date=row.act_date,
                  performed_by=performer, ordered_by=ordered_by)


def _day(yyyymmdd: str) -> dt.date:
    return dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
