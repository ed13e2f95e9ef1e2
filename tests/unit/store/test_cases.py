"""Case persistence: accession sequence, round trip, lookups, patient upsert."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from connector.domain.errors import NotFound
from connector.domain.model import Case, Priority
from connector.domain.states import CaseEvent, CaseStatus
from connector.store import cases
from connector.store.schema import patients
from tests.support.store_samples import make_order, open_case, stamp


def test_next_accession_starts_at_one_and_counts_up_when_called_repeatedly(engine):
    with engine.begin() as conn:
        got = [cases.next_accession(conn) for _ in range(3)]
    assert got == ["TD00000001", "TD00000002", "TD00000003"]


def test_next_accession_continues_the_sequence_when_called_in_a_later_transaction(engine):
    with engine.begin() as conn:
        cases.next_accession(conn)
    with engine.begin() as conn:
        assert cases.next_accession(conn, prefix="XY") == "XY00000002"


def test_next_accession_is_not_consumed_when_its_transaction_rolls_back(engine):
    with engine.connect() as conn, conn.begin() as tx:
        cases.next_accession(conn)
        tx.rollback()
    with engine.begin() as conn:
        assert cases.next_accession(conn) == "TD00000001"


def test_case_round_trips_with_french_accents_when_inserted_then_loaded(engine):
    order = make_order(family="LEFÈVRE-ÇÉLINE", given="Hélène", priority=Priority.URGENT,
                       question="Lésion pigmentée du dos\nAntécédent de mélanome chez la mère.")
    with engine.begin() as conn:
        case = open_case(conn, order)
    with engine.connect() as conn:
        loaded = cases.load(conn, case.accession)
    assert loaded.accession == case.accession and loaded.study_uid == case.study_uid
    assert loaded.status is CaseStatus.OPEN
    assert loaded.order == order
    assert loaded.order.patient.name.family == "LEFÈVRE-ÇÉLINE"
    assert loaded.order.priority is Priority.URGENT


def test_load_raises_not_found_when_accession_is_unknown(engine):
    with engine.connect() as conn, pytest.raises(NotFound) as exc:
        cases.load(conn, "TD99999999")
    assert exc.value.http_status == 404 and exc.value.where == "accession"


def test_find_by_placer_gives_the_accession_when_sender_and_number_match(engine):
    with engine.begin() as conn:
        first = open_case(conn, make_order("P-1"))
        second = open_case(conn, make_order("P-2"))
    with engine.connect() as conn:
        assert cases.find_by_placer(conn, "DPI_CHU|CHU_NIMES", "P-2") == second.accession
        assert cases.find_by_placer(conn, "DPI_CHU|CHU_NIMES", "P-1") == first.accession


def test_find_by_placer_gives_none_when_same_number_comes_from_another_sender(engine):
    with engine.begin() as conn:
        open_case(conn, make_order("P-1"))
    with engine.connect() as conn:
        assert cases.find_by_placer(conn, "OTHER_EHR|CLINIC", "P-1") is None


def test_same_placer_number_is_accepted_when_senders_differ(engine):
    with engine.begin() as conn:
        a = open_case(conn, make_order("P-1", sender="EHR_A|SITE"))
        b = open_case(conn, make_order("P-1", sender="EHR_B|SITE"))
    with engine.connect() as conn:
        assert cases.find_by_placer(conn, "EHR_A|SITE", "P-1") == a.accession
        assert cases.find_by_placer(conn, "EHR_B|SITE", "P-1") == b.accession


def test_insert_is_refused_when_sender_and_placer_number_repeat(engine):
    with engine.begin() as conn:
        open_case(conn, make_order("P-1"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        open_case(conn, make_order("P-1"))


def test_patient_demographics_are_updated_when_the_same_patient_returns(engine):
    with engine.begin() as conn:
        first = open_case(conn, make_order("P-1", family="DUPONT", given="Marie", birth_date="19800101"))
        second = open_case(conn, make_order("P-2", family="DURAND", given="Marie", birth_date="19800102",
                                            sex="F"))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(patients)).scalar() == 1
        for accession in (first.accession, second.accession):
            patient = cases.load(conn, accession).order.patient
            assert (patient.name.family, patient.birth_date) == ("DURAND", "19800102")


def test_patients_are_kept_apart_when_identifiers_differ(engine):
    with engine.begin() as conn:
        a = open_case(conn, make_order("P-1", patient_id="IPP1", family="DUPONT"))
        b = open_case(conn, make_order("P-2", patient_id="IPP2", family="DURAND"))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(patients)).scalar() == 2
        assert cases.load(conn, a.accession).order.patient.name.family == "DUPONT"
        assert cases.load(conn, b.accession).order.patient.name.family == "DURAND"


def test_accession_for_study_finds_the_case_when_study_uid_is_known(engine):
    with engine.begin() as conn:
        case = open_case(conn)
    with engine.connect() as conn:
        assert cases.accession_for_study(conn, case.study_uid) == case.accession
        assert cases.accession_for_study(conn, "1.2.3.4.5.6") is None


def test_save_status_persists_the_new_state_when_case_moved(engine):
    with engine.begin() as conn:
        case = open_case(conn)
    with engine.begin() as conn:
        case = cases.load(conn, case.accession)
        case.apply(CaseEvent.IMAGE_RECEIVED)
        cases.save_status(conn, case, stamp(10))
    with engine.connect() as conn:
        assert cases.load(conn, case.accession).status is CaseStatus.IMAGES_PENDING


def test_insert_stores_the_status_given_when_case_is_not_open(engine):
    with engine.begin() as conn:
        case = Case(cases.next_accession(conn), "1.2.3.99", make_order(), status=CaseStatus.READY)
        cases.insert(conn, case, stamp())
    with engine.connect() as conn:
        assert cases.load(conn, case.accession).status is CaseStatus.READY
