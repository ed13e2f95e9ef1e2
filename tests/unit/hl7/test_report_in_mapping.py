"""ORU^R01 / MDM^T02 / MDM^T10 from a reporting system -> InboundReport
(connector/hl7/report_in.py) and the checks on mappings/hl7/report_in.toml."""

from pathlib import Path

import pytest

from connector.domain.errors import ConfigError
from connector.hl7.errors import Hl7Error
from connector.hl7.parse import parse
from connector.hl7.report_in import MAPPING_FILE, events, load_mapping, read_report

CONDUCTS = {"no_visit", "routine_visit", "urgent_visit", "biopsy", "more_images", "treatment",
            "see_report"}
PID = "PID|1||IPP-7^^^CHU_DEMO^PI||DURAND^Éloïse||19610203|F"


def segment(name: str, fields: dict[int, str]) -> str:
    values = [""] * (max(fields) + 1)
    for n, value in fields.items():
        values[n] = value
    return "|".join([name, *values[1:]])


def oru(*obx: str, obr: str = "", orc: str = "ORC|RE|PL-1^DPI_HOPITAL|TD00000001",
        status: str = "F") -> bytes:
    obr = obr or (f"OBR|1|PL-1^DPI_HOPITAL|TD00000001|TELEDERM||||||||||||||||||||||{status}"
                  "||||||810001234567&LEROY&Claire&&&&&&&1.2.250.1.71.4.2.1&ISO")
    obx = obx or (f"OBX|1|TX|REPORT^Compte rendu^L||Naevus bénin.||||||{status}",
                  f"OBX|2|TX|REPORT^Compte rendu^L||Surveillance annuelle.||||||{status}",
                  f"OBX|3|CE|CONDUCT^Conduite à tenir^L||biopsy^Biopsie^L||||||{status}")
    segments = ["MSH|^~\\&|RIS_DERMATO|CABINET|TELEDERM|TELEDERM|20261124100000||ORU^R01^ORU_R01|"
                "R-1|P|2.5|||||FRA|UNICODE UTF-8", PID, orc, obr, *obx]
    return ("\r".join(s for s in segments if s) + "\r").encode()


def mdm(trigger: str, *obx: str, txa: str = "") -> bytes:
    txa = txa or segment("TXA", {1: "1", 2: "CR", 3: "TX", 4: "20261124100000", 12: "DOC-1",
                                 14: "PL-1^DPI_HOPITAL", 15: "TD00000001", 17: "AU",
                                 22: "810001234567^LEROY^Claire^^^^^^"
                                     "ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO"})
    obx = obx or ("OBX|1|FT|REPORT^Compte rendu^L||"
                  "Naevus bénin.\\.br\\Contrôle dans un an.||||||F",)
    segments = [f"MSH|^~\\&|DMP_DERMATO|CABINET|TELEDERM|TELEDERM|20261124100000||MDM^{trigger}"
                f"^MDM_T02|M-1|P|2.5|||||FRA|UNICODE UTF-8", "EVN|" + trigger, PID, "PV1|1|O",
                txa, *obx]
    return ("\r".join(segments) + "\r").encode()


def error_of(raw: bytes, **kwargs) -> Hl7Error:
    with pytest.raises(Hl7Error) as exc:
        read_report(parse(raw), conducts=CONDUCTS, **kwargs)
    return exc.value


def test_oru_gives_case_text_conduct_and_the_obr32_dermatologist():
    got = read_report(parse(oru()), conducts=CONDUCTS)
    assert (got.accession, got.accession_location) == ("TD00000001", "OBR^1^3")
    assert (got.placer_order_number, got.placer_namespace) == ("PL-1", "DPI_HOPITAL")
    assert got.text == "Naevus bénin.\nSurveillance annuelle."
    assert (got.conduct, got.conduct_location) == ("biopsy", "OBX^3^5")
    s = got.specialist
    assert (s.id, s.name.family, s.name.given, s.authority) == (
        "810001234567", "LEROY", "Claire", "1.2.250.1.71.4.2.1")
    assert got.correction is False and got.status_location == "OBX^1^11"


def test_obx11_c_is_a_correction():
    assert read_report(parse(oru(status="C")), conducts=CONDUCTS).correction is True


@pytest.mark.parametrize("trigger,correction", [("T02", False), ("T10", True)])
def test_mdm_reads_txa_and_ft_line_breaks(trigger, correction):
    got = read_report(parse(mdm(trigger)), conducts=CONDUCTS)
    assert (got.accession, got.accession_location) == ("TD00000001", "TXA^1^15")
    assert (got.placer_order_number, got.placer_location) == ("PL-1", "TXA^1^14")
    assert got.text == "Naevus bénin.\nContrôle dans un an."
    assert (got.conduct, got.conduct_location) == ("see_report", "")  # none sent: the default
    s = got.specialist
    assert (s.id, s.name.family, s.name.given, s.authority) == (
        "810001234567", "LEROY", "Claire", "1.2.250.1.71.4.2.1")
    assert got.correction is correction


def test_repetitions_and_obx16_observer_and_sender_conduct_codes():
    raw = oru("OBX|1|TX|REPORT||Ligne 1~Ligne 2||||||F|||||810009999999^MOREAU^Luc",
              "OBX|2|CWE|CONDUITE||CONSULTATION_URGENTE^Consultation urgente^L||||||F",
              obr="OBR|1|PL-1^DPI_HOPITAL|TD00000001|TELEDERM")
    got = read_report(parse(raw), conducts=CONDUCTS)
    assert got.text == "Ligne 1\nLigne 2"
    assert got.conduct == "urgent_visit"
    assert (got.specialist.id, got.specialist.name.family) == ("810009999999", "MOREAU")


def test_placer_alone_names_the_case():
    got = read_report(parse(oru(orc="ORC|RE|PL-1^DPI_HOPITAL",
                                obr="OBR|1|PL-1^DPI_HOPITAL||TELEDERM||||||||||||||||||||||F"
                                    "||||||810001234567&LEROY&Claire")), conducts=CONDUCTS)
    assert (got.accession, got.placer_order_number) == ("", "PL-1")


@pytest.mark.parametrize("raw,code,location", [
    (oru(orc="ORC|RE", obr="OBR|1|||TELEDERM||||||||||||||||||||||F||||||1&A&B"), "101",
     "OBR^1^3"),                                                   # no case named
    (oru("OBX|1|CE|CONDUCT||biopsy||||||F"), "101", "OBX^1^5"),    # no text
    (oru("OBX|1|TX|REPORT||   ||||||F"), "101", "OBX^1^5"),        # blank text
    (oru(status="P"), "103", "OBX^1^11"),                          # preliminary
    (oru(status="D"), "103", "OBX^1^11"),                          # deleted: not this way
    (oru("OBX|1|TX|REPORT||Texte||||||"), "101", "OBX^1^11"),      # no status anywhere
    (oru("OBX|1|TX|REPORT||Texte||||||F", "OBX|2|CE|CONDUCT||amputation||||||F"), "103",
     "OBX^2^5"),                                                   # conduct not in the tables
    (oru("OBX|1|TX|REPORT||Texte||||||F", "OBX|2|CE|CONDUCT||||||||F"), "101", "OBX^2^5"),
    (oru(obr="OBR|1|PL-1|TD00000001|TELEDERM||||||||||||||||||||||F"), "101", "OBR^1^32"),
    (oru(obr="OBR|1|PL-1|TD00000001|TELEDERM||||||||||||||||||||||F||||||81000&&Claire"),
     "101", "OBR^1^32"),                                           # dermatologist without name
    (mdm("T02", txa=segment("TXA", {1: "1", 14: "PL-1", 15: "TD00000001", 17: "AU"})), "101",
     "TXA^1^22"),
    (oru(obr="OBR|1|PL-1|TD00000001|TELEDERM\rOBR|2|PL-2|TD00000002|TELEDERM"), "100", "OBR^2"),
])
def test_errors_are_located(raw, code, location):
    err = error_of(raw)
    assert (err.hl7_code, err.location, err.ack_code) == (code, location, "AE")
    for value in ("Naevus", "Texte", "IPP-7", "DURAND", "amputation", "LEROY"):
        assert value not in err.text


def test_conduct_required_when_the_mapping_has_no_default(tmp_path):
    text = MAPPING_FILE.read_text(encoding="utf-8").replace('when_absent = "see_report"',
                                                           'when_absent = ""')
    path = tmp_path / "report_in.toml"
    path.write_text(text, encoding="utf-8")
    err = error_of(mdm("T02"), mapping=load_mapping(path))
    assert (err.hl7_code, err.location) == ("101", "OBX^1")


def test_shipped_mapping_events():
    m = load_mapping(MAPPING_FILE)
    assert events(m) == {("ORU", "R01"), ("MDM", "T02"), ("MDM", "T10")}
    assert m.corrections == {("MDM", "T10")}


@pytest.mark.parametrize("old,new,key", [
    ('ORU = ["R01"]', 'ORU = []', "events.ORU"),
    ('ORU = ["R01"]', 'oru = ["R01"]', "events.oru"),
    ('corrections = ["MDM^T10"]', 'corrections = ["MDM^T04"]', "events.corrections"),
    ('accession = ["OBR-3.1", "ORC-3.1", "TXA-15.1"]', 'accession = ["OBR3"]',
     "positions.accession[0]"),
    ('{ position = "OBR-32", type = "NDL" }', '{ position = "OBR-32", type = "CNN" }',
     "report.specialist[0].type"),
    ('{ position = "OBR-32", type = "NDL" }', '{ position = "OBR-32.1", type = "NDL" }',
     "report.specialist[0].position"),
    ('observation = "OBX-3.1"', 'observation = "OBR-3.1"', "conduct.observation"),
    ('when_absent = "see_report"', 'when_absent = "See report"', "conduct.when_absent"),
    ('F = "final"', 'F = "done"', "codes.status.F"),
    ('CONSEILS = "no_visit"', 'CONSEILS = "No visit"', "codes.conduct.CONSEILS"),
    ('text_value_types = ["TX", "FT"]', 'text_value_types = []', "report.text_value_types"),
])
def test_a_bad_mapping_file_names_the_key(tmp_path: Path, old, new, key):
    text = MAPPING_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "report_in.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    assert exc.value.where == f"{path} [{key}]"


def test_a_bad_mapping_file_names_every_bad_key_at_once(tmp_path: Path):
    text = MAPPING_FILE.read_text(encoding="utf-8")
    for old, new in (('ORU = ["R01"]', 'ORU = []'), ('F = "final"', 'F = "done"'),
                     ('observation = "OBX-3.1"', 'observation = "OBR-3.1"')):
        text = text.replace(old, new)
    path = tmp_path / "report_in.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path)
    assert sorted(p.where for p in exc.value.problems) == [
        f"{path} [{key}]" for key in ("codes.status.F", "conduct.observation", "events.ORU")]
