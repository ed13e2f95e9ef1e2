import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from connector.hl7.ack import ack_for_unparseable, build_ack, read_ack
from connector.hl7.errors import Hl7Error
from connector.hl7.parse import parse

NOW = "20261115093005"


def missing_pid3() -> Hl7Error:
    return Hl7Error("patient identifier is missing (PID-3)", hl7_code=101, location="PID^1^3",
                    hint="send PID-3")


def test_ack_swaps_sender_and_receiver_and_echoes_trigger_version_charset(sample):
    ack = hl7.parse(build_ack(parse(sample("orm_o01_nw.hl7")), "AA", [], "ACK-1", NOW))
    assert str(ack["MSH.F3"]) == "TELEDERM" and str(ack["MSH.F5"]) == "DPI_CHU"
    assert str(ack["MSH.F6"]) == "CHU_NIMES"
    assert str(ack.segment("MSH")(9)) == "ACK^O01^ACK"
    assert (ack["MSH.F10"], ack["MSH.F12"], ack["MSH.F18"]) == ("ACK-1", "2.5", "UNICODE UTF-8")
    assert (ack["MSA.F1"], ack["MSA.F2"]) == ("AA", "MSG-20261115-0001")
    assert len(ack.segments("MSA")) == 1 and "ERR" not in [s[0][0] for s in ack]


def test_ack_has_one_err_per_error_with_location_code_severity_and_diagnostic(sample):
    errors = [missing_pid3(), Hl7Error("odd value", hl7_code=102, location="PID^1^7",
                                       severity="W")]
    ack = hl7.parse(build_ack(parse(sample("orm_o01_nw.hl7")), "AE", errors, "ACK-2", NOW))
    assert (ack["MSA.F1"], ack["MSA.F2"]) == ("AE", "MSG-20261115-0001")
    err1, err2 = ack.segments("ERR")
    assert str(err1(2)) == "PID^1^3"
    assert str(err1(3)) == "101^Required field missing^HL70357"
    assert (str(err1(4)), str(err1(7)), str(err1(8))) == (
        "E", "patient identifier is missing (PID-3)", "send PID-3")
    assert (str(err2(2)), str(err2(3)(1)(1)), str(err2(4))) == ("PID^1^7", "102", "W")


def test_ack_never_contains_patient_data(sample):
    text = build_ack(parse(sample("orm_o01_nw.hl7")), "AE", [missing_pid3()], "A", NOW)
    for value in ("LEFÈVRE", "Hélène", "19720314", "IPP0012345", "MARTIN"):
        assert value not in text


def test_ack_fills_err1_for_v231_peers(sample):
    raw = sample("orm_o01_nw.hl7").replace(b"|2.5|", b"|2.3.1|")
    ack = hl7.parse(build_ack(parse(raw), "AE", [missing_pid3()], "A", NOW))
    assert ack["MSH.F12"] == "2.3.1"
    assert str(ack.segment("ERR")(1)) == "PID^1^3^101&Required field missing&HL70357"


def test_ack_escapes_delimiters_in_error_text(sample):
    error = Hl7Error("bad | value ^ here", hl7_code=102, location="OBR^1^13")
    ack = hl7.parse(build_ack(parse(sample("orm_o01_nw.hl7")), "AE", [error], "A", NOW))
    assert ack["ERR.F7"] == "bad | value ^ here"


def test_ack_validates_with_hl7apy(sample):
    text = build_ack(parse(sample("orm_o01_nw.hl7")), "AE", [missing_pid3()], "A", NOW)
    msg = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    assert msg.validate()


def test_ack_for_unparseable_salvages_msh_and_uses_the_error_ack_code(sample):
    raw = sample("orm_o01_nw.hl7").replace(b"|2.5|", b"|2.9|")
    with pytest.raises(Hl7Error) as exc:
        parse(raw)
    ack = hl7.parse(ack_for_unparseable(raw, exc.value, "ACK-3", NOW))
    assert (ack["MSA.F1"], ack["MSA.F2"]) == ("AR", "MSG-20261115-0001")
    assert (ack["MSH.F5"], ack["MSH.F12"]) == ("DPI_CHU", "2.5")
    assert (str(ack.segment("ERR")(2)), ack["ERR.F3.R1.C1"]) == ("MSH^1^12", "203")


def test_ack_for_unparseable_still_answers_when_nothing_is_readable():
    error = Hl7Error("message does not start with an MSH segment", hl7_code=100,
                     location="MSH^1")
    ack = hl7.parse(ack_for_unparseable(b"\x00garbage", error, "ACK-4", NOW))
    assert (ack["MSH.F3"], ack["MSA.F1"], ack["MSA.F2"]) == ("TELEDERM", "AE", "")
    assert ack["ERR.F3.R1.C1"] == "100"


def test_ack_refuses_a_code_outside_table_0008(sample):
    with pytest.raises(ValueError):
        build_ack(parse(sample("orm_o01_nw.hl7")), "OK", [], "A", NOW)


def test_read_ack_round_trips_what_build_ack_wrote(sample):
    text = build_ack(parse(sample("orm_o01_nw.hl7")), "AE", [missing_pid3()], "A", NOW)
    result = read_ack(text.encode("utf-8"))
    assert (result.code, result.control_id_acked) == ("AE", "MSG-20261115-0001")
    (err,) = result.errors
    assert (err.hl7_code, err.location, err.severity, err.text) == (
        "101", "PID^1^3", "E", "patient identifier is missing (PID-3)")


def test_read_ack_reads_v231_err1():
    text = ("MSH|^~\\&|R|F|S|T|20260101||ACK^O01|9|P|2.3.1\r"
            "MSA|AE|C7|bad\rERR|PID^1^3^101&Required field missing&HL70357\r")
    (err,) = read_ack(text).errors
    assert (err.hl7_code, err.location, err.text) == ("101", "PID^1^3", "Required field missing")


def test_read_ack_raises_when_answer_has_no_msa():
    with pytest.raises(Hl7Error):
        read_ack("MSH|^~\\&|R|F|S|T|20260101||ACK^O01|9|P|2.5\r")


@pytest.mark.parametrize("code,ack_code", [("101", "AE"), ("102", "AE"), ("103", "AE"),
                                           ("100", "AE"), ("205", "AE"), ("200", "AR"),
                                           ("201", "AR"), ("203", "AR"), ("207", "AR")])
def test_error_ack_code_defaults_to_ae_for_content_and_ar_for_cannot_accept(code, ack_code):
    assert Hl7Error("x", hl7_code=code).ack_code == ack_code


@pytest.mark.parametrize("kwargs", [{"location": "PID-3"}, {"severity": "X"},
                                    {"ack_code": "AA"}, {"hl7_code": "abc"}])
def test_error_refuses_values_that_cannot_be_rendered(kwargs):
    with pytest.raises(ValueError):
        Hl7Error("x", **{"hl7_code": 101, **kwargs})


def test_error_is_a_connector_error_with_where_and_slug():
    from connector.domain.errors import ConnectorError
    error = missing_pid3()
    assert isinstance(error, ConnectorError)
    assert (error.where, error.code, error.label) == (
        "PID^1^3", "hl7-required-field-missing", "Required field missing")
