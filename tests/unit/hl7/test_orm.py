import pytest

from connector.domain.errors import ConfigError
from connector.domain.model import Priority
from connector.hl7.errors import Hl7Error
from connector.hl7.orm import (MAPPING_FILE, load_mapping, order_from_orm,
                               teleconsultation_from_orm)
from connector.hl7.parse import parse

REQ = ("801234567897^MARTIN^François^^^DR^^^"
       "ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS")


@pytest.fixture
def orm(sample):
    """The NW sample as text, and a function that edits segments and maps the result."""
    text = sample("orm_o01_nw.hl7").decode("utf-8")

    def edit(*changes, drop=()):
        segments = [s for s in text.split("\r") if s and s[:3] not in drop]
        for segment_id, field, value in changes:
            for i, seg in enumerate(segments):
                if seg.startswith(segment_id + "|"):
                    fields = seg.split("|")
                    fields += [""] * (field + 1 - len(fields))
                    fields[field] = value
                    segments[i] = "|".join(fields)
                    break
        return order_from_orm(parse(("\r".join(segments) + "\r").encode("utf-8")))
    return edit


def error_of(call, *args, **kwargs) -> Hl7Error:
    with pytest.raises(Hl7Error) as exc:
        call(*args, **kwargs)
    return exc.value


def test_new_order_is_read_with_french_accents(orm):
    control, order = orm()
    assert control == "NW"
    assert order.sender == "DPI_CHU|CHU_NIMES"
    assert order.placer_order_number == "CMD-2026-0042"
    p = order.patient
    assert (p.id, p.issuer, p.name.family, p.name.given, p.birth_date, p.sex) == (
        "IPP0012345", "CHU_NIMES", "LEFÈVRE", "Hélène", "19720314", "F")
    r = order.requester
    assert (r.id, r.name.family, r.name.given, r.authority) == (
        "801234567897", "MARTIN", "François", "1.2.250.1.71.4.2.1")
    assert order.question == ("Lésion pigmentée du dos, évolution récente\n"
                              "Antécédent de mélanome chez la mère.\n"
                              "Photos dermoscopiques jointes & annotées.")
    assert order.priority is Priority.URGENT
    assert order.ordered_at == "20261115092500"


@pytest.mark.parametrize("changes, service", [
    ((), ""),
    ((("PV1", 3, "DERMATO^^^CHU"),), "DERMATO"),
    ((("PV1", 3, "DERMATO^^^CHU"), ("ORC", 17, "ONCO^Oncologie^L")), "ONCO"),
    ((("ORC", 17, "ONCO^Oncologie^L"),), "ONCO"),
], ids=["none", "pv1-3", "orc-17-first", "orc-17"])
def test_the_requesting_service_is_orc_17_1_else_pv1_3_1(orm, changes, service):
    assert orm(*changes)[1].service == service


def test_omg_o19_with_requester_only_in_obr16_is_read(sample):
    control, order = order_from_orm(parse(sample("omg_o19_nw.hl7")))
    assert (control, order.placer_order_number, order.priority) == (
        "NW", "CMD-2026-0043", Priority.STAT)
    assert order.requester.id == "801234567897"
    assert order.question == "Éruption prurigineuse des avant-bras"


def test_missing_pid3_gives_101_at_pid_1_3(sample):
    error = error_of(order_from_orm, parse(sample("orm_o01_no_pid3.hl7")))
    assert (error.hl7_code, error.location, error.ack_code) == ("101", "PID^1^3", "AE")


def test_missing_placer_number_gives_101_at_orc_1_2(orm):
    error = error_of(orm, ("ORC", 2, ""), ("OBR", 2, ""))
    assert (error.hl7_code, error.location) == ("101", "ORC^1^2")


def test_placer_number_is_taken_from_obr2_when_orc2_is_empty(orm):
    assert orm(("ORC", 2, ""), ("OBR", 2, "OBR-ONLY"))[1].placer_order_number == "OBR-ONLY"


def test_too_long_placer_number_gives_102_where_it_was_read(orm):
    error = error_of(orm, ("ORC", 2, "X" * 23))
    assert (error.hl7_code, error.location) == ("102", "ORC^1^2")


def test_missing_requester_gives_101_at_orc_1_12(orm):
    error = error_of(orm, ("ORC", 12, ""), ("OBR", 16, ""))
    assert (error.hl7_code, error.location) == ("101", "ORC^1^12")


def test_requester_without_id_gives_101_where_the_requester_was_found(orm):
    error = error_of(orm, ("ORC", 12, ""), ("OBR", 16, "^MARTIN^François"))
    assert (error.hl7_code, error.location) == ("101", "OBR^1^16")


def test_missing_patient_name_gives_101_at_pid_1_5(orm):
    error = error_of(orm, ("PID", 5, "^Hélène"))
    assert (error.hl7_code, error.location) == ("101", "PID^1^5")


def test_name_with_escaped_delimiter_gives_102_at_pid_1_5(orm):
    error = error_of(orm, ("PID", 5, "O\\S\\BRIEN^Jean"))
    assert (error.hl7_code, error.location) == ("102", "PID^1^5")


@pytest.mark.parametrize("birth", ["19721340", "1972", "abcdefgh"])
def test_bad_birth_date_gives_102_at_pid_1_7(orm, birth):
    error = error_of(orm, ("PID", 7, birth))
    assert (error.hl7_code, error.location) == ("102", "PID^1^7")


def test_birth_date_with_time_keeps_the_date(orm):
    assert orm(("PID", 7, "197203141230"))[1].patient.birth_date == "19720314"


def test_unknown_order_control_gives_103_at_orc_1_1(orm):
    error = error_of(orm, ("ORC", 1, "ZZ"))
    assert (error.hl7_code, error.location, error.ack_code) == ("103", "ORC^1^1", "AE")


def test_cancel_request_is_read(orm):
    assert orm(("ORC", 1, "CA"))[0] == "CA"


@pytest.mark.parametrize("changes,drop,expected", [
    ([("TQ1", 9, "S")], (), Priority.STAT),
    ([("TQ1", 9, "R")], (), Priority.ROUTINE),
    ([("ORC", 7, "^^^^^S")], ("TQ1",), Priority.STAT),
    ([("OBR", 27, "^^^^^A")], ("TQ1",), Priority.URGENT),
    ([("OBR", 5, "S")], ("TQ1",), Priority.STAT),
    ([("TQ1", 9, "P")], (), Priority.ROUTINE),
    ([], ("TQ1",), Priority.ROUTINE),
])
def test_priority_is_read_from_tq1_orc7_obr27_or_obr5(orm, changes, drop, expected):
    assert orm(*changes, drop=drop)[1].priority is expected


def test_unknown_priority_gives_103_where_it_was_read(orm):
    error = error_of(orm, ("OBR", 5, "Z"), drop=("TQ1",))
    assert (error.hl7_code, error.location) == ("103", "OBR^1^5")


@pytest.mark.parametrize("code,sex", [("M", "M"), ("f", "F"), ("A", "O"), ("U", ""), ("", "")])
def test_sex_is_mapped_to_dicom_values(orm, code, sex):
    assert orm(("PID", 8, code))[1].patient.sex == sex


def test_unknown_sex_gives_103_at_pid_1_8(orm):
    error = error_of(orm, ("PID", 8, "X"))
    assert (error.hl7_code, error.location) == ("103", "PID^1^8")


def test_qualified_ins_alone_identifies_the_patient_with_its_oid_as_issuer(orm):
    ins = "279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
    patient = orm(("PID", 3, ins), ("PID", 32, "QUAL"))[1].patient
    assert (patient.id, patient.issuer) == ("279035121518989", "1.2.250.1.213.1.4.8")


def test_malformed_order_time_gives_102_at_orc_1_9(orm):
    error = error_of(orm, ("ORC", 9, "yesterday"))
    assert (error.hl7_code, error.location) == ("102", "ORC^1^9")


def test_message_with_two_orders_is_refused_rather_than_half_read(sample):
    raw = sample("orm_o01_nw.hl7") + b"ORC|NW|CMD-2|||||||20261115092500|||" + REQ.encode() + b"\r"
    error = error_of(order_from_orm, parse(raw))
    assert (error.hl7_code, error.location) == ("100", "ORC^2")


def test_mapping_file_decides_positions(tmp_path, sample):
    text = MAPPING_FILE.read_text(encoding="utf-8").replace(
        'question = ["OBR-13", "OBR-31.2"]', 'question = ["OBR-31.2", "OBR-13"]')
    path = tmp_path / "orm.toml"
    path.write_text(text, encoding="utf-8")
    raw = sample("orm_o01_nw.hl7").replace(b"\rNTE", b"|" * 15 + b"^Naevus atypique\rNTE", 1)
    order = order_from_orm(parse(raw), load_mapping(path))[1]
    assert order.question.startswith("Naevus atypique\n")


def test_question_keeps_clinical_information_and_each_reason_for_study_when_both_are_sent(
        sample):
    raw = sample("orm_o01_nw.hl7").replace(
        b"\rNTE", b"|" * 15 + b"^Naevus atypique~^Contr\xc3\xb4le\rNTE", 1)
    lines = order_from_orm(parse(raw))[1].question.split("\n")
    assert lines[1:3] == ["Naevus atypique", "Contrôle"]
    assert lines[0] and lines[0] not in lines[1:3]


@pytest.mark.parametrize("old,new,key", [
    ('requester = ["ORC-12", "OBR-16"]', 'requester = ["ORC-12.2"]', "positions.requester"),
    ('placer_order_number = ["ORC-2.1", "OBR-2.1"]', 'placer_order_number = []',
     "positions.placer_order_number"),
    ('sex = ["PID-8"]', 'sex = ["PID 8"]', "positions.sex"),
    ('S = "stat"', 'S = "now"', "codes.priority"),
    ('A = "O"', 'A = "X"', "codes.sex"),
    ('question = "NTE-3"', 'question = 3', "notes.question"),
])
def test_malformed_mapping_raises_config_error_naming_file_and_key(tmp_path, old, new, key):
    path = tmp_path / "orm.toml"
    path.write_text(MAPPING_FILE.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    # the key itself, or an entry of it (`[codes.priority.S]`, `[positions.sex[0]]`)
    assert any(str(path) in p.where and f"[{key}" in p.where for p in exc.value.problems)


def test_unreadable_mapping_raises_config_error_naming_the_file(tmp_path):
    path = tmp_path / "orm.toml"
    path.write_text(MAPPING_FILE.read_text(encoding="utf-8").replace("[positions]", "[positions"),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    assert exc.value.where == str(path) and "cannot read ORM mapping" in exc.value.text


def test_mapping_with_three_bad_keys_names_all_three(tmp_path):
    text = MAPPING_FILE.read_text(encoding="utf-8")
    for old, new in (('sex = ["PID-8"]', 'sex = ["PID 8"]'), ('S = "stat"', 'S = "now"'),
                     ('source = "obx"', 'source = "paper"')):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "orm.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    assert [p.where for p in exc.value.problems] == [
        f"{path} [positions.sex[0]]", f"{path} [codes.priority.S]", f"{path} [consent.source]"]
    assert len(exc.value.one_line().splitlines()) == 3


def test_shipped_mapping_is_loaded_once():
    assert load_mapping() is load_mapping()


# --- patient class (PV1-2) -----------------------------------------------------------------

@pytest.mark.parametrize("pv1_2, hospitalised", [("O", False), ("I", True), ("i", True),
                                                 ("E", False), ("", False)])
def test_patient_is_hospitalised_when_pv1_2_is_an_inpatient_class(orm, pv1_2, hospitalised):
    assert orm(("PV1", 2, pv1_2))[1].patient_hospitalised is hospitalised


def test_patient_is_outpatient_when_the_order_has_no_pv1(orm):
    assert orm(drop=("PV1",))[1].patient_hospitalised is False


# --- teleconsultations reported as done (OBR-4) -------------------------------------------

@pytest.fixture
def tc(sample):
    """The NW sample with edits and extra segments, read as a reported teleconsultation."""
    text = sample("orm_o01_nw.hl7").decode("utf-8")

    def read(*changes, extra=(), mapping=None):
        # the sample's own OBX (the consent) left out: OBX numbers below are the extra ones'
        segments = [s for s in text.split("\r") if s and not s.startswith("OBX|")]
        for segment_id, field, value in changes:
            i = next(i for i, seg in enumerate(segments) if seg.startswith(segment_id + "|"))
            fields = segments[i].split("|")
            fields += [""] * (field + 1 - len(fields))
            fields[field] = value
            segments[i] = "|".join(fields)
        raw = ("\r".join(segments + list(extra)) + "\r").encode("utf-8")
        return teleconsultation_from_orm(parse(raw), mapping)
    return read


def test_tele_expertise_request_is_not_a_teleconsultation(tc):
    assert tc() is None


def test_teleconsultation_is_read_with_performer_date_and_majorations(tc):
    got = tc(("OBR", 4, "TC^Téléconsultation^NGAP"), ("OBR", 7, "20240603143000"),
             ("PV1", 7, "810009999999^DURAND^Marc^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO"),
             extra=("OBX|1|CE|MAJORATION^Majoration NGAP^L||MPC^^NGAP",
                    "OBX|2|NM|POIDS^Poids^L||72",
                    "OBX|3|CE|maj^Majoration^L||mcs^^NGAP"))
    assert (got.code, got.specialist_is_gp, got.performed_on) == ("TC", False, "20240603")
    p = got.performer
    assert (p.id, p.name.family, p.name.given, p.authority) == (
        "810009999999", "DURAND", "Marc", "1.2.250.1.71.4.2.1")
    assert got.majorations == ("MPC", "MCS")
    assert got.majoration_locations == ("OBX^1^5", "OBX^3^5")


def test_gp_teleconsultation_falls_back_to_the_ordering_provider_and_orc9(tc):
    got = tc(("OBR", 4, "TCG"))
    assert (got.code, got.specialist_is_gp, got.performed_on) == ("TCG", True, "20261115")
    assert got.performer.id == "801234567897" and got.majorations == ()


def test_teleconsultation_without_a_date_is_dated_by_the_receiver(tc):
    assert tc(("OBR", 4, "TC"), ("ORC", 9, "")).performed_on == ""


def test_teleconsultation_with_a_bad_date_gives_102_where_it_was_read(tc):
    error = error_of(tc, ("OBR", 4, "TC"), ("OBR", 7, "2024-06-03"))
    assert (error.hl7_code, error.location) == ("102", "OBR^1^7")


def test_teleconsultation_majoration_without_a_code_gives_101_at_its_obx(tc):
    error = error_of(tc, ("OBR", 4, "TC"), extra=("OBX|1|CE|MAJORATION^^L||",))
    assert (error.hl7_code, error.location) == ("101", "OBX^1^5")


def test_teleconsultation_codes_and_positions_come_from_the_mapping_file(tmp_path, tc):
    text = MAPPING_FILE.read_text(encoding="utf-8").replace(
        'TCG = "gp"', 'TCG = "gp"\n"TLC-SPE" = "specialist"').replace(
        'performer = ["PV1-7", "ORC-12"]', 'performer = ["OBR-34", "ORC-12"]')
    path = tmp_path / "orm.toml"
    path.write_text(text, encoding="utf-8")
    got = tc(("OBR", 4, "TLC-SPE"), ("OBR", 34, "810001111111^PETIT^Anne"),
             mapping=load_mapping(path))
    assert (got.code, got.specialist_is_gp, got.performer.id) == ("TLC-SPE", False,
                                                                  "810001111111")


@pytest.mark.parametrize("old,new,key", [
    ('TCG = "gp"', 'TCG = "generalist"', "codes.teleconsultation"),
    ('service = "OBR-4.1"', 'service = "PV1-4.1"', "teleconsultation.service"),
    ('performer = ["PV1-7", "ORC-12"]', 'performer = ["PV1-7.1"]', "teleconsultation.performer"),
    ('majoration_value = "OBX-5.1"', 'majoration_value = "OBX 5"',
     'teleconsultation.majoration_value'),
    ('majoration = "OBX-3.1"', 'majorations = "OBX-3.1"', "teleconsultation.majorations"),
    ('inpatient_classes = ["I"]', 'inpatient_classes = "I"', "codes.inpatient_classes"),
    ('patient_class = ["PV1-2"]', 'patient_class = []', "positions.patient_class"),
])
def test_malformed_billing_parts_of_the_mapping_are_refused_naming_the_key(tmp_path, old, new,
                                                                          key):
    path = tmp_path / "orm.toml"
    path.write_text(MAPPING_FILE.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    # the key itself, or an entry of it (`[codes.priority.S]`, `[positions.sex[0]]`)
    assert any(str(path) in p.where and f"[{key}" in p.where for p in exc.value.problems)
