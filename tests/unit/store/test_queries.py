"""Read models: list_cases filters, case_detail, stats."""

import dataclasses

import pytest

from connector.domain.model import PersonName, Practitioner, Priority
from connector.domain.states import CaseEvent
from connector.store import cases, outbox, queries
from connector.store.schema import charges, images, reports
from tests.support.store_samples import at, make_order, open_case, stamp


def three_cases(engine):
    """TD00000001 routine OPEN (IPP1), TD00000002 urgent IMAGES_PENDING (IPP2), TD00000003 stat OPEN (IPP1)."""
    with engine.begin() as conn:
        a = open_case(conn, make_order("P-1", patient_id="IPP1"), now=stamp(0))
        b = open_case(conn, make_order("P-2", patient_id="IPP2", family="DURAND", given="",
                                       priority=Priority.URGENT), now=stamp(1))
        c = open_case(conn, make_order("P-3", patient_id="IPP1", priority=Priority.STAT), now=stamp(2))
        b.apply(CaseEvent.IMAGE_RECEIVED)
        cases.save_status(conn, b, stamp(3))
    return a.accession, b.accession, c.accession


def accessions(rows):
    return [r["accession"] for r in rows]


def add_image(conn, accession, sop_uid, archived_at=None):
    conn.execute(images.insert().values(
        accession=accession, sop_uid=sop_uid, series_uid="1.2.9", sop_class_uid="1.2.840.10008.5.1.4.1.1.77.1.4",
        kind="dermoscopy", source_sha256="a" * 64, path=f"/spool/{sop_uid}.dcm", site_code="123961009",
        laterality="L", created_at=stamp(), archived_at=archived_at))


def test_list_cases_returns_newest_first_when_no_filter_is_given(engine):
    a, b, c = three_cases(engine)
    with engine.connect() as conn:
        assert accessions(queries.list_cases(conn).items) == [c, b, a]


def test_list_cases_keeps_only_matching_status_when_status_is_given(engine):
    _, b, _ = three_cases(engine)
    with engine.connect() as conn:
        assert accessions(queries.list_cases(conn, status="IMAGES_PENDING").items) == [b]
        assert queries.list_cases(conn, status="CLOSED").items == []


def test_list_cases_keeps_only_matching_priority_when_priority_is_given(engine):
    _, _, c = three_cases(engine)
    with engine.connect() as conn:
        assert accessions(queries.list_cases(conn, priority="stat").items) == [c]


def test_list_cases_finds_one_case_when_placer_number_is_given(engine):
    a, _, _ = three_cases(engine)
    with engine.connect() as conn:
        assert accessions(queries.list_cases(conn, placer_order_number="P-1").items) == [a]


def test_list_cases_finds_the_patient_by_any_of_their_identifiers(engine):
    order = make_order("P-OTHER", patient_id="IPP9")
    patient = dataclasses.replace(order.patient, other_ids=(("LAB-9", "LAB"),))
    with engine.begin() as conn:
        case = open_case(conn, dataclasses.replace(order, patient=patient))
    with engine.connect() as conn:
        for identifier in ("IPP9", "LAB-9"):
            assert accessions(queries.list_cases(conn, patient_id=identifier).items) == [
                case.accession]


def test_list_cases_keeps_the_patients_cases_when_patient_id_is_given(engine):
    a, _, c = three_cases(engine)
    with engine.connect() as conn:
        assert accessions(queries.list_cases(conn, patient_id="IPP1").items) == [c, a]
        assert accessions(queries.list_cases(conn, patient_id="IPP1", status="OPEN",
                                             priority="routine").items) == [a]


def test_list_cases_stops_at_the_limit_when_more_cases_match(engine):
    _, b, c = three_cases(engine)
    with engine.connect() as conn:
        assert accessions(queries.list_cases(conn, limit=2).items) == [c, b]


def test_list_cases_renders_patient_and_requester_when_case_is_listed(engine):
    _, b, _ = three_cases(engine)
    with engine.connect() as conn:
        [row] = queries.list_cases(conn, placer_order_number="P-2").items
    assert row["accession"] == b and row["status"] == "IMAGES_PENDING" and row["priority"] == "urgent"
    assert row["patient"] == {"id": "IPP2", "issuer": "CHU_NIMES", "name": "DURAND",
                              "birth_date": "19720314", "sex": "F"}
    assert row["requester"] == {"id": "801234567897", "name": "MARTIN^François"}
    assert (row["created_at"], row["updated_at"]) == (stamp(1), stamp(3))


def test_case_detail_is_none_when_accession_is_unknown(engine):
    with engine.connect() as conn:
        assert queries.case_detail(conn, "TD99999999") is None


def test_case_detail_has_empty_lists_when_case_was_just_opened(engine):
    a, _, _ = three_cases(engine)
    with engine.connect() as conn:
        detail = queries.case_detail(conn, a)
    assert detail["patient"]["name"] == "LEFÈVRE^Hélène"
    assert detail["question"] == "Lésion pigmentée du dos, évolution récente"
    assert (detail["images"], detail["reports"], detail["charges"], detail["outbox"]) == ([], [], [], [])


def test_case_detail_lists_only_this_cases_images_reports_charges_and_outbox_when_present(engine):
    a, b, _ = three_cases(engine)
    with engine.begin() as conn:
        add_image(conn, b, "1.2.9.1", archived_at=stamp(5))
        add_image(conn, b, "1.2.9.2")
        add_image(conn, a, "1.2.9.3")
        conn.execute(reports.insert().values(
            accession=b, version=1, status="F", text="Naevus bénin.", conduct="no_visit",
            specialist_id="810001234567", specialist_family="BLANC", signed_at="20261116101500",
            digest="d" * 64, sop_uid="1.2.9.10", pdf=b"%PDF-1.4"))
        conn.execute(charges.insert().values(
            accession=b, transaction_id=f"{b}-TE2", code="TE2", role="requis", type="CG",
            amount_cents=2050, act_date="20261116", performed_by="810001234567",
            message_control_id="DFT1", created_at=stamp()))
        outbox.enqueue(conn, kind="hl7.send", destination="ehr", key=f"hl7:ehr:ORU{b}V1",
                       payload=b"{}", accession=b, now=stamp())
        outbox.enqueue(conn, kind="hl7.send", destination="ehr", key=f"hl7:ehr:ORU{a}V1",
                       payload=b"{}", accession=a, now=stamp())
    with engine.connect() as conn:
        detail = queries.case_detail(conn, b)
    assert detail["images"] == [
        {"sop_instance_uid": "1.2.9.1", "kind": "dermoscopy", "site": "123961009", "laterality": "L",
         "archived": True, "quality": []},
        {"sop_instance_uid": "1.2.9.2", "kind": "dermoscopy", "site": "123961009", "laterality": "L",
         "archived": False, "quality": []}]
    assert detail["reports"] == [{"version": 1, "status": "F", "conduct": "no_visit",
                                  "signed_at": "20261116101500", "specialist": "810001234567",
                                  "digest": "d" * 64}]
    assert detail["charges"] == [{"transaction_id": f"{b}-TE2", "code": "TE2", "role": "requis",
                                  "type": "CG", "amount": "20.50", "act_date": "20261116",
                                  "status": "sent", "reason": "", "message_control_id": "DFT1"}]
    assert detail["outbox"] == [{"kind": "hl7.send", "destination": "ehr", "status": "pending",
                                 "attempts": 0, "last_error": ""}]


def test_stats_are_zero_when_store_is_empty(engine):
    with engine.connect() as conn:
        assert queries.stats(conn) == {
            "cases": {"total": 0, "by_status": {}}, "images": 0, "reports": 0, "charges": 0,
            "outbox": {"pending": 0, "done": 0, "dead": 0, "oldest_pending": None},
            "deadlines": {p: {"answered": 0, "in_time": 0, "share_in_time": None}
                          for p in ("stat", "urgent", "routine")}}


def test_stats_count_cases_images_and_queue_when_store_has_content(engine):
    a, b, _ = three_cases(engine)
    with engine.begin() as conn:
        add_image(conn, b, "1.2.9.1")
        add_image(conn, b, "1.2.9.2")
        for n, seconds in enumerate((30, 10, 20)):
            outbox.enqueue(conn, kind="archive.store", destination=f"d{n}", key=f"k{n}",
                           payload=b"x", accession=a, now=stamp(seconds))
        outbox.complete(conn, 2, at(40))
    with engine.connect() as conn:
        got = queries.stats(conn)
    assert got["cases"] == {"total": 3, "by_status": {"OPEN": 2, "IMAGES_PENDING": 1}}
    assert (got["images"], got["reports"], got["charges"]) == (2, 0, 0)
    assert got["outbox"] == {"pending": 2, "done": 1, "dead": 0, "oldest_pending": stamp(20)}


def test_requester_name_has_no_trailing_separator_when_given_name_is_empty(engine):
    order = make_order("P-9")
    order = dataclasses.replace(order, requester=Practitioner("801234567897", PersonName("MARTIN")))
    with engine.begin() as conn:
        case = open_case(conn, order)
    with engine.connect() as conn:
        assert queries.case_detail(conn, case.accession)["requester"]["name"] == "MARTIN"
