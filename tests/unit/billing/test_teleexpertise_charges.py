from pathlib import Path

import pytest

from connector.billing.tariffs import load_tariffs
from connector.billing.teleexpertise import charges_for_final_report
from connector.domain.errors import DomainError
from connector.domain.model import PersonName, Practitioner

NGAP = load_tariffs(Path(__file__).parents[3] / "mappings" / "billing" / "ngap.toml")
REQUESTER = Practitioner("810001234567", PersonName("MARTIN", "Élise"))
SPECIALIST = Practitioner("810009876543", PersonName("LEFÈVRE", "François"))


def _charges(act_date, accession="ACC00042", requester=REQUESTER, specialist=SPECIALIST):
    return charges_for_final_report(tariffs=NGAP, accession=accession, act_date=act_date,
                                    requester=requester, specialist=specialist)


def test_charges_from_2022_04_01_are_te2_for_the_requis_and_rqd_for_the_requerant():
    te2, rqd = _charges("20220401")
    assert (te2.code, te2.role, te2.amount_cents, te2.type) == ("TE2", "requis", 2000, "CG")
    assert te2.performed_by == SPECIALIST and te2.ordered_by == REQUESTER
    assert (rqd.code, rqd.role, rqd.amount_cents, rqd.type) == ("RQD", "requerant", 1000, "CG")
    assert rqd.performed_by == REQUESTER and rqd.ordered_by is None
    assert te2.act_date == rqd.act_date == "20220401"


def test_charges_before_2022_04_01_are_te2_level_2_only():
    (te2,) = _charges("20220331")
    assert (te2.code, te2.role, te2.amount_cents) == ("TE2", "requis", 2000)
    assert te2.performed_by == SPECIALIST and te2.ordered_by == REQUESTER


def test_charges_from_2026_use_the_scheduled_te2_amount():
    te2, rqd = _charges("20260101")
    assert te2.amount_cents == 2300 and rqd.amount_cents == 1000


def test_charges_transaction_ids_are_stable_for_the_same_act():
    first, second = _charges("20230510"), _charges("20230510")
    ids = [c.transaction_id for c in first]
    assert first == second
    assert len(set(ids)) == 2 and all(len(i) == 12 and i.isalnum() for i in ids)  # FT1-2 is ST(12)
    other = [c.transaction_id for c in _charges("20230510", accession="ACC00043")]
    assert not set(other) & set(ids)


def test_charges_when_no_tariff_covers_the_date_raise_domain_error():
    with pytest.raises(DomainError) as err:
        _charges("20190209")
    assert err.value.where == "act_date"


def test_charges_when_requester_is_the_specialist_raise_domain_error():
    with pytest.raises(DomainError) as err:
        _charges("20230510", requester=SPECIALIST)
    assert err.value.where == "specialist"


@pytest.mark.parametrize("accession, act_date, where", [
    ("", "20230510", "accession"),
    ("ACC00042", "2023-05-10", "act_date"),
])
def test_charges_when_input_is_invalid_raise_domain_error(accession, act_date, where):
    with pytest.raises(DomainError) as err:
        _charges(act_date, accession=accession)
    assert err.value.where == where
