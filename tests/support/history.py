"""A generated history of tele-expertise cases with known answers, built through the real
intake and workflow steps on a controlled clock, for the statistics and the dashboard.

`PLAN` says what happens to each case (when it opens, its priority and requesting service,
whether it is declined, left waiting or answered, after how many hours, with which conduct and
by whom); `build_history` plays it into a store; the figures expected are computed from the
plan, not from the store."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from connector.domain.model import PersonName, Practitioner
from connector.entrypoints import hl7_intake
from connector.store import cases
from connector.workflow import record_report, refuse_order
from connector.workflow.commands import DeclineCase, RecordReport
from tests.support.inbound import order
from tests.support.services import archive_holds

START = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)  # a Monday: ISO week 2026-W02
CASES = 240
SPECIALISTS = (Practitioner("810001234567", PersonName("LEROY", "Claire")),
               Practitioner("810009876543", PersonName("BLANC", "Paul")))
HOURS = (2, 6, 12, 20, 30, 40, 60, 90)
CONDUCTS = ("no_visit", "no_visit", "treatment", "routine_visit", "urgent_visit", "no_visit",
            "biopsy")
SERVICES = ("DPI_HOPITAL", "DPI_EHPAD", "DPI_URGENCES")


@dataclass(frozen=True)
class Planned:
    n: int
    opened: dt.datetime
    priority: str  # as the case stores it
    service: str  # MSH-3 of the order
    outcome: str  # answered | declined | waiting
    hours: int = 0
    conduct: str = ""
    specialist: Practitioner | None = None
    reason: str = ""


def _plan(n: int) -> Planned:
    opened = START + dt.timedelta(hours=2 * n)
    priority = "stat" if n % 4 == 0 else "routine"
    service = SERVICES[n % 3]
    if n % 10 == 9:
        return Planned(n, opened, priority, service, "declined", hours=3,
                       specialist=SPECIALISTS[n % 2],
                       reason="hors du champ de la télé-expertise" if n % 20 == 9
                       else "photos inexploitables")
    if n % 10 == 8:
        return Planned(n, opened, priority, service, "waiting")
    return Planned(n, opened, priority, service, "answered", hours=HOURS[n % 8],
                   conduct=CONDUCTS[n % 7], specialist=SPECIALISTS[n % 2])


PLAN = tuple(_plan(n) for n in range(CASES))


def build_history(services) -> dict[int, str]:
    """Play `PLAN` into the store of `services` (whose clock it sets); returns each planned
    case's accession."""
    now = [START]
    services.clock = lambda: now[0]
    accessions = {}
    for p in PLAN:
        now[0] = p.opened
        raw = order(f"PL-H{p.n}", priority="S" if p.priority == "stat" else "R",
                    control_id=f"H{p.n}").replace(b"MSH|^~\\&|DPI_HOPITAL|",
                                                  f"MSH|^~\\&|{p.service}|".encode())
        assert b"MSA|AA" in hl7_intake.handle(services, raw, "history")
        with services.store.engine.connect() as conn:
            accession = cases.find_by_placer(conn, f"{p.service}|CHU_DEMO", f"PL-H{p.n}")
        accessions[p.n] = accession
        if p.outcome == "waiting":
            continue
        now[0] = p.opened + dt.timedelta(hours=p.hours)
        if p.outcome == "declined":
            with services.unit() as uow:
                refuse_order.decline(DeclineCase(accession, p.reason, "test", p.specialist), uow)
            continue
        archive_holds(services, accession)
        with services.unit() as uow:
            record_report.handle(RecordReport(accession, "Avis.", p.conduct, p.specialist,
                                              "test"), uow)
    return accessions
