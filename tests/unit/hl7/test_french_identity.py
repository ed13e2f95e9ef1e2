"""French national identity in orders and any PID: INS (PID-3) and its status (PID-32), test and
demo INS refused outside test mode, IdNatPS/RPPS practitioners, FINESS facilities."""

from dataclasses import replace

import pytest

from connector.config import load_config
from connector.domain.errors import ConfigError, DomainError
from connector.domain.model import Patient, PersonName, valid_ins
from connector.hl7.errors import Hl7Error
from connector.hl7.orm import MAPPING_FILE, load_mapping, order_from_orm, patient_from_message
from connector.hl7.parse import parse
from connector.mappings import load_mappings
from tests.support.cli import EXAMPLE_DEVICES

IPP = "IPP0012345^^^CHU_NIMES^PI"
NIR = "279035121518989"  # key 89 = 97 - 2790351215189 mod 97
INS_NIR = f"{NIR}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
INS_NIA = f"{NIR}^^^ASIP-SANTE-INS-NIA&1.2.250.1.213.1.4.9&ISO^INS"
INS_TEST = f"{NIR}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
INS_DEMO = f"{NIR}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.11&ISO^INS"
IDNATPS = "1.2.250.1.71.4.2.1"


@pytest.fixture
def edit(sample):
    """The NW sample with (segment, field, value) changes, as a parsed message."""
    text = sample("orm_o01_nw.hl7").decode("utf-8")

    def make(*changes):
        segments = [s for s in text.split("\r") if s]
        for segment_id, field, value in changes:
            i = next(i for i, seg in enumerate(segments) if seg.startswith(segment_id + "|"))
            fields = segments[i].split("|")
            fields += [""] * (field + 1 - len(fields))
            fields[field] = value
            segments[i] = "|".join(fields)
        return parse(("\r".join(segments) + "\r").encode("utf-8"))
    return make


def patient(edit, pid3, pid32="", mapping=None):
    return order_from_orm(edit(("PID", 3, pid3), ("PID", 32, pid32)), mapping)[1].patient


def refusal(call, *args) -> Hl7Error:
    with pytest.raises(Hl7Error) as exc:
        call(*args)
    return exc.value


# --- INS and identity status --------------------------------------------------------------

def test_ins_without_a_status_is_kept_unusable_and_the_ipp_identifies_the_patient(edit):
    p = patient(edit, f"{IPP}~{INS_NIR}")
    assert (p.id, p.issuer) == ("IPP0012345", "CHU_NIMES")
    assert (p.ins, p.ins_oid, p.identity_status, p.ins_usable) == (
        NIR, "1.2.250.1.213.1.4.8", "", False)
    assert p.other_ids == ()  # an unusable INS is sent nowhere


@pytest.mark.parametrize("status", ["PROV", "VALI", "RECUP"])
def test_ins_of_an_identity_that_is_not_qualified_is_not_the_patient_id(edit, status):
    p = patient(edit, f"{IPP}~{INS_NIR}", status)
    assert (p.id, p.identity_status, p.ins_usable, p.other_ids) == (
        "IPP0012345", status, False, ())


def test_qualified_ins_identifies_the_patient_and_the_ipp_goes_alongside(edit):
    p = patient(edit, f"{IPP}~{INS_NIR}", "QUAL")
    assert (p.id, p.issuer, p.identity_status, p.ins_usable) == (
        NIR, "1.2.250.1.213.1.4.8", "QUAL", True)
    assert p.other_ids == (("IPP0012345", "CHU_NIMES"),)


def test_an_ipp_of_another_facility_is_another_identifier_and_an_account_number_is_not(edit):
    pid3 = f"{IPP}~IPP-77^^^CH_ALES^PI~ACC-1^^^CHU_NIMES^AN~LEGACY-9^^^OLD_PAS"
    p = patient(edit, pid3)
    assert (p.id, p.issuer) == ("IPP0012345", "CHU_NIMES")
    assert p.other_ids == (("IPP-77", "CH_ALES"), ("LEGACY-9", "OLD_PAS"))
    q = patient(edit, f"{pid3}~{INS_NIR}", "QUAL")
    assert (q.id, q.other_ids) == (NIR, (("IPP0012345", "CHU_NIMES"), ("IPP-77", "CH_ALES"),
                                         ("LEGACY-9", "OLD_PAS")))


def test_qualified_nia_is_used_like_a_nir(edit):
    p = patient(edit, f"{INS_NIA}~{IPP}", "QUAL")
    assert (p.id, p.issuer) == (NIR, "1.2.250.1.213.1.4.9")


def test_mapping_can_keep_the_ipp_as_patient_id_and_send_the_qualified_ins_alongside(
        tmp_path, edit):
    path = tmp_path / "orm.toml"
    path.write_text(MAPPING_FILE.read_text(encoding="utf-8").replace(
        'qualified_patient_id = "ins"', 'qualified_patient_id = "local"'), encoding="utf-8")
    p = patient(edit, f"{IPP}~{INS_NIR}", "QUAL", load_mapping(path))
    assert (p.id, p.issuer) == ("IPP0012345", "CHU_NIMES")
    assert p.other_ids == ((NIR, "1.2.250.1.213.1.4.8"),)


@pytest.mark.parametrize("pid32,status,flags", [
    ("QUAL~DOUT", "PROV", ("DOUT",)),          # doubtful identity: provisional, whatever sent
    ("FICT~VALI", "PROV", ("FICT",)),
    ("PROV~QUAL", "PROV", ()),                 # two statuses: the weakest wins
    ("VIDE", "", ()),                          # legacy "not filled": accepted, ignored
    ("QUAL~IDVER~homd", "QUAL", ("IDVER", "HOMD")),  # attributes are kept
])
def test_identity_reliability_codes_give_one_status_and_flags(edit, pid32, status, flags):
    p = patient(edit, f"{IPP}~{INS_NIR}", pid32)
    assert (p.identity_status, p.identity_flags) == (status, flags)
    assert p.ins_usable is (status == "QUAL")


def test_unknown_reliability_code_gives_103_at_its_repetition(edit):
    error = refusal(patient, edit, IPP, "QUAL~ZZZ")
    assert (error.hl7_code, error.location) == ("103", "PID^1^32^2")


@pytest.mark.parametrize("ins,kind", [(INS_TEST, "test"), (INS_DEMO, "demo")])
def test_test_and_demo_ins_are_refused_in_production_at_their_repetition(edit, ins, kind):
    error = refusal(patient, edit, f"{IPP}~{ins}", "QUAL")
    assert (error.hl7_code, error.location, error.ack_code) == ("103", "PID^1^3^2", "AE")
    assert f"{kind} INS" in error.text and "refused in production" in error.text
    assert NIR not in error.text + error.hint


@pytest.mark.parametrize("ins,oid", [(INS_TEST, "1.2.250.1.213.1.4.10"),
                                     (INS_DEMO, "1.2.250.1.213.1.4.11")])
def test_test_and_demo_ins_are_accepted_in_test_mode(edit, ins, oid):
    mapping = replace(load_mapping(), test_mode=True)
    p = patient(edit, f"{IPP}~{ins}", "QUAL", mapping)
    assert (p.id, p.issuer, p.other_ids) == (NIR, oid, (("IPP0012345", "CHU_NIMES"),))


def test_test_mode_comes_from_the_config_into_the_loaded_mapping(tmp_path):
    config_file = tmp_path / "telederm.toml"
    config_file.write_text("[hl7]\ntest_mode = true\n", encoding="utf-8")
    config = load_config(config_file, environ=EXAMPLE_DEVICES)
    assert config.hl7.test_mode is True
    assert load_mappings(config).orm.test_mode is True
    assert load_mappings(load_config(environ=EXAMPLE_DEVICES)).orm.test_mode is False


def test_ins_with_a_wrong_key_gives_102_at_its_repetition(edit):
    wrong = INS_NIR.replace(NIR, NIR[:-2] + "12")
    error = refusal(patient, edit, f"{IPP}~{wrong}")
    assert (error.hl7_code, error.location) == ("102", "PID^1^3^2")


def test_identifier_typed_ins_under_another_authority_is_refused(edit):
    wrong = f"{NIR}^^^INS-C&1.2.250.1.213.1.4.2&ISO^INS"
    error = refusal(patient, edit, f"{IPP}~{wrong}")
    assert (error.hl7_code, error.location) == ("103", "PID^1^3^2")


def test_unqualified_ins_alone_gives_101_at_pid_3(edit):
    error = refusal(patient, edit, INS_NIR, "VALI")
    assert (error.hl7_code, error.location) == ("101", "PID^1^3")
    assert "not qualified" in error.text


def test_ipp_is_the_repetition_typed_pi_else_the_untyped_one(edit):
    assert patient(edit, "ACC-1^^^CHU^AN~IPP-2^^^CHU^PI").id == "IPP-2"
    assert patient(edit, "ACC-1^^^CHU^AN~IPP-3^^^CHU").id == "IPP-3"
    assert refusal(patient, edit, "ACC-1^^^CHU^AN").location == "PID^1^3"


def test_local_authorities_keep_only_the_facility_ipp(tmp_path, edit):
    path = tmp_path / "orm.toml"
    path.write_text(MAPPING_FILE.read_text(encoding="utf-8").replace(
        "local_authorities = []", 'local_authorities = ["CHU_NIMES"]'), encoding="utf-8")
    p = patient(edit, "OTHER-1^^^CLINIQUE^PI~IPP-9^^^CHU_NIMES^PI", "", load_mapping(path))
    assert (p.id, p.issuer) == ("IPP-9", "CHU_NIMES")


def test_patient_from_message_reads_the_same_identity_for_any_message(edit):
    msg = edit(("PID", 3, f"{IPP}~{INS_NIR}"), ("PID", 32, "QUAL"))
    p = patient_from_message(msg)
    assert (p.id, p.ins_usable, p.other_ids) == (NIR, True, (("IPP0012345", "CHU_NIMES"),))
    assert patient_from_message(msg, load_mapping()) == p


def test_domain_refuses_an_unqualified_ins_as_identifier():
    with pytest.raises(DomainError):
        Patient(NIR, PersonName("X"), issuer="1.2.250.1.213.1.4.8", ins=NIR,
                ins_oid="1.2.250.1.213.1.4.8", identity_status="VALI")
    with pytest.raises(DomainError):
        Patient("IPP", PersonName("X"), ins=NIR, ins_oid="1.2.250.1.213.1.4.8",
                other_ids=((NIR, "1.2.250.1.213.1.4.8"),))
    assert valid_ins("2790351215189" + "89") and not valid_ins("2790351215189" + "88")


def test_corsican_nir_key_reads_2a_as_19():
    body = "18502" + "2A" + "123456"  # 13 characters with 2A at positions 6-7
    key = 97 - int(body.replace("2A", "19")) % 97
    assert valid_ins(f"{body}{key:02d}")


# --- practitioners (IdNatPS, RPPS) --------------------------------------------------------

def test_rpps_based_idnatps_keeps_the_rpps(edit):
    order = order_from_orm(edit())[1]
    r = order.requester
    assert (r.id, r.authority, r.id_type, r.rpps) == (
        "801234567897", IDNATPS, "IDNPS", "01234567897")


def test_bare_rpps_is_read_from_its_identifier_type(edit):
    r = order_from_orm(edit(("ORC", 12, "10001234567^DURAND^Marc^^^^^^^^^^RPPS")))[1].requester
    assert (r.id, r.id_type, r.rpps) == ("10001234567", "RPPS", "10001234567")


def test_local_practitioner_id_has_no_rpps(edit):
    r = order_from_orm(edit(("ORC", 12, "DOC42^DURAND^Marc")))[1].requester
    assert (r.id, r.id_type, r.rpps) == ("DOC42", "", "")


def test_malformed_rpps_based_idnatps_gives_102_where_the_requester_was_read(edit):
    bad = f"8123^DURAND^Marc^^^^^^ASIP-SANTE-PS&{IDNATPS}&ISO^D^^^IDNPS"
    error = refusal(order_from_orm, edit(("ORC", 12, bad)))
    assert (error.hl7_code, error.location) == ("102", "ORC^1^12")


# --- facilities (FINESS) ------------------------------------------------------------------

XON = "CHU de Nîmes^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^FINEG^^^300780038"


def test_finess_is_read_from_orc21(edit):
    f = order_from_orm(edit(("ORC", 21, XON)))[1].facility
    assert (f.finess, f.name, f.kind) == ("300780038", "CHU de Nîmes", "FINEG")


def test_finess_is_read_from_orc17_then_msh4(edit):
    f = order_from_orm(edit(("ORC", 17, "300780038^CHU de Nîmes^FINEJ")))[1].facility
    assert (f.finess, f.kind) == ("300780038", "FINEJ")
    f = order_from_orm(edit(("MSH", 3, "CHU_NIMES^300780038")))[1].facility  # MSH-4
    assert (f.finess, f.name) == ("300780038", "CHU_NIMES")
    f = order_from_orm(edit())[1].facility
    assert (f.finess, f.name) == ("", "CHU_NIMES")


def test_malformed_finess_where_one_is_announced_gives_102(edit):
    error = refusal(order_from_orm, edit(("ORC", 21, XON.replace("300780038", "30078"))))
    assert (error.hl7_code, error.location) == ("102", "ORC^1^21")


@pytest.mark.parametrize("old,new,key", [
    ('"1.2.250.1.213.1.4.10" = "test"', '"1.2.250.1.213.1.4.10" = "testing"',
     "identity.ins_authorities"),
    ('qualified_patient_id = "ins"', 'qualified_patient_id = "nir"',
     "identity.qualified_patient_id"),
    ('DOUT = "doubt"', 'DOUT = "doubtful"', "codes.identity_reliability"),
    ('reliability = "PID-32"', 'reliability = "PV1-32"', "identity.reliability"),
    ('xon = ["ORC-21"]', 'xon = ["ORC-21.10"]', "facility.xon"),
    ('source = "obx"', 'source = "segment"', "consent.source"),
    ('answer = "OBX-5.1"', 'answer = "CON-5.1"', "consent.answer"),
])
def test_malformed_identity_or_consent_mapping_names_file_and_key(tmp_path, old, new, key):
    path = tmp_path / "orm.toml"
    text = MAPPING_FILE.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    # the key itself, or an entry of it (`[codes.priority.S]`, `[positions.sex[0]]`)
    assert any(str(path) in p.where and f"[{key}" in p.where for p in exc.value.problems)
