"""The follow-ups asked of the scheduling systems: recorded requested, marked by the answer of
the destination they went to, counted per status and urgency over a period."""

from __future__ import annotations

import pytest

from connector.store import follow_ups
from connector.store.db import migrate


@pytest.fixture
def conn(engine):
    migrate(engine)
    with engine.begin() as connection:
        yield connection


def _ask(conn, destination: str, *, accession="TD1", urgency="urgent",
         now="2026-12-01T10:00:00.000000Z"):
    follow_ups.insert(conn, accession=accession, version=1, destination=destination,
                      control_id=f"FU{accession}V1", message_type="SIU^S12", urgency=urgency,
                      now=now)


def test_the_answer_marks_the_follow_up_of_its_destination_only(conn):
    _ask(conn, "rdv")
    _ask(conn, "agenda")
    assert follow_ups.mark(conn, "rdv", "FUTD1V1", "acknowledged", now="t") == "TD1"
    assert follow_ups.mark(conn, "agenda", "FUTD1V1", "refused", now="t",
                           reason="refused: 103") == "TD1"
    got = {f["destination"]: (f["status"], f["reason"]) for f in follow_ups.of_case(conn, "TD1")}
    assert got == {"rdv": ("acknowledged", ""), "agenda": ("refused", "refused: 103")}


def test_an_answer_to_another_message_changes_nothing(conn):
    _ask(conn, "rdv")
    assert follow_ups.mark(conn, "rdv", "ORUTD1V1", "acknowledged", now="t") == ""
    assert follow_ups.mark(conn, "ehr", "FUTD1V1", "acknowledged", now="t") == ""
    assert [f["status"] for f in follow_ups.of_case(conn, "TD1")] == ["requested"]
    with pytest.raises(ValueError):
        follow_ups.mark(conn, "rdv", "FUTD1V1", "booked", now="t")


def test_counts_per_status_and_urgency_within_the_period(conn):
    _ask(conn, "rdv", accession="TD1")
    _ask(conn, "rdv", accession="TD2", urgency="routine")
    _ask(conn, "rdv", accession="TD3", now="2026-11-30T23:59:59.000000Z")  # before the period
    follow_ups.mark(conn, "rdv", "FUTD1V1", "acknowledged", now="t")
    got = follow_ups.counts(conn, start="2026-12-01T00:00:00.000000Z",
                            end="2026-12-02T00:00:00.000000Z")
    assert got == {"total": 2, "by_status": {"requested": 1, "acknowledged": 1, "refused": 0},
                   "by_urgency": {"routine": 1, "urgent": 1}}
