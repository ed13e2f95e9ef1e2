import base64
from pathlib import Path

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from connector.billing.facilities import load_facilities
from connector.billing.tariffs import load_tariffs
from connector.domain.model import Charge, PersonName, Practitioner, Report
from connector.hl7.dft import build_dft
from connector.hl7.orm import order_from_orm
from connector.hl7.oru import MAX_FIELD, build_oru, pdf_fits
from connector.hl7.parse import encode, parse

NOW = "20261116121000"
SPECIALIST = Practitioner("810000000001", PersonName("DURAND", "Amélie"), "1.2.250.1.71.4.2.1")
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40  # ~10 KB: base64 must stay on one line


@pytest.fixture
def order(sample):
    return order_from_orm(parse(sample("orm_o01_nw.hl7")))[1]


def oru(order, *, status="F", viewer_url="https://viewer.example/study?uid=1.2.3&frame=1"):
    report = Report("Kératose séborrhéique | bénigne.\n\nSurveillance ^ simple, pas d'exérèse.\n",
                    "SURV", SPECIALIST, "20261116120000", status)
    return build_oru(control_id="ORU-1", now=NOW, case_accession="TD-2026-000042",
                     study_uid="1.2.826.0.1.3680043.10.1.42", order=order, report=report,
                     conduct_label="Surveillance simple", pdf=PDF, viewer_url=viewer_url,
                     sending=("TELEDERM", "TELEDERM"), receiving=("DPI_CHU", "CHU_NIMES"))


def hl7apy_accepts(text: str) -> bool:
    msg = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    return msg.validate()


def test_oru_header_patient_order_and_request(order):
    msg = hl7.parse(oru(order))
    assert str(msg.segment("MSH")(9)) == "ORU^R01^ORU_R01"
    assert (msg["MSH.F10"], msg["MSH.F12"], msg["MSH.F18"]) == ("ORU-1", "2.5", "UNICODE UTF-8")
    assert (msg["MSH.F5"], msg["MSH.F6"]) == ("DPI_CHU", "CHU_NIMES")
    assert (msg["PID.F3"], msg["PID.F3.R1.C4"], msg["PID.F5.R1.C1"], msg["PID.F5.R1.C2"]) == (
        "IPP0012345", "CHU_NIMES", "LEFÈVRE", "Hélène")
    assert (msg["PID.F7"], msg["PID.F8"], msg["PV1.F2"]) == ("19720314", "F", "O")
    assert (msg["ORC.F1"], msg["ORC.F2"], msg["ORC.F3"], msg["ORC.F12"]) == (
        "RE", "CMD-2026-0042", "TD-2026-000042", "801234567897")
    assert msg["ORC.F12.R1.C9.S2"] == "1.2.250.1.71.4.2.1"
    assert (msg["OBR.F2"], msg["OBR.F3"], msg["OBR.F4.R1.C1"]) == (
        "CMD-2026-0042", "TD-2026-000042", "TELEDERM")
    assert (msg["OBR.F7"], msg["OBR.F22"], msg["OBR.F25"]) == ("20261116120000", NOW, "F")
    assert msg["OBR.F32.R1.C1.S1"] == "810000000001" and msg["OBR.F32.R1.C1.S2"] == "DURAND"


def test_oru_observations_carry_lines_conduct_uid_link_and_pdf(order):
    obx = hl7.parse(oru(order)).segments("OBX")
    types = [str(o(2)) for o in obx]
    assert types == ["TX", "TX", "TX", "CE", "ST", "RP", "ED"]
    assert [str(o(1)) for o in obx] == [str(n) for n in range(1, 8)]
    assert all(str(o(11)) == "F" for o in obx)
    lines = [o.extract_field(1, 5) for o in obx[:3]]
    assert lines == ["Kératose séborrhéique | bénigne.", "",
                     "Surveillance ^ simple, pas d'exérèse."]
    assert str(obx[3](5)) == "SURV^Surveillance simple^L"
    assert str(obx[4](5)) == "1.2.826.0.1.3680043.10.1.42"
    assert obx[5].extract_field(1, 5, 1, 1) == "https://viewer.example/study?uid=1.2.3&frame=1"
    ed = obx[6](5)(1)
    assert [str(ed(i)) for i in range(2, 5)] == ["AP", "PDF", "Base64"]
    assert base64.b64decode(str(ed(5))) == PDF


@pytest.mark.parametrize("pid3", ["IPP123456^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI",
                                  "IPP123456^^^CHU_DEMO^PI", "IPP123456^^^&1.2.250.1.999.1&ISO",
                                  "IPP123456^^^CHU_DEMO"])
def test_pid3_of_the_order_goes_back_whole(sample, pid3):
    raw = sample("orm_o01_nw.hl7").replace(
        "PID|1||IPP0012345^^^CHU_NIMES^PI~".encode(), f"PID|1||{pid3}~".encode())
    received = order_from_orm(parse(raw))[1]
    assert str(hl7.parse(oru(received)).segment("PID")(3)) == pid3


def test_a_pdf_is_embedded_up_to_the_field_limit_and_refused_beyond(order):
    largest = (MAX_FIELD - len("^AP^PDF^Base64^")) // 4 * 3  # base64: 4 characters per 3 bytes
    assert pdf_fits(b"x" * largest) and not pdf_fits(b"x" * (largest + 1))
    report = Report("Naevus.", "SURV", SPECIALIST, "20261116120000", "F")
    common = dict(control_id="ORU-2", now=NOW, case_accession="TD1", study_uid="1.2.3",
                  order=order, report=report, conduct_label="Surveillance")
    text = build_oru(pdf=b"%PDF" + b"x" * (largest - 4), **common)
    longest = max(len(f) for s in text.split("\r") for f in s.split("|"))
    assert MAX_FIELD - 4 < longest <= MAX_FIELD  # one more base64 quantum would not fit
    with pytest.raises(ValueError, match="by reference"):
        build_oru(pdf=b"x" * (largest + 1), **common)
    by_reference = hl7.parse(build_oru(pdf=b"x" * (largest + 1),
                                       pdf_url="https://td/r.pdf?version=1", **common))
    rp = by_reference.segments("OBX")[-1]
    assert (str(rp(2)), str(rp(5))) == ("RP", "https://td/r.pdf?version=1^^AP^PDF")
    assert [str(o(2)) for o in hl7.parse(build_oru(pdf=b"", **common)).segments("OBX")] == [
        "TX", "CE", "ST"]


def test_oru_escapes_delimiters_in_report_text(order):
    text = oru(order)
    assert "Kératose séborrhéique \\F\\ bénigne." in text
    assert "Surveillance \\S\\ simple" in text
    assert "uid=1.2.3\\T\\frame=1" in text


def test_oru_keeps_base64_on_one_line(order):
    text = oru(order)
    ed_line = next(line for line in text.split("\r") if line.startswith("OBX|7|ED"))
    assert len(ed_line) > 10000 and "\n" not in ed_line


def test_corrected_report_marks_obr25_and_every_obx11_c(order):
    msg = hl7.parse(oru(order, status="C"))
    assert msg["OBR.F25"] == "C"
    assert {str(o(11)) for o in msg.segments("OBX")} == {"C"}


def test_oru_without_viewer_has_no_rp(order):
    assert "RP" not in [str(o(2)) for o in hl7.parse(oru(order, viewer_url="")).segments("OBX")]


def test_oru_is_valid_for_hl7apy(order):
    assert hl7apy_accepts(oru(order))


def test_oru_encodes_as_utf8(order):
    assert "LEFÈVRE".encode("utf-8") in encode(oru(order))


def charges(order):
    return [
        Charge("TD-2026-000042-TE2", "TE2", "requis", 2300, "CG", "20261116", SPECIALIST, None),
        Charge("TD-2026-000042-RQD", "RQD", "requerant", 1000, "CG", "20261116",
               order.requester, order.requester),
    ]


def dft(order, items, department="DERMATO"):
    return build_dft(control_id="DFT-1", now=NOW, order=order, accession="TD-2026-000042",
                     charges=items, sending=("TELEDERM", "TELEDERM"),
                     receiving=("COMPTA", "CHU_NIMES"), department=department,
                     labels={"TE2": "Télé-expertise requis"})


def test_dft_has_header_event_patient_and_one_ft1_per_charge(order):
    msg = hl7.parse(dft(order, charges(order)))
    assert str(msg.segment("MSH")(9)) == "DFT^P03^DFT_P03"
    assert (msg["MSH.F10"], msg["MSH.F12"]) == ("DFT-1", "2.5")
    assert (msg["EVN.F1"], msg["EVN.F2"]) == ("P03", NOW)
    assert msg["PID.F3"] == "IPP0012345" and msg["PV1.F2"] == "O"
    ft1, ft2 = msg.segments("FT1")
    assert [str(ft1(i)) for i in (1, 2, 4, 5, 6)] == [
        "1", "TD-2026-000042-TE2", "20261116^20261116", NOW, "CG"]
    assert str(ft1(7)) == "TE2^Télé-expertise requis^NGAP" and str(ft1(25)) == str(ft1(7))
    assert (str(ft1(10)), str(ft1(11)), str(ft1(12)), str(ft1(13))) == (
        "1", "23.00&EUR", "23.00&EUR", "DERMATO")
    assert ft1.extract_field(1, 20, 1, 1) == "810000000001"
    assert ft1.extract_field(1, 21, 1, 2) == "MARTIN"  # defaults to the order's requester
    assert str(ft1(23)) == "TD-2026-000042"
    assert (str(ft2(1)), str(ft2(7)), str(ft2(11))) == ("2", "RQD^^NGAP", "10.00&EUR")


def test_dft_credit_keeps_positive_amount_with_type_cd(order):
    credit = Charge("TD-2026-000042-TE2", "TE2", "requis", 2300, "CD", "20261116", SPECIALIST)
    ft1 = hl7.parse(dft(order, [credit], department="")).segment("FT1")
    assert (str(ft1(6)), str(ft1(11)), str(ft1(13))) == ("CD", "23.00&EUR", "")


def test_dft_is_valid_for_hl7apy(order):
    text = dft(order, charges(order))
    assert hl7apy_accepts(text)
    msg = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    ft1 = msg.DFT_P03_FINANCIAL.FT1
    assert ft1.ft1_11.cp_1.mo_1.to_er7() == "23.00"
    assert ft1.ft1_11.cp_1.mo_2.to_er7() == "EUR"


def test_dft_refuses_an_empty_charge_list(order):
    with pytest.raises(ValueError):
        dft(order, [])


MAPPINGS = Path(__file__).resolve().parents[3] / "mappings" / "billing"


@pytest.fixture(scope="module")
def facilities():
    tariffs = load_tariffs(MAPPINGS / "ngap.toml")
    return load_facilities(MAPPINGS / "facilities.toml", tariffs=tariffs)


def facility_dft(order, facility, items):
    return build_dft(control_id="DFT-2", now=NOW, order=order, accession="TD-2026-000042",
                     charges=items, sending=("TELEDERM", "TELEDERM"),
                     receiving=("COMPTA", "CHU_NIMES"), facility=facility,
                     labels={"TE2": "Télé-expertise (requis)"})


def test_dft_with_a_facility_carries_its_code_department_and_no_amount(order, facilities):
    msg = hl7.parse(facility_dft(order, facilities.get("EXAMPLE_CHU"), charges(order)))
    ft1, ft2 = msg.segments("FT1")
    assert str(ft1(7)) == "TLX-TE2^Téléexpertise requis^99CHU"
    assert str(ft1(25)) == "TE2^Télé-expertise (requis)^NGAP"
    assert (str(ft1(11)), str(ft1(12)), str(ft1(13))) == ("", "", "UF4510")
    assert (str(ft2(7)), str(ft2(13)), str(ft2(25))) == (
        "TLX-RQD^Téléexpertise requérant^99CHU", "UF4520", "RQD^^NGAP")
    assert str(ft1(4)) == "20261116^20261116" and str(ft1(23)) == "TD-2026-000042"


def test_dft_with_a_facility_sending_amounts_is_valid_for_hl7apy(order, facilities):
    text = facility_dft(order, facilities.get("TELEDERM"), charges(order))
    assert hl7apy_accepts(text)
    msg = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    ft1 = msg.DFT_P03_FINANCIAL[0].FT1
    assert ft1.ft1_7.ce_1.to_er7() == "TE2" and ft1.ft1_7.ce_3.to_er7() == "NGAP"
    assert ft1.ft1_12.cp_1.mo_1.to_er7() == "23.00"
    assert ft1.ft1_25.ce_1.to_er7() == "TE2"


def test_dft_with_a_facility_without_amounts_is_valid_for_hl7apy(order, facilities):
    assert hl7apy_accepts(facility_dft(order, facilities.get("EXAMPLE_CHU"), charges(order)))


def test_withdrawn_report_deletes_every_observation_under_a_corrected_result(order):
    msg = hl7.parse(oru(order, status="D"))
    assert {str(o(11)) for o in msg.segments("OBX")} == {"D"}
    assert msg["OBR.F25"] == "C"  # table 0123 has no "deleted": a correction that removes all
    assert [str(o(2)) for o in msg.segments("OBX")] == ["TX", "TX", "TX", "CE", "ST", "RP", "ED"]
