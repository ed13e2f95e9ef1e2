"""Migration 0004 and what it stores: the patient's French identity, the requester's RPPS, the
facility, the questionnaire answers, the consent and the triage; the case detail shows them and
the case list sorts on triage."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text

from connector.domain.model import (Answer, Case, Consent, Facility, Order, Patient, PersonName,
                                    Practitioner, Priority, Triage, TriagePolicy)
from connector.domain.errors import DomainError
from connector.store import cases, queries, schema
from connector.store.db import migrate
from connector.store.migrations import MIGRATIONS
from tests.support.store_samples import make_order, open_case, stamp

TRIAGE = TriagePolicy(((Priority.STAT, 100), (Priority.URGENT, 50), (Priority.ROUTINE, 0)),
                      (("STAT", 100), ("HIGH", 40), ("ROUTINE", 0)))

NIR = "279035121518989"
INS_OID = "1.2.250.1.213.1.4.8"
ULCERATION = Answer("red_flags", ("ULCERATION", "BORDER"), weight=30,
                    red_flags=("ULCERATION", "BORDER"), label=("Signes d'alerte", "Red flags"),
                    value_labels=(("ULCERATION", "Ulcération", "Ulceration"),
                                  ("BORDER", "Bords irréguliers", "Irregular border")))
PHOTOTYPE = Answer("phototype", ("II",), weight=2, label=("Phototype", "Phototype"),
                   value_labels=(("II", "II", "II"),))


def full_order(placer="CMD-FULL", *, qualified=True, answers=(ULCERATION, PHOTOTYPE),
               priority=Priority.ROUTINE) -> Order:
    if qualified:
        patient = Patient(NIR, PersonName("CŒUR", "Zoë"), INS_OID, "19720314", "F", ins=NIR,
                          ins_oid=INS_OID, identity_status="QUAL", identity_flags=("IDVER",),
                          other_ids=(("IPP0012345", "CHU_NIMES"),))
    else:
        patient = Patient("IPP0012345", PersonName("CŒUR", "Zoë"), "CHU_NIMES", ins=NIR,
                          ins_oid=INS_OID, identity_status="VALI")
    return Order(
        "DPI_CHU|CHU_NIMES", placer, patient,
        Practitioner("801234567897", PersonName("MARTIN", "François"), "1.2.250.1.71.4.2.1",
                     id_type="IDNPS", rpps="01234567897"),
        "Lésion", priority, questionnaire=tuple(answers),
        consent=Consent("OBX", "20261115"), triage=TRIAGE.assess(priority, answers),
        facility=Facility("300780038", "CHU de Nîmes", "FINEG"))


def test_case_keeps_identity_request_consent_and_triage(engine):
    order = full_order()
    with engine.begin() as conn:
        case = open_case(conn, order)
    with engine.connect() as conn:
        back = cases.load(conn, case.accession)
    assert back.order == order
    assert back.order.triage == Triage(32, "ROUTINE", ("red_flags:ULCERATION", "red_flags:BORDER"))


def test_case_without_a_request_loads_as_before(engine):
    with engine.begin() as conn:
        case = open_case(conn, make_order("P-OLD"))
    with engine.connect() as conn:
        back = cases.load(conn, case.accession).order
    assert (back.questionnaire, back.consent, back.triage, back.facility) == ((), None,
                                                                              Triage(), None)
    assert (back.patient.ins, back.requester.rpps) == ("", "")


def test_case_detail_shows_the_request_and_hides_an_unusable_ins(engine):
    with engine.begin() as conn:
        qualified = open_case(conn, full_order("P-Q"))
    with engine.connect() as conn:
        q = queries.case_detail(conn, qualified.accession)
    with engine.begin() as conn:  # the same patient (one record), identity no longer qualified
        provisional = open_case(conn, full_order("P-V", qualified=False))
    with engine.connect() as conn:
        v = queries.case_detail(conn, provisional.accession)
    assert q["patient"]["ins"] == {"value": NIR, "oid": INS_OID, "usable": True}
    assert q["patient"]["other_ids"] == [{"id": "IPP0012345", "issuer": "CHU_NIMES"}]
    assert (q["patient"]["identity_status"], q["patient"]["identity_flags"]) == ("QUAL",
                                                                                 ["IDVER"])
    assert v["patient"]["ins"] == {"value": None, "oid": INS_OID, "usable": False}
    assert v["patient"]["id"] == "IPP0012345"
    assert q["requester"]["rpps"] == "01234567897" and q["requester"]["id_type"] == "IDNPS"
    assert q["facility"] == {"finess": "300780038", "name": "CHU de Nîmes", "kind": "FINEG"}
    assert q["consent"] == {"source": "OBX", "given_at": "20261115"}
    assert q["triage"] == {"level": "ROUTINE", "score": 32,
                           "red_flags": ["red_flags:ULCERATION", "red_flags:BORDER"]}
    first = q["questionnaire"][0]
    assert first["item"] == "red_flags" and first["values"] == ["ULCERATION", "BORDER"]
    assert first["label"] == {"fr": "Signes d'alerte", "en": "Red flags"}
    assert first["answers"][0] == {"code": "ULCERATION",
                                   "label": {"fr": "Ulcération", "en": "Ulceration"}}


def test_case_list_sorts_by_triage_level_score_priority_then_age(engine):
    with engine.begin() as conn:
        untriaged_stat = open_case(conn, make_order("P-1", priority=Priority.STAT),
                                   now=stamp(0))
        routine = open_case(conn, full_order("P-2", answers=()), now=stamp(1))
        medium_old = open_case(conn, full_order("P-3", answers=(ULCERATION,)), now=stamp(2))
        high = open_case(conn, full_order("P-4", priority=Priority.URGENT), now=stamp(3))
        medium_new = open_case(conn, full_order("P-5", answers=(ULCERATION,)), now=stamp(4))
        stat = open_case(conn, full_order("P-6", answers=(), priority=Priority.STAT),
                         now=stamp(5))
    with engine.connect() as conn:
        by_triage = [c["accession"] for c in queries.list_cases(conn, sort="triage").items]
        newest = [c["accession"] for c in queries.list_cases(conn).items]
        listed = queries.list_cases(conn, sort="triage", limit=1).items[0]
    assert by_triage == [stat.accession, high.accession, medium_old.accession,
                         medium_new.accession, routine.accession, untriaged_stat.accession]
    assert newest[0] == stat.accession and newest[-1] == untriaged_stat.accession
    assert listed["triage"] == {"level": "STAT", "score": 100}


def test_migration_0004_adds_the_columns_to_a_database_at_version_3(engine):
    with engine.begin() as conn:
        case = open_case(conn, make_order("P-MIG4"))
        conn.execute(text("DROP INDEX ix_cases_triage"))
        for column in ("ins", "ins_oid", "identity_status", "identity_flags"):
            conn.execute(text(f"ALTER TABLE patients DROP COLUMN {column}"))
        for column in ("requester_id_type", "requester_rpps", "facility_finess",
                       "facility_name", "facility_kind", "questionnaire", "consent",
                       "triage_score", "triage_level"):
            conn.execute(text(f"ALTER TABLE cases DROP COLUMN {column}"))
        conn.execute(text("DELETE FROM schema_version WHERE version > 3"))
    assert migrate(engine) == MIGRATIONS[-1][0]
    assert "ix_cases_triage" in {i["name"] for i in inspect(engine).get_indexes("cases")}
    with engine.connect() as conn:
        row = conn.execute(select(schema.cases.c.questionnaire, schema.cases.c.consent,
                                  schema.cases.c.triage_level)).one()
        assert tuple(row) == ("[]", "", "")
        assert cases.load(conn, case.accession).order.patient.other_ids == ()
    assert 4 in {v for v, _, _ in MIGRATIONS}


def test_patient_record_takes_the_identity_of_the_latest_order(engine):
    first = full_order("P-A", qualified=False)
    with engine.begin() as conn:
        open_case(conn, first)
        later = Case("TD99999999", "1.2.3.4.5", full_order("P-B", qualified=False))
        status_patient = later.order.patient
        cases.insert(conn, later, stamp(9))
    with engine.connect() as conn:
        rows = conn.execute(select(schema.patients)).all()
    assert len(rows) == 1 and rows[0].identity_status == status_patient.identity_status


def _all_pages(engine, sort, limit, between=lambda: None):
    """Every page, each read in its own transaction as an HTTP client would."""
    seen, cursor, totals = [], None, set()
    while True:
        with engine.connect() as conn:
            page = queries.list_cases(conn, sort=sort, limit=limit, cursor=cursor)
        seen += [c["accession"] for c in page.items]
        totals.add(page.total)
        if page.next_cursor is None:
            return seen, totals
        cursor = page.next_cursor
        between()


@pytest.mark.parametrize("sort", ["created", "triage"])
def test_paging_lists_every_case_once_in_the_order_of_one_query(engine, sort):
    with engine.begin() as conn:
        for n in range(23):  # same instants and same triage: only the accession breaks ties
            order = full_order(f"P-{n}", answers=(ULCERATION,) if n % 3 else ())
            open_case(conn, order, now=stamp(n // 4))
    with engine.connect() as conn:
        whole = [c["accession"] for c in queries.list_cases(conn, sort=sort, limit=1000).items]
    paged, totals = _all_pages(engine, sort, limit=5)
    assert paged == whole and len(set(paged)) == 23 and totals == {23}


def test_a_case_opened_while_paging_newest_first_shifts_no_page(engine):
    with engine.begin() as conn:
        first = [open_case(conn, make_order(f"P-{n}"), now=stamp(n)).accession for n in range(9)]
    opened = iter(range(100, 103))

    def open_one():
        with engine.begin() as conn:
            open_case(conn, make_order(f"P-NEW-{next(opened)}"), now=stamp(50))

    paged, _ = _all_pages(engine, "created", limit=4, between=open_one)
    assert paged == list(reversed(first))


def test_a_cursor_from_elsewhere_or_another_sort_is_refused_naming_the_cursor(engine):
    with engine.begin() as conn:
        for n in range(3):
            open_case(conn, make_order(f"P-{n}"), now=stamp(n))
    with engine.connect() as conn:
        cursor = queries.list_cases(conn, limit=1).next_cursor
        for bad, sort in ((cursor, "triage"), ("not-a-cursor", "created"),
                          (queries.encode_cursor("created", [1.5, None]), "created")):
            with pytest.raises(DomainError) as err:
                queries.list_cases(conn, sort=sort, cursor=bad)
            assert err.value.where == "cursor"
