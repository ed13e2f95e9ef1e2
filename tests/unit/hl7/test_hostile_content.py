"""Hostile content in an otherwise good order: control characters, an MSH-10 longer than our
inbox keeps, fields beyond their HL7 length. Each is refused with an AE ACK whose ERR names
the field, and a long MSH-10 is not echoed back."""

from __future__ import annotations

import pytest

from connector.demo import demo_order
from connector.hl7.ack import ack_for_unparseable, read_ack
from connector.hl7.errors import Hl7Error
from connector.hl7.parse import MAX_ANY_FIELD, parse

QUESTION = "Lésion pigmentée du dos apparue il y a 6 mois, évolutive. Mélanome ?"


def _refused(text: str) -> tuple[Hl7Error, object]:
    raw = text.encode("utf-8")
    with pytest.raises(Hl7Error) as caught:
        parse(raw)
    ack = read_ack(ack_for_unparseable(raw, caught.value, "A1", "20261203120000"))
    return caught.value, ack


def test_the_untouched_order_parses():
    assert parse(demo_order("CTRL-1", "PL-1").encode("utf-8")).control_id == "CTRL-1"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1f", "\x7f"])
def test_a_control_character_in_the_question_is_refused_at_obr_13(char):
    err, ack = _refused(demo_order("CTRL-2", "PL-2").replace(QUESTION, QUESTION + char))
    assert (err.hl7_code, err.location, ack.code) == ("102", "OBR^1^13", "AE")
    assert ack.control_id_acked == "CTRL-2"


def test_an_over_long_msh_10_is_refused_and_not_echoed():
    long_id = "X" * 20_000
    err, ack = _refused(demo_order(long_id, "PL-3"))
    assert (err.hl7_code, err.location, ack.code) == ("102", "MSH^1^10", "AE")
    assert ack.control_id_acked == "" and long_id not in str(ack)


def test_a_64_character_msh_10_is_taken():
    assert parse(demo_order("U" * 64, "PL-4").encode("utf-8")).control_id == "U" * 64


def test_a_question_beyond_obr_13s_length_is_refused():
    err, ack = _refused(demo_order("CTRL-5", "PL-5").replace(QUESTION, "Q" * 100_000))
    assert (err.hl7_code, err.location, ack.code) == ("102", "OBR^1^13", "AE")
    assert "300" in err.text


def test_any_field_beyond_the_largest_hl7_length_is_refused():
    text = demo_order("CTRL-6", "PL-6") + "\rNTE|1||" + "N" * (MAX_ANY_FIELD + 1)
    err, _ = _refused(text)
    assert err.location.startswith("NTE^") and err.location.endswith("^3")


def test_an_obx_5_document_may_be_longer_than_any_other_field():
    text = demo_order("CTRL-7", "PL-7") + "\rOBX|1|ED|PDF^Report||^AP^PDF^Base64^" + "A" * 200_000
    assert parse(text.encode("utf-8")).control_id == "CTRL-7"


@pytest.mark.parametrize("line", ["|\x1c", "pid|1", "P|1", "1PI|x"])
def test_a_line_without_a_segment_id_is_refused_before_its_fields(line):
    err, ack = _refused(demo_order("CTRL-8", "PL-8") + "\r" + line)
    assert (err.hl7_code, ack.code) == ("100", "AE")
    assert "line" in err.text and ack.control_id_acked == "CTRL-8"
