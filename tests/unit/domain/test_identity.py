"""Identity vigilance rules (connector/domain/identity.py): which identities contradict a known
patient, and what a record becomes when a message is applied to it."""

import pytest

from connector.domain.identity import IdentityConflict, check, combine, keys, one_record
from connector.domain.model import Patient, PersonName

NIR, NIR_OID = "279035121518989", "1.2.250.1.213.1.4.8"
CHU = "1.2.250.1.999.1"
QUALIFIED = Patient(NIR, PersonName("DUPONT", "Hélène"), NIR_OID, "19790321", "F", ins=NIR,
                    ins_oid=NIR_OID, identity_status="QUAL", other_ids=(("IPP-A", CHU),),
                    id_details=(("IPP-A", CHU, "CHU_DEMO", "PI"),))
HELD = {(NIR, NIR_OID), ("IPP-A", CHU)}


def by_ipp(ident="IPP-A", name=("MARTIN", "Hélène"), **kw) -> Patient:
    return Patient(ident, PersonName(*name), CHU, **kw)


def test_keys_are_the_identifier_the_others_and_the_ins_whatever_its_status():
    assert keys(QUALIFIED) == [(NIR, NIR_OID), ("IPP-A", CHU)]
    provisional = by_ipp(ins=NIR, ins_oid=NIR_OID, identity_status="VALI")
    assert keys(provisional) == [("IPP-A", CHU), (NIR, NIR_OID)]


def test_identifiers_of_two_records_are_a_conflict_naming_the_second():
    assert one_record({}) is None
    assert one_record({("IPP-A", CHU): 1, (NIR, NIR_OID): 1}) == 1
    with pytest.raises(IdentityConflict) as exc:
        one_record({("IPP-A", CHU): 1, (NIR, NIR_OID): 2})
    assert (exc.value.where, exc.value.identifier, exc.value.code) == (
        "patient.id", (NIR, NIR_OID), "identity-conflict")


def test_a_second_identifier_of_one_authority_is_a_conflict_unless_retired():
    with pytest.raises(IdentityConflict) as exc:
        check(QUALIFIED, HELD, by_ipp("IPP-B"), traits=False)
    assert exc.value.identifier == ("IPP-B", CHU)
    check(QUALIFIED, HELD, by_ipp("IPP-B"), traits=False, ignore=frozenset({("IPP-A", CHU)}))
    check(QUALIFIED, HELD, Patient("X-1", PersonName("A", ""), "LAB"), traits=False)


@pytest.mark.parametrize("incoming,where", [
    (by_ipp(name=("MARTIN", "Hélène")), "patient.name"),
    (by_ipp(name=("DUPONT", "Hélène"), birth_date="19790312"), "patient.birth_date"),
    (by_ipp(name=("DUPONT", "Hélène"), sex="M"), "patient.sex"),
])
def test_an_order_with_other_traits_is_a_conflict(incoming, where):
    check(QUALIFIED, HELD, incoming, traits=False)  # an identity feed may change them
    with pytest.raises(IdentityConflict) as exc:
        check(QUALIFIED, HELD, incoming, traits=True)
    assert exc.value.where == where
    assert "DUPONT" not in exc.value.text and "MARTIN" not in exc.value.text


def test_same_traits_written_otherwise_or_left_empty_are_no_conflict():
    check(QUALIFIED, HELD, by_ipp(name=("dupont", " Hélène ")), traits=True)


def test_an_update_without_the_ins_keeps_it_and_the_identifier():
    got = combine(QUALIFIED, by_ipp(name=("MARTIN", "Hélène")))
    assert (got.id, got.issuer, got.ins, got.identity_status, got.name.family) == (
        NIR, NIR_OID, NIR, "QUAL", "MARTIN")
    assert (got.birth_date, got.sex, got.other_ids) == ("19790321", "F", (("IPP-A", CHU),))
    assert got.id_details == QUALIFIED.id_details


def test_a_lower_status_makes_the_ipp_the_identifier_and_the_ins_unusable():
    got = combine(QUALIFIED, by_ipp(name=("DUPONT", "Hélène"), identity_status="VALI"))
    assert (got.id, got.issuer, got.ins, got.ins_usable, got.other_ids) == (
        "IPP-A", CHU, NIR, False, ())


def test_a_changed_identifier_is_dropped_and_a_merged_one_is_not_sent_back():
    changed = combine(QUALIFIED, Patient(NIR, PersonName("DUPONT", "Hélène"), NIR_OID, ins=NIR,
                                         ins_oid=NIR_OID, identity_status="QUAL",
                                         other_ids=(("IPP-A2", CHU),)),
                      frozenset({("IPP-A", CHU)}))
    assert (changed.id, changed.other_ids) == (NIR, (("IPP-A2", CHU),))
    assert changed.id_details == ()
    renamed = combine(by_ipp("IPP-OLD"), by_ipp("IPP-NEW"), frozenset({("IPP-OLD", CHU)}))
    assert (renamed.id, renamed.other_ids) == ("IPP-NEW", ())


def test_a_retired_identifier_a_message_still_sends_is_never_the_identifier():
    """A message naming the patient only by a merged record's IPP keeps the stored one."""
    got = combine(by_ipp("IPP-A"), by_ipp("IPP-MERGED"), frozenset({("IPP-MERGED", CHU)}))
    assert (got.id, got.other_ids) == ("IPP-A", ())
