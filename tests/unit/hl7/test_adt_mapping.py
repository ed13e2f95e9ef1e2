"""ADT^A08 / A31 / A40 / A47 / A24 / A37 -> PatientUpdate / PatientMerge / IdentifierChange /
PatientLink (connector/hl7/adt.py) and the checks on mappings/hl7/adt.toml."""

from pathlib import Path

import pytest

from connector.domain.errors import ConfigError
from connector.hl7.adt import (MAPPING_FILE, IdentifierChange, PatientLink, PatientMerge,
                               PatientUpdate, events, load_mapping, read_adt)
from connector.hl7.errors import Hl7Error
from connector.hl7.parse import parse

LINKS = 'link = ["A24"]\nunlink = ["A37"]\n'
LINK = '[link]\nsecond_patient = 2\n'
PID = "PID|1||IPP-7^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI||DURAND^Éloïse^^^^^L||19610203|F"


def adt(trigger: str, *segments: str, structure: str = "") -> bytes:
    msh = (f"MSH|^~\\&|SIH|CHU_DEMO|TELEDERM|TELEDERM|20261124090000||ADT^{trigger}"
           f"{'^' + structure if structure else ''}|ADT-{trigger}-1|P|2.5|||||FRA|UNICODE UTF-8")
    return ("\r".join([msh, f"EVN|{trigger}|20261124090000", *segments]) + "\r").encode()


def error_of(raw: bytes) -> Hl7Error:
    with pytest.raises(Hl7Error) as exc:
        read_adt(parse(raw))
    return exc.value


@pytest.mark.parametrize("trigger,structure", [("A08", "ADT_A01"), ("A31", "ADT_A05")])
def test_update_events_give_the_patient_read_like_an_order(trigger, structure):
    got = read_adt(parse(adt(trigger, PID, "PV1|1|O", structure=structure)))
    assert isinstance(got, PatientUpdate) and got.event == trigger
    p = got.patient
    assert (p.id, p.issuer, p.name.family, p.name.given, p.birth_date, p.sex) == (
        "IPP-7", "1.2.250.1.999.1", "DURAND", "Éloïse", "19610203", "F")


def test_merge_gives_surviving_patient_and_prior_identifier_with_its_authority():
    got = read_adt(parse(adt("A40", PID, "MRG|IPP-OLD^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI",
                             structure="ADT_A39")))
    assert isinstance(got, PatientMerge)
    assert (got.surviving.id, got.prior_id, got.prior_issuer, got.prior_location) == (
        "IPP-7", "IPP-OLD", "1.2.250.1.999.1", "MRG^1^1")


def test_prior_authority_falls_back_to_the_namespace_like_pid3():
    got = read_adt(parse(adt("A40", PID, "MRG|IPP-OLD^^^LOCAL_NS")))
    assert got.prior_issuer == "LOCAL_NS"


@pytest.mark.parametrize("segments,code,location", [
    ((PID,), "100", "MRG^1"),                                    # no MRG at all
    ((PID, "MRG|^^^CHU_DEMO"), "101", "MRG^1^1"),                # empty prior id
    ((PID, "MRG|" + "9" * 65), "102", "MRG^1^1"),                # longer than PID-3 allows
    (("PID|1||||DURAND^Éloïse", "MRG|IPP-OLD"), "101", "PID^1^3"),  # surviving id missing
])
def test_merge_errors_are_located(segments, code, location):
    err = error_of(adt("A40", *segments))
    assert (err.hl7_code, err.location, err.ack_code) == (code, location, "AE")
    assert "IPP" not in err.text and "DURAND" not in err.text


def test_update_errors_come_from_the_shared_pid_reader():
    err = error_of(adt("A08", "PID|1||IPP-7^^^CHU_DEMO||DURAND^Éloïse||19610231|F"))
    assert (err.hl7_code, err.location) == ("102", "PID^1^7")
    err = error_of(adt("A31", "PID|1||IPP-7^^^CHU_DEMO||DURAND^Éloïse||19610203|Z"))
    assert (err.hl7_code, err.location) == ("103", "PID^1^8")


def test_an_event_not_in_the_mapping_is_unsupported_ar():
    err = error_of(adt("A01", PID))
    assert (err.hl7_code, err.location, err.ack_code) == ("201", "MSH^1^9^2", "AR")


def test_shipped_mapping_takes_a08_a31_a40_a47_a24_a37():
    m = load_mapping(MAPPING_FILE)
    assert m.update_events == {"A08", "A31"} and m.merge_events == {"A40"}
    assert m.change_identifier_events == {"A47"}
    assert (m.link_events, m.unlink_events, m.second_patient) == ({"A24"}, {"A37"}, 2)
    assert events(m) == {("ADT", e) for e in ("A08", "A31", "A40", "A47", "A24", "A37")}


@pytest.mark.parametrize("trigger,structure,linked", [("A24", "ADT_A24", True),
                                                      ("A37", "ADT_A37", False)])
def test_link_events_give_both_patients(trigger, structure, linked):
    other = "PID|2||IPP-8^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI||DURAND^Eloise^^^^^L||19610203|F"
    got = read_adt(parse(adt(trigger, PID, "PV1|1|N", other, structure=structure)))
    assert isinstance(got, PatientLink) and (got.event, got.link) == (trigger, linked)
    assert (got.patient.id, got.other.id, got.other.name.given) == ("IPP-7", "IPP-8", "Eloise")


def test_a_link_whose_second_pid_is_bad_is_refused_at_that_pid():
    other = "PID|2||IPP-8^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI||DURAND^Eloise^^^^^L||1961|F"
    err = error_of(adt("A24", PID, other, structure="ADT_A24"))
    assert (err.hl7_code, err.location) == ("102", "PID^2^7")


def test_change_of_identifier_gives_the_new_patient_and_the_replaced_identifier():
    got = read_adt(parse(adt("A47", PID, "MRG|IPP-OLD^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI",
                             structure="ADT_A30")))
    assert isinstance(got, IdentifierChange) and got.event == "A47"
    assert (got.patient.id, got.prior_id, got.prior_issuer) == (
        "IPP-7", "IPP-OLD", "1.2.250.1.999.1")


@pytest.mark.parametrize("link,key", [("", "link"), (LINK.replace("2", "1"),
                                                      "link.second_patient")])
def test_a_bad_link_section_names_the_key(tmp_path: Path, link, key):
    path = tmp_path / "adt.toml"
    path.write_text('[events]\nupdate = ["A08"]\nmerge = ["A40"]\nchange_identifier = ["A47"]\n'
                    + LINKS + '[merge]\nprior_patient_id = "MRG-1"\n' + link, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    assert exc.value.where == f"{path} [{key}]"


@pytest.mark.parametrize("body,key", [
    ('[events]\nupdate = ["A08"]\nchange_identifier = ["A47"]\n'
     + LINKS + '[merge]\n'
     'prior_patient_id = "MRG-1"\n', "events.merge"),
    ('[events]\nupdate = ["A08"]\nmerge = ["A08"]\nchange_identifier = ["A47"]\n'
     + LINKS + '[merge]\n'
     'prior_patient_id = "MRG-1"\n', "events"),
    ('[events]\nupdate = ["A08"]\nmerge = ["A40"]\nchange_identifier = ["A40"]\n'
     + LINKS + '[merge]\n'
     'prior_patient_id = "MRG-1"\n', "events"),
    ('[events]\nupdate = ["A08"]\nmerge = ["A40"]\nchange_identifier = ["A47"]\n'
     'link = ["A24"]\nunlink = ["A24"]\n[merge]\nprior_patient_id = "MRG-1"\n', "events"),
    ('[events]\nupdate = ["ADT08"]\nmerge = ["A40"]\nchange_identifier = ["A47"]\n'
     + LINKS + '[merge]\n'
     'prior_patient_id = "MRG-1"\n',
     "events.update"),
    ('[events]\nupdate = ["A08"]\nmerge = ["A40"]\nchange_identifier = ["A47"]\n'
     + LINKS + '[merge]\n'
     'prior_patient_id = "MRG-1.1"\n',
     "merge.prior_patient_id"),
    ('[events]\nupdate = ["A08"]\nmerge = ["A40"]\nchange_identifier = ["A47"]\n'
     + LINKS + '[merge]\n'
     'prior_patient_id = "PID-3"\n',
     "merge.prior_patient_id"),
    ('[events]\nupdate = ["A08"]\nmerge = ["A40"]\nchange_identifier = ["A47"]\n'
     + LINKS, "merge"),
])
def test_a_bad_mapping_file_names_the_key(tmp_path: Path, body, key):
    path = tmp_path / "adt.toml"
    path.write_text(body + LINK, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    assert exc.value.where == f"{path} [{key}]"


def test_an_unreadable_mapping_file_names_the_file(tmp_path: Path):
    path = tmp_path / "adt.toml"
    path.write_text("[events\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    assert exc.value.where == str(path)


def test_a_bad_mapping_file_names_every_bad_key_at_once(tmp_path: Path):
    path = tmp_path / "adt.toml"
    path.write_text('[events]\nupdate = ["ADT08"]\nmerge = []\nchange_identifier = ["A47"]\n'
                    + LINKS + '[merge]\n'
                    'prior_patient_id = "PID-3"\n' + LINK, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    assert [p.where for p in exc.value.problems] == [
        f"{path} [{key}]" for key in ("events.update", "events.merge", "merge.prior_patient_id")]
