"""Charge lines in the store: recording, batches, statuses, the other acts of a patient; and
what the feed's answer does to them (`workflow.charges_delivered`)."""

import json

import pytest

from connector.domain.model import Charge, PersonName, Practitioner
from connector.hl7.ack import AckResult
from connector.hl7.errors import DeliveryError
from connector.store import charges as lines
from connector.store.outbox import Item
from connector.store.uow import UnitOfWork
from connector.workflow import charges_delivered
from tests.support.store_samples import make_order, open_case, stamp

SPEC = Practitioner("810001234567", PersonName("LEROY", "Claire"), "1.2.250.1.71.4.2.1")
REQ = Practitioner("801234567897", PersonName("MARTIN", "Jean"))


def charge(tid: str, code: str = "TE2", type_: str = "CG") -> Charge:
    return Charge(tid, code, "requis", 2300, type_, "20261116", SPEC, REQ)


def record(conn, accession, tid, control_id, **kwargs):
    line = lines.Line(accession=accession, kind="teleexpertise", patient_id="IPP0012345",
                      facility="TELEDERM")
    lines.record_charge(conn, line, charge(tid, **kwargs), control_id=control_id, now=stamp())


def item(control_id: str) -> Item:
    return Item(1, "hl7.send", "accounting", f"hl7:accounting:{control_id}", "TD00000001",
                json.dumps({"control_id": control_id, "message": "MSH|..."}).encode(), 0)


@pytest.fixture
def case(engine):
    with engine.begin() as conn:
        return open_case(conn).accession


def test_a_charge_keeps_who_performed_it_with_name_and_authority(engine, case):
    with engine.begin() as conn:
        record(conn, case, "AAAAAAAAAAAA", "DFT1")
        (row,) = lines.of_case(conn, case)
    assert (row.performed_by, row.performed_by_name, row.performed_by_authority, row.status,
            row.message_control_id) == ("810001234567", "LEROY^Claire", "1.2.250.1.71.4.2.1",
                                        "sent", "DFT1")


def test_batches_are_numbered_per_case_and_not_billable_lines_are_not_a_batch(engine, case):
    with engine.begin() as conn:
        assert lines.next_batch(conn, case) == 1
        record(conn, case, "AAAAAAAAAAAA", "DFT1")
        record(conn, case, "BBBBBBBBBBBB", "DFT1", code="RQD")
        lines.record_not_billable(
            conn, lines.Line(case, "teleexpertise", "IPP0012345", "TELEDERM"),
            transaction_id="NNNNNNNNNNNN", code="TE2", role="requis", reason="limit",
            act_date="20261116", performed_by=SPEC.id, performed_by_name="LEROY^Claire",
            ordered_by=REQ.id, now=stamp())
        assert lines.next_batch(conn, case) == 2
        assert lines.recorded_ids(conn, case) == {"AAAAAAAAAAAA", "BBBBBBBBBBBB", "NNNNNNNNNNNN"}


def test_an_acknowledged_batch_marks_only_its_own_charge_lines(engine, case):
    with engine.begin() as conn:
        record(conn, case, "AAAAAAAAAAAA", "DFT1")
        record(conn, case, "BBBBBBBBBBBB", "DFT2")
        uow = UnitOfWork(conn, None)
        assert charges_delivered.on_delivered(uow, item("DFT1")) == 1
        assert charges_delivered.on_delivered(uow, item("ORU1")) == 0  # no charge lines
        assert [r.status for r in lines.of_case(conn, case)] == ["acknowledged", "sent"]


def test_a_batch_refused_with_ae_is_refused_and_an_unanswered_one_stays_sent(engine, case):
    ae = DeliveryError("peer answered AE (ERR 103 at FT1^1^7)", retryable=False,
                       ack=AckResult("AE", "DFT1"))
    timeout = DeliveryError("no ACK within 30 s", retryable=True)
    with engine.begin() as conn:
        record(conn, case, "AAAAAAAAAAAA", "DFT1")
        record(conn, case, "BBBBBBBBBBBB", "DFT2")
        uow = UnitOfWork(conn, None)
        assert charges_delivered.on_dead(uow, item("DFT2"), timeout) == 0
        assert charges_delivered.on_dead(uow, item("DFT1"), ae) == 1
        rows = lines.of_case(conn, case)
    assert [(r.status, r.reason) for r in rows] == [
        ("refused", "feed refused it: peer answered AE (ERR 103 at FT1^1^7)"), ("sent", "")]


def test_other_cases_of_the_same_patient_are_found_and_no_one_elses(engine, case):
    with engine.begin() as conn:
        mine = open_case(conn, make_order("P-2")).accession  # same patient, other order
        other = open_case(conn, make_order("P-3", patient_id="IPP-OTHER")).accession
        record(conn, mine, "AAAAAAAAAAAA", "DFT1")
        record(conn, other, "BBBBBBBBBBBB", "DFT1")
        record(conn, case, "CCCCCCCCCCCC", "DFT1")
        assert [r.accession for r in lines.of_patient(conn, case)] == [mine]


def test_marking_an_unknown_status_is_a_programming_error(engine, case):
    with engine.begin() as conn, pytest.raises(ValueError):
        lines.mark(conn, "DFT1", "paid")
