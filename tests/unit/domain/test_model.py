"""Value objects refuse bad input in their constructor, naming the argument at fault."""

import dataclasses

import pytest

from connector.domain.errors import DomainError
from connector.domain.model import (
    BodySite,
    Case,
    Charge,
    ChargeRole,
    Order,
    Patient,
    PersonName,
    Practitioner,
    Priority,
    Report,
    ResultStatusValues,
    TransactionTypeValues,
    parse_iso_date,
    parse_yyyymmdd,
    reason_text,
    valid_conduct_code,
    valid_date,
    valid_finess,
    valid_oid,
    valid_rpps,
)
from connector.domain.states import CaseEvent, CaseStatus


def doctor(id_="801234567897") -> Practitioner:
    return Practitioner(id_, PersonName("MARTIN", "François"), "1.2.250.1.71.4.2.1")


def patient(**changes) -> Patient:
    values = dict(id="IPP0012345", name=PersonName("LEFÈVRE", "Hélène"), issuer="CHU_NIMES",
                  birth_date="19720314", sex="F")
    values.update(changes)
    return Patient(**values)


def order(**changes) -> Order:
    values = dict(sender="DPI_CHU|CHU_NIMES", placer_order_number="CMD-2026-0042",
                  patient=patient(), requester=doctor(), question="Lésion pigmentée du dos")
    values.update(changes)
    return Order(**values)


def charge(**changes) -> Charge:
    values = dict(transaction_id="TD00000001-TE2-requis", code="TE2", role="requis",
                  amount_cents=2000, type="CG", act_date="20261115", performed_by=doctor())
    values.update(changes)
    return Charge(**values)


def refused(build, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as exc:
        build(*args, **kwargs)
    return exc.value


# PersonName

def test_person_name_parse_reads_family_and_given_when_text_is_xpn():
    name = PersonName.parse("LEFÈVRE^Hélène")
    assert (name.family, name.given) == ("LEFÈVRE", "Hélène")


def test_person_name_parse_keeps_first_given_only_when_middle_names_follow():
    name = PersonName.parse("DUPONT^Jean^Marie^^DR")
    assert (name.family, name.given) == ("DUPONT", "Jean")


def test_person_name_parse_strips_spaces_when_components_are_padded():
    name = PersonName.parse("  DUPONT ^ Jean ")
    assert (name.family, name.given) == ("DUPONT", "Jean")


def test_person_name_parse_gives_empty_given_when_text_has_family_only():
    name = PersonName.parse("DUPONT")
    assert (name.family, name.given) == ("DUPONT", "")


@pytest.mark.parametrize("text", ["", "   ", "^Jean", " ^Jean"])
def test_person_name_parse_is_refused_when_family_is_missing(text):
    assert refused(PersonName.parse, text).where == "name"


@pytest.mark.parametrize("bad", ["DU|PONT", "DU~PONT", "DU\\PONT", "DU&PONT", "DU\rPONT", "DU\nPONT"])
def test_person_name_is_refused_when_family_holds_an_hl7_delimiter(bad):
    error = refused(PersonName, bad, "Jean")
    assert error.where == "name" and "delimiter" in error.text


def test_person_name_is_refused_when_given_holds_a_component_separator():
    assert refused(PersonName, "DUPONT", "Jean^Marie").where == "name"


def test_person_name_hl7_omits_the_separator_when_given_is_empty():
    assert PersonName("DUPONT").hl7() == "DUPONT"
    assert PersonName("LEFÈVRE", "Hélène").hl7() == "LEFÈVRE^Hélène"


def test_person_name_hl7_round_trips_through_parse_when_name_has_accents():
    name = PersonName("N'GUYÊN-ÉLOÏSE", "Zoé")
    assert PersonName.parse(name.hl7()) == name


def test_person_name_cannot_be_changed_when_built():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PersonName("DUPONT").family = "MARTIN"


# Patient

def test_patient_keeps_its_fields_when_all_are_valid():
    p = patient()
    assert (p.id, p.issuer, p.birth_date, p.sex, p.name.family) == (
        "IPP0012345", "CHU_NIMES", "19720314", "F", "LEFÈVRE")


def test_patient_is_accepted_when_birth_date_and_sex_are_empty():
    p = patient(birth_date="", sex="")
    assert (p.birth_date, p.sex) == ("", "")


@pytest.mark.parametrize("bad_id", ["", "   "])
def test_patient_is_refused_when_identifier_is_blank(bad_id):
    assert refused(patient, id=bad_id).where == "patient.id"


def test_patient_identifier_of_64_characters_is_accepted_when_65_is_refused():
    assert patient(id="9" * 64).id == "9" * 64
    assert refused(patient, id="9" * 65).where == "patient.id"


@pytest.mark.parametrize("bad_date", ["1972-03-14", "19720230", "19721301", "1972031", "197203140",
                                      "abcdefgh", "19720000"])
def test_patient_is_refused_when_birth_date_is_not_a_calendar_yyyymmdd(bad_date):
    assert refused(patient, birth_date=bad_date).where == "patient.birth_date"


def test_patient_is_accepted_when_birth_date_is_february_29_of_a_leap_year():
    assert patient(birth_date="20000229").birth_date == "20000229"
    assert refused(patient, birth_date="19000229").where == "patient.birth_date"


@pytest.mark.parametrize("sex", ["M", "F", "O"])
def test_patient_is_accepted_when_sex_is_a_dicom_value(sex):
    assert patient(sex=sex).sex == sex


@pytest.mark.parametrize("bad_sex", ["U", "m", "X", "MF"])
def test_patient_is_refused_when_sex_is_not_m_f_or_o(bad_sex):
    assert refused(patient, sex=bad_sex).where == "patient.sex"


def test_valid_date_answers_true_only_when_text_is_a_real_date():
    assert valid_date("20261115")
    assert not valid_date("20261131")
    assert not valid_date("")


def test_parse_iso_date_takes_only_yyyy_mm_dd_when_fromisoformat_takes_more():
    assert parse_iso_date("2022-04-01").isoformat() == "2022-04-01"
    for text in ("20220401", "2022-W13-5", "2022-04-31", "2022-04-01\n", ""):
        assert parse_iso_date(text) is None


def test_parse_yyyymmdd_takes_only_a_real_compact_date_when_text_varies():
    assert parse_yyyymmdd("20261115").isoformat() == "2026-11-15"
    for text in ("2026-11-15", "20261131", "2026111", "20261115\n"):
        assert parse_yyyymmdd(text) is None


@pytest.mark.parametrize("check, good, bad", [
    (valid_oid, ["1.2.250.1.71.4.2.1", "2.25", "0.0"], ["", "1", "3.1", "1.02", "1..2", "1.2\n"]),
    (valid_rpps, ["10000000001"], ["", "1000000000", "100000000012", "1000000000a"]),
    (valid_finess, ["750000001", "2A0000001", "2B1234567"], ["", "75000000", "2C0000001"]),
    (valid_conduct_code, ["no_visit", "b2"], ["", "No_visit", "2b", "no-visit", "no_visit\n"]),
])
def test_identifier_checks_answer_true_only_when_the_syntax_holds(check, good, bad):
    assert all(check(text) for text in good)
    assert not any(check(text) for text in bad)


def test_reason_text_makes_whitespace_runs_one_space_when_the_reason_has_line_breaks():
    assert reason_text("  Photos\r\nfloues\t ", hint="h") == "Photos floues"
    assert reason_text("é" * 199, hint="h") == "é" * 199


@pytest.mark.parametrize("bad", ["", " \r\n\t", "x" * 200, "wrong\x00patient", "a\x1bb", "a\x9bb"])
def test_reason_text_is_refused_when_empty_too_long_or_holding_a_control(bad):
    with pytest.raises(DomainError) as exc:
        reason_text(bad, hint="say why")
    assert exc.value.where == "reason"


# Practitioner, Order

@pytest.mark.parametrize("bad_id", ["", "  "])
def test_practitioner_is_refused_when_identifier_is_blank(bad_id):
    assert refused(Practitioner, bad_id, PersonName("MARTIN")).where == "practitioner.id"


def test_order_defaults_to_routine_priority_when_none_is_given():
    assert order().priority is Priority.ROUTINE


@pytest.mark.parametrize("bad", ["", "   "])
def test_order_is_refused_when_placer_order_number_is_blank(bad):
    assert refused(order, placer_order_number=bad).where == "placer_order_number"


def test_order_placer_number_of_22_characters_is_accepted_when_23_is_refused():
    assert order(placer_order_number="P" * 22).placer_order_number == "P" * 22
    assert refused(order, placer_order_number="P" * 23).where == "placer_order_number"


def test_order_is_outpatient_unless_told_the_patient_is_hospitalised():
    assert order().patient_hospitalised is False
    assert order(patient_hospitalised=True).patient_hospitalised is True
    assert refused(order, patient_hospitalised="I").where == "patient_hospitalised"


# Report

def test_report_is_accepted_when_status_is_deleted_for_a_withdrawal():
    assert Report("Naevus bénin.", "no_visit", doctor(), "20261116101500", "D").status == "D"


def test_report_is_final_by_default_when_status_is_not_given():
    report = Report("Naevus bénin.", "no_visit", doctor(), "20261116101500")
    assert report.status == "F"


def test_report_is_accepted_when_status_is_corrected():
    assert Report("Naevus bénin.", "no_visit", doctor(), "20261116101500", "C").status == "C"


def test_report_keeps_the_plain_code_when_given_a_status_member():
    report = Report("Naevus bénin.", "no_visit", doctor(), "20261116101500",
                    ResultStatusValues.CORRECTED)
    assert type(report.status) is str and f"OBX-11 {report.status}" == "OBX-11 C"


@pytest.mark.parametrize("field, changes", [
    ("text", {"text": "  \n"}),
    ("conduct", {"conduct": ""}),
    ("status", {"status": "P"}),
])
def test_report_is_refused_when_a_field_is_invalid(field, changes):
    values = dict(text="Naevus bénin.", conduct="no_visit", specialist=doctor(),
                  signed_at="20261116101500")
    values.update(changes)
    assert refused(Report, **values).where == field


# Charge

def test_charge_is_accepted_when_amount_is_zero_and_type_is_credit():
    c = charge(amount_cents=0, type="CD", role="requerant", ordered_by=doctor("10000000001"))
    assert (c.amount_cents, c.type, c.ordered_by.id) == (0, "CD", "10000000001")


@pytest.mark.parametrize("role", ["requis", "requerant", "doctor"])
def test_charge_is_accepted_when_role_is_known(role):
    assert charge(role=role).role == role


def test_charge_keeps_the_plain_codes_when_given_members():
    c = charge(type=TransactionTypeValues.CREDIT, role=ChargeRole.REQUERANT)
    assert (type(c.type), type(c.role)) == (str, str) and f"{c.type} {c.role}" == "CD requerant"
    assert c == charge(type="CD", role="requerant")


@pytest.mark.parametrize("where, changes", [
    ("type", {"type": "XX"}),
    ("type", {"type": "cg"}),
    ("role", {"role": "nurse"}),
    ("act_date", {"act_date": "2026-11-15"}),
    ("act_date", {"act_date": "20261132"}),
    ("amount", {"amount_cents": -1}),
])
def test_charge_is_refused_when_a_field_is_invalid(where, changes):
    assert refused(charge, **changes).where == where


# BodySite

def test_body_site_keeps_its_coding_when_complete():
    site = BodySite("SCT", "123961009", "Back")
    assert (site.scheme, site.code, site.meaning) == ("SCT", "123961009", "Back")


@pytest.mark.parametrize("scheme, code, meaning", [
    ("", "123961009", "Back"), ("SCT", "", "Back"), ("SCT", "123961009", "")])
def test_body_site_is_refused_when_a_part_is_missing(scheme, code, meaning):
    assert refused(BodySite, scheme, code, meaning).where == "site"


# Case aggregate

def test_case_apply_moves_status_and_records_event_when_transition_is_allowed():
    case = Case("TD00000001", "1.2.3", order())
    assert case.apply(CaseEvent.IMAGE_RECEIVED) is CaseStatus.IMAGES_PENDING
    assert case.status is CaseStatus.IMAGES_PENDING
    assert case.events == [(CaseEvent.IMAGE_RECEIVED, CaseStatus.OPEN, CaseStatus.IMAGES_PENDING)]


def test_case_apply_records_each_step_when_case_goes_through_its_whole_life():
    case = Case("TD00000001", "1.2.3", order())
    for event in (CaseEvent.IMAGE_RECEIVED, CaseEvent.IMAGES_STABLE, CaseEvent.REVIEW_STARTED,
                  CaseEvent.REPORT_FINAL, CaseEvent.REPORT_CORRECTED, CaseEvent.CLOSE):
        case.apply(event)
    assert case.status is CaseStatus.CLOSED
    assert [(old, new) for _, old, new in case.events] == [
        (CaseStatus.OPEN, CaseStatus.IMAGES_PENDING),
        (CaseStatus.IMAGES_PENDING, CaseStatus.READY),
        (CaseStatus.READY, CaseStatus.IN_REVIEW),
        (CaseStatus.IN_REVIEW, CaseStatus.ANSWERED),
        (CaseStatus.ANSWERED, CaseStatus.AMENDED),
        (CaseStatus.AMENDED, CaseStatus.CLOSED),
    ]
