"""Property-based tests (hypothesis) for the MLLP framer, the HL7 parser and the ACK writer.

Properties, not examples: whatever bytes a peer sends, the framer yields exactly the complete
frames in order (or the documented `FrameTooLarge`), the parser answers a `ParsedMessage` or an
`Hl7Error`, and every answer we write is an HL7 message that python-hl7 reads back, echoing
the control id when one was readable.
"""

from __future__ import annotations

from itertools import pairwise

import hl7
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from connector.hl7.ack import ack_for_unparseable, build_ack, read_ack
from connector.hl7.errors import Hl7Error
from connector.hl7.mllp import END, START, FrameReader, FrameTooLarge, frame
from connector.hl7.parse import (
    SUPPORTED_VERSIONS,
    ParsedMessage,
    encode,
    parse,
    salvage_header,
)
from connector.hl7.segments import escape, msh, segment

FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EXPLICIT_ONLY = settings(phases=[Phase.explicit], deadline=None)  # pinned bug examples only
NOW = "20260101120000"

# --- strategies ----------------------------------------------------------------------------

# Message bodies never contain a start block nor an end-block byte (MLLP forbids them).
bodies = st.binary(max_size=60).map(lambda b: b.replace(START, b"").replace(END[:1], b""))
# Bytes outside frames: anything but a start block (which would open a frame).
garbage = st.binary(max_size=20).map(lambda b: b.replace(START, b""))


def _feed_in_chunks(reader: FrameReader, data: bytes, cuts: list[int]) -> tuple[list, int]:
    """Feed `data` split at `cuts`; return (frames, number of FrameTooLarge raised)."""
    out, too_large = [], 0
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    chunks = [data[a:b] for a, b in pairwise(bounds)]
    for chunk in chunks:
        pending = chunk
        while True:
            try:
                out += reader.feed(pending)
                break
            except FrameTooLarge as e:
                too_large += 1
                out += e.frames
                pending = b""  # the reader kept the rest of the call's data
    return out, too_large


# --- MLLP framer ---------------------------------------------------------------------------

@FAST
@given(messages=st.lists(bodies, max_size=6), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_frame_reader_yields_every_message_in_order_when_split_at_any_boundaries(messages, cuts):
    data = b"".join(frame(m) for m in messages)
    out, too_large = _feed_in_chunks(FrameReader(), data, cuts)
    assert out == messages and too_large == 0


def _without_end_block(data: bytes) -> bytes:
    data = data.replace(START, b"")
    while END in data:
        data = data.replace(END, b"")
    return data


@FAST
@given(messages=st.lists(st.binary(max_size=40).map(_without_end_block), max_size=6),
       cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_frame_reader_keeps_lone_0x1c_and_0x0d_when_inside_a_message(messages, cuts):
    data = b"".join(frame(m) for m in messages)
    out, too_large = _feed_in_chunks(FrameReader(), data, cuts)
    assert out == messages and too_large == 0


@FAST
@given(parts=st.lists(st.tuples(garbage, bodies), max_size=6), tail=garbage,
       cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_frame_reader_discards_garbage_when_between_frames(parts, tail, cuts):
    data = b"".join(g + frame(m) for g, m in parts) + tail
    reader = FrameReader()
    out, too_large = _feed_in_chunks(reader, data, cuts)
    assert out == [m for _, m in parts] and too_large == 0
    assert reader.discarded == sum(len(g) for g, _ in parts) + len(tail)


@FAST
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 10_000), max_size=12),
       max_size=st.integers(1, 64))
def test_frame_reader_raises_only_frame_too_large_when_fed_arbitrary_bytes(data, cuts, max_size):
    reader = FrameReader(max_size=max_size)
    out, _ = _feed_in_chunks(reader, data, cuts)  # anything but FrameTooLarge propagates
    assert all(isinstance(f, bytes) and len(f) <= max_size for f in out)
    assert all(START not in f and END not in f for f in out)


@FAST
@given(data=st.binary(max_size=300), split=st.integers(0, 10_000))
def test_frame_reader_keeps_earlier_frames_when_later_bytes_are_arbitrary(data, split):
    # Frames completed by the first chunks are never taken back by what follows.
    whole = bytes(data)
    at = split % (len(whole) + 1)
    first = FrameReader().feed(whole[:at])
    reader = FrameReader()
    got = reader.feed(whole[:at]) + reader.feed(whole[at:])
    assert got[: len(first)] == first
    # and the same frames come out however the bytes were cut
    assert got == FrameReader().feed(whole)


def _mixed(messages, cuts, max_size, noise):
    data = b"".join(noise + frame(m) for m in messages)
    out, too_large = _feed_in_chunks(FrameReader(max_size=max_size), data, cuts)
    assert out == [m for m in messages if len(m) <= max_size]
    assert too_large == sum(len(m) > max_size for m in messages)


small_bodies = st.binary(max_size=40).map(lambda b: b.replace(START, b"").replace(END[:1], b""))


@FAST
@given(messages=st.lists(small_bodies, max_size=6), cuts=st.lists(st.integers(0, 10_000),
       max_size=12), max_size=st.integers(1, 30), noise=garbage)
def test_frame_reader_yields_small_frames_and_refuses_large_ones_when_mixed(messages, cuts,
                                                                         max_size, noise):
    _mixed(messages, cuts, max_size, noise)


@EXPLICIT_ONLY
@given(messages=st.just([]), cuts=st.just([]), max_size=st.just(1), noise=st.just(b""))
@example(messages=[b"abcd"], cuts=[5], max_size=4, noise=b"")
@example(messages=[b"\x00", b"\x00"], cuts=[84], max_size=1, noise=b"")
def test_frame_reader_accepts_frame_of_exactly_max_size_when_split_inside_end_block(
        messages, cuts, max_size, noise):
    _mixed(messages, cuts, max_size, noise)


# --- parse and ACK -------------------------------------------------------------------------

def _parse_or_error(raw: bytes):
    try:
        return parse(raw)
    except Hl7Error as e:
        return e


def _check_ack(ack: str, control_id: str | None, sendable: bool = True) -> None:
    message = hl7.parse(ack)  # python-hl7 reads what we write
    assert str(message.segment("MSH")[0][0]) == "MSH"
    assert read_ack(ack).code in ("AA", "AE", "AR")
    if control_id is not None:
        assert read_ack(ack).control_id_acked == control_id
    if sendable:
        encode(ack)  # it can be sent in the charset its MSH-18 declares (listener.py does)


def _answer(raw: bytes) -> None:
    """What the listener does: parse, then an ACK either way; nothing else may be raised."""
    result = _parse_or_error(raw)
    assert isinstance(result, (ParsedMessage, Hl7Error))
    if isinstance(result, ParsedMessage):
        _check_ack(build_ack(result, "AA", [], "ACK1", NOW), result.control_id)
        err = Hl7Error("example", hl7_code=207)
        _check_ack(build_ack(result, "AE", [err], "ACK2", NOW), result.control_id)
    else:
        undecodable = result.hl7_code == "102" and result.location == "MSH^1^18"  # bug 3
        _check_ack(ack_for_unparseable(raw, result, "ACK3", NOW), None, sendable=not undecodable)
    _check_ack(build_ack(None, "AR", [Hl7Error("x", hl7_code=100)], "ACK4", NOW), "")


MSH_CHARS = "|^~\\&#$*!\r\nAZaz09 .-é\x00\x0b\x1c\xff"
_CHARSETS = ["", "ASCII", "UNICODE UTF-8", "8859/1", "8859/15", "8859/3", "8859/6", "UTF-16",
             "unicode utf-8"]


@st.composite
def msh_like(draw) -> bytes:
    """Bytes that look enough like an MSH to reach the header, version and charset checks."""
    seps = draw(st.just("|^~\\&") | st.text(alphabet="|^~\\&#$*!", min_size=0, max_size=5))
    field = st.text(alphabet=MSH_CHARS.replace("\r\n", ""), max_size=6)
    size = draw(st.sampled_from([None, 11, 17, 19]))
    size = draw(st.integers(0, 19)) if size is None else size
    fields = draw(st.lists(field, min_size=size, max_size=size))
    # fields[n - 2] is MSH-n: MSH-1 and MSH-2 are the separators in `seps`
    for index, choices in ((7, ["ORM^O01", "ADT^A08", "^", ""]),
                           (8, ["1", "", "\\X0D\\", "\\X41\\", "a\\F\\b", " 1 "]),
                           (10, list(SUPPORTED_VERSIONS) + ["2.9", ""]), (16, _CHARSETS)):
        if index < len(fields) and draw(st.sampled_from([True, True, True, False])):
            fields[index] = draw(st.sampled_from(choices))
    sep = seps[:1] or "|"
    text = "MSH" + seps + sep.join(fields)
    rest = draw(st.lists(st.text(alphabet=MSH_CHARS, max_size=20), max_size=3))
    text = "\r".join([text, *rest])
    charset = draw(st.sampled_from(["utf-8", "latin-1", "cp1252"]))
    raw = text.encode(charset, "replace")
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\r\n", b"xx"])) + raw


@FAST
@given(raw=st.binary(max_size=200))
def test_parse_returns_message_or_hl7_error_when_given_arbitrary_bytes(raw):
    _answer(raw)


@FAST
@given(text=st.text(max_size=200))
def test_parse_returns_message_or_hl7_error_when_given_arbitrary_text(text):
    _answer(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=msh_like())
def test_parse_and_ack_answer_when_given_msh_like_bytes(raw):
    _answer(raw)


@EXPLICIT_ONLY
@given(raw=st.binary())  # only the @example inputs run (EXPLICIT_ONLY)
@example(raw=b"MSH00\r\r0")
@example(raw=b"MSH|^~\\&|A|B|C|D|20260101||ORM^O01|1|P|2.5\n\nPID|1")
@example(raw=b"MSH|^~\\&|A|B|C|D|20260101||ORM^O01|1|P|2.5\r\r\nPID|1")
def test_parse_returns_message_or_hl7_error_when_a_blank_line_separates_segments(raw):
    result = _parse_or_error(raw)
    assert isinstance(result, (ParsedMessage, Hl7Error))


@EXPLICIT_ONLY
@given(raw=st.binary())  # only the @example inputs run (EXPLICIT_ONLY)
@example(raw=b"MSH|^~\\&|||||||ORM^O01|1|\xc3\xa9|2.3.1||||||8859/3||")
@example(raw=b"MSH|^~\\&|APP\xa5|FAC|||20260101||ORM^O01|1|P|2.5||||||8859/3")
def test_ack_for_unparseable_can_be_encoded_when_bytes_are_invalid_in_declared_charset(raw):
    error = _parse_or_error(raw)
    assert isinstance(error, Hl7Error) and error.hl7_code == "102"
    ack = ack_for_unparseable(raw, error, "ACK3", NOW)
    assert read_ack(encode(ack)).code == "AE"


@EXPLICIT_ONLY
@given(raw=st.binary())  # only the @example inputs run (EXPLICIT_ONLY)
@example(raw=b"MSH|^~\\&|A|B|C|D|20260101||ORM^O01|1\\X0D\\2|P|2.5")
def test_build_ack_echoes_control_id_when_it_holds_an_escaped_line_break(raw):
    parsed = parse(raw)
    assert read_ack(build_ack(parsed, "AA", [], "ACK1", NOW)).control_id_acked == \
        parsed.control_id


@FAST
@given(raw=st.binary(max_size=200) | msh_like())
def test_salvage_header_and_read_ack_never_raise_unexpectedly_when_given_arbitrary_bytes(raw):
    salvage_header(raw)  # documented: never raises
    try:
        result = read_ack(raw)
    except Hl7Error:
        return
    assert result.code


# --- round trip of written values --------------------------------------------------------

# Printable values incl. French accents and every HL7 delimiter (escaped on the way out).
SAFE = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        "éèêëàâçîïôûüÿœÉÈÇ'-./|^~&\\")
values = st.text(alphabet=SAFE, min_size=1, max_size=20)
spaced = st.text(alphabet=SAFE + " ", min_size=1, max_size=20)


@FAST
@given(app=values, facility=values, control_id=values, family=spaced, given_name=spaced,
       note=spaced, version=st.sampled_from(SUPPORTED_VERSIONS),
       charset=st.sampled_from(["UNICODE UTF-8", "8859/1", "8859/15", ""]))
def test_parse_reads_back_the_values_when_message_written_with_escaping(
        app, facility, control_id, family, given_name, note, version, charset):
    if charset in ("8859/1",) and "œ" in family + given_name + note + app + facility + control_id:
        charset = "8859/15"
    text = "\r".join([
        msh(sending=(app, facility), receiving=("RECV", "HOSP"), now=NOW,
            message_type="ORM^O01^ORM_O01", control_id=control_id, version=version,
            charset=charset),
        segment("PID", "1", "", "123", "", f"{escape(family)}^{escape(given_name)}"),
        segment("NTE", "1", "", escape(note), "END"),  # trailing blanks of a message are cut
    ]) + "\r"
    parsed = parse(encode(text))
    assert parsed.control_id == control_id
    assert parsed.version == version
    assert parsed.header.sending_application == (app,)
    assert parsed.sender == f"{app}|{facility}"
    assert parsed.value("PID-5.1") == family
    assert parsed.value("PID-5.2") == given_name
    assert parsed.value("NTE-3") == note
    ack = build_ack(parsed, "AA", [], "ACK1", NOW)
    assert read_ack(encode(ack)).control_id_acked == control_id


@FAST
@given(text=st.text(alphabet=SAFE + " \t", max_size=40))
def test_escape_round_trips_through_python_hl7_when_value_has_delimiters(text):
    message = hl7.parse("MSH|^~\\&|A|B|C|D|" + NOW + "||ORM^O01|1|P|2.5\rNTE|1||"
                        + escape(text) + "|END")
    assert message.segment("NTE").extract_field(1, 3) == text
    assert not set(escape(text)) & set("|^~&\r\n")
