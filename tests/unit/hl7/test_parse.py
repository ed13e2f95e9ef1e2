import pytest

from connector.hl7.errors import Hl7Error, is_erl
from connector.hl7.parse import Location, decode, encode, is_timestamp, parse, salvage_header

from tests.support.outbound_forms import SAMPLES

MSH = "MSH|^~\\&|DPI|CHU|TELEDERM|TD|20261115093000||ORM^O01^ORM_O01|C1|P|2.5|||||FRA|{cs}\r"
PID = "PID|1||123^^^CHU^PI~456^^^ASIP&1.2.250.1.213.1.4.10&ISO^INS||LEFÈVRE^Hélène||19720314|F\r"


def message(charset: str, codec: str) -> bytes:
    return (MSH.format(cs=charset) + PID).encode(codec)


@pytest.mark.parametrize("charset,codec", [
    ("UNICODE UTF-8", "utf-8"),
    ("8859/1", "latin-1"),
    ("8859/15", "iso8859-15"),
    ("", "utf-8"),
    ("", "latin-1"),
    ("ASCII", "latin-1"),
])
def test_decode_keeps_french_accents_when_charset_is(charset, codec):
    assert "LEFÈVRE^Hélène" in decode(message(charset, codec))


def test_decode_reads_euro_sign_as_8859_15_not_latin1():
    raw = (MSH.format(cs="8859/15") + "NTE|1||23 €\r").encode("iso8859-15")
    assert "23 €" in decode(raw)


def test_decode_raises_102_when_bytes_contradict_declared_utf8():
    with pytest.raises(Hl7Error) as exc:
        decode(message("UNICODE UTF-8", "latin-1"))
    assert (exc.value.hl7_code, exc.value.location, exc.value.ack_code) == ("102", "MSH^1^18", "AE")


def test_decode_raises_103_when_charset_is_unsupported():
    with pytest.raises(Hl7Error) as exc:
        decode(message("UNICODE UTF-16", "utf-8"))
    assert (exc.value.hl7_code, exc.value.location) == ("103", "MSH^1^18")


def test_encode_follows_the_message_own_charset():
    text = MSH.format(cs="8859/15") + PID
    assert encode(text) == text.encode("iso8859-15")
    assert encode(MSH.format(cs="") + PID) == (MSH.format(cs="") + PID).encode("utf-8")


def test_parse_reads_msh_summary_and_positions(sample):
    msg = parse(sample("orm_o01_nw.hl7"))
    assert (msg.control_id, msg.message_type, msg.trigger, msg.version, msg.charset) == (
        "MSG-20261115-0001", "ORM", "O01", "2.5", "UNICODE UTF-8")
    assert msg.sender == "DPI_CHU|CHU_NIMES"
    assert msg.value("PID-5.2") == "Hélène"
    assert msg.value("PID-3") == "IPP0012345"
    assert msg.value("PID-3[2].4.2") == "1.2.250.1.213.1.4.8"
    assert msg.value("NTE[2]-3") == "Photos dermoscopiques jointes & annotées."
    assert msg.value("PID-5.9") == "" and msg.value("ZZZ-1") == "" and msg.value("PID-40") == ""
    assert msg.components("OBR-4") == ("TELEDERM", "Télé-expertise dermatologie", "L")


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("[!o]*.hl7")) + sorted(
    SAMPLES.glob("o[!u]*.hl7")), ids=lambda p: p.name)
def test_inbound_samples_are_stored_as_sent_with_cr_segment_ends(path):
    raw = path.read_bytes()
    assert b"\n" not in raw and raw.startswith(b"MSH|") and raw.endswith(b"\r")
    assert parse(raw).control_id


def test_parse_accepts_lf_line_endings(sample):
    raw = sample("orm_o01_nw.hl7").replace(b"\r", b"\n")
    assert parse(raw).value("OBR-2") == "CMD-2026-0042"


def test_parse_reads_repetitions():
    msg = parse(message("UNICODE UTF-8", "utf-8"))
    assert msg.repetitions("PID-3") == ["123", "456"]
    assert msg.repetitions("PID-3.5") == ["PI", "INS"]


@pytest.mark.parametrize("raw,code,location", [
    (b"PID|1||123\r", "100", "MSH^1"),
    (MSH.format(cs="").replace("|C1|", "||").encode(), "101", "MSH^1^10"),
    (MSH.format(cs="").replace("ORM^O01^ORM_O01", "").encode(), "101", "MSH^1^9"),
    (MSH.format(cs="").replace("|2.5|", "|2.6|").encode(), "203", "MSH^1^12"),
])
def test_parse_raises_when_header_is_unusable(raw, code, location):
    with pytest.raises(Hl7Error) as exc:
        parse(raw)
    assert (exc.value.hl7_code, exc.value.location) == (code, location)


def test_unsupported_version_is_rejected_with_ar_not_ae():
    with pytest.raises(Hl7Error) as exc:
        parse(MSH.format(cs="").replace("|2.5|", "|2.7|").encode())
    assert exc.value.ack_code == "AR"


@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5", "2.5.1", "2.5^FRA^2.11"])
def test_parse_accepts_supported_versions(version):
    assert parse(MSH.format(cs="").replace("|2.5|", f"|{version}|").encode()).version in (
        "2.3.1", "2.4", "2.5", "2.5.1")


def test_salvage_header_reads_msh_of_a_message_that_does_not_parse():
    raw = b"junk\r" + MSH.format(cs="").replace("|2.5|", "|9.9|").encode() + b"garbage"
    header = salvage_header(raw)
    assert (header.control_id, header.trigger, header.sending_application) == (
        "C1", "O01", ("DPI",))


def test_salvage_header_is_empty_for_bytes_without_msh():
    assert salvage_header(b"\x00\xff nothing here").control_id == ""


@pytest.mark.parametrize("text", ["PID", "PID-3", "PID-3.1", "PID-3[2].4.2", "NTE[2]-3"])
def test_location_round_trips(text):
    assert str(Location.parse(text)) == text


@pytest.mark.parametrize("text", ["pid-3", "PID-0", "PID-3.0", "PID3", "PID-3[0]"])
def test_location_refuses_malformed_positions(text):
    with pytest.raises(ValueError):
        Location.parse(text)


def test_location_erl_is_field_level():
    assert Location.parse("PID-3.1").erl() == "PID^1^3"
    assert Location.parse("NTE[2]-3").erl() == "NTE^2^3"


@pytest.mark.parametrize("value, expected", [
    ("2026", True), ("20261116", True), ("20261116120000", True), ("20261116120000.1234", True),
    ("20261116120000+0100", True), ("20261116120000.5-0500", True),
    ("", False), ("202611", True), ("2026111", False), ("2026111612000000", False),
    ("20261116T120000", False), ("20261116+01", False), ("20261116\n", False),
])
def test_is_timestamp_answers_the_hl7_ts_syntax_when_values_vary(value, expected):
    assert is_timestamp(value) is expected


@pytest.mark.parametrize("text, expected", [
    ("PID^1", True), ("PID^1^3", True), ("ZX1^1^2^1^1^1", True), ("ORC^1^1", True),
    ("", False), ("PID", False), ("PID-3", False), ("pid^1^3", False), ("PID^1^2^3^4^5^6", False),
    ("PID^1^3\n", False),
])
def test_is_erl_answers_the_err2_syntax_when_texts_vary(text, expected):
    assert is_erl(text) is expected
