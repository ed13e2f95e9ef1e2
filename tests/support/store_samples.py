"""Builders for store tests: fixed times, an order, a case inserted as the workflow does."""

from __future__ import annotations

import datetime as dt

from connector.domain.model import (
    Case,
    Order,
    Patient,
    PersonName,
    Practitioner,
    Priority,
)
from connector.store import cases
from connector.domain.moment import iso

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(seconds: float = 0) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def stamp(seconds: float = 0) -> str:
    return iso(at(seconds))


def make_order(placer="CMD-2026-0042", *, sender="DPI_CHU|CHU_NIMES", patient_id="IPP0012345",
               family="LEFÈVRE", given="Hélène", birth_date="19720314", sex="F",
               priority=Priority.ROUTINE, question="Lésion pigmentée du dos, évolution récente") -> Order:
    return Order(
        sender=sender, placer_order_number=placer,
        patient=Patient(patient_id, PersonName(family, given), "CHU_NIMES", birth_date, sex),
        requester=Practitioner("801234567897", PersonName("MARTIN", "François"), "1.2.250.1.71.4.2.1"),
        question=question, priority=priority, ordered_at="20261115092500")


def open_case(conn, order: Order | None = None, *, now: str | None = None) -> Case:
    """Allocate an accession and insert a case the way the workflow does."""
    accession = cases.next_accession(conn)
    case = Case(accession, f"1.2.826.0.1.3680043.10.1.{accession[2:].lstrip('0')}", order or make_order())
    cases.insert(conn, case, now or stamp())
    return case

# The audit key of the store tests' engines (a site's comes from connector/bootstrap.py).
TEST_AUDIT_KEY = b"store-tests-audit-key"
