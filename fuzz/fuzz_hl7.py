"""atheris entry points for the inbound HL7 path (issue 5, item 5).

    .venv/bin/python fuzz/fuzz_hl7.py mllp  -atheris_runs=100000
    .venv/bin/python fuzz/fuzz_hl7.py parse -atheris_runs=100000
    .venv/bin/python fuzz/fuzz_hl7.py orm   -atheris_runs=100000

- `mllp`: `FrameReader` fed the input cut into chunks at offsets the input chooses, with a
  small or the default `max_size`. Answer: frames, or `FrameTooLarge`. Checked: no frame is
  longer than `max_size` or holds a block marker, and with no `FrameTooLarge` the frames are
  the same however the bytes were cut.
- `parse`: `parse` then the ACK the listener would write (`build_ack` for AA and AE, else
  `ack_for_unparseable`). Answer: a `ParsedMessage` or an `Hl7Error`. Checked: every ACK is
  read back by python-hl7 and `read_ack`, and can be encoded for the wire.
- `orm`: the ORM mapping on parsed orders, as `entrypoints/hl7_routes` calls it (`order_from_orm`,
  `teleconsultation_from_orm`, `images_from_orm`). The input is either a whole message or
  (first byte) one field of a valid sample order replaced by the rest of the input, so the
  mapping is reached past the parser. Answer: a value, or an `Hl7Error` / `ConnectorError`.

Anything else raised is a crash. Seeds: conformance/samples/*.hl7, the demo order and the
malformed-HL7 corpus of tests/support/bad_corpus.py (frames under 64 KiB).
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path

import hl7

from connector.domain.errors import ConnectorError
from connector.hl7.ack import ack_for_unparseable, build_ack, read_ack
from connector.hl7.errors import Hl7Error
from connector.hl7.mllp import END, START, FrameReader, FrameTooLarge, frame
from connector.hl7.orm import images_from_orm, order_from_orm, teleconsultation_from_orm
from connector.hl7.parse import ParsedMessage, encode, parse

REPO = Path(__file__).resolve().parents[1]
NOW = "20260101120000"
ORDER_TYPES = {("ORM", "O01"), ("OMG", "O19"), ("OMI", "O23")}  # as entrypoints/hl7_routes routes them
MAX_SEED = 64 * 1024


# --- entry points ----------------------------------------------------------------------------

def test_mllp(data: bytes) -> None:
    """Bytes 0-1: max_size (0 = the default); byte 2: how many cuts; then cut offsets."""
    if len(data) < 3:
        return
    max_size = data[0] * 256 + data[1] or 20 * 1024 * 1024
    ncuts = data[2] % 16
    stream = data[3 + ncuts :]
    bounds = [0, *sorted({c % (len(stream) + 1) for c in data[3 : 3 + ncuts]}), len(stream)]
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:])]

    def run(pieces: list[bytes]) -> tuple[list[bytes], int]:
        reader, frames, too_large = FrameReader(max_size=max_size), [], 0
        for piece in pieces:
            pending = piece
            while True:
                try:
                    frames += reader.feed(pending)
                    break
                except FrameTooLarge as exc:
                    too_large += 1
                    frames += exc.frames
                    pending = b""
        return frames, too_large

    frames, too_large = run(chunks)
    for f in frames:
        if len(f) > max_size or START in f or END in f:
            raise AssertionError(f"bad frame of {len(f)} bytes (max_size {max_size})")
    if not too_large:
        whole, whole_too_large = run([stream])
        if not whole_too_large and whole != frames:
            raise AssertionError("frames differ with the cut points")


def test_parse(data: bytes) -> None:
    try:
        msg = parse(data)
    except Hl7Error as err:
        _check_ack(ack_for_unparseable(data, err, "ACK3", NOW))
        return
    _check_ack(build_ack(msg, "AA", [], "ACK1", NOW))
    _check_ack(build_ack(msg, "AE", [Hl7Error("example", hl7_code=207, location="PID^1^3")],
                         "ACK2", NOW))


def test_orm(data: bytes) -> None:
    if not data:
        return
    raw = data[1:] if data[0] % 4 == 0 or len(data) < 4 else _splice(data)
    try:
        msg = parse(raw)
    except Hl7Error:
        return
    if (msg.message_type, msg.trigger) not in ORDER_TYPES:
        return
    for mapping in (order_from_orm, teleconsultation_from_orm, images_from_orm):
        try:
            mapping(msg)
        except ConnectorError:  # Hl7Error included: the ERR the sender gets
            pass


TARGETS = {"mllp": test_mllp, "parse": test_parse, "orm": test_orm}


# --- helpers ---------------------------------------------------------------------------------

def _check_ack(ack: str) -> None:
    """What the listener sends must be an ACK python-hl7 and we read, in its own charset."""
    message = hl7.parse(ack)
    if str(message.segment("MSH")[0][0]) != "MSH":
        raise AssertionError("ACK without MSH")
    if read_ack(ack).code not in ("AA", "AE", "AR"):
        raise AssertionError(f"ACK code {read_ack(ack).code!r}")
    encode(ack)


def _splice(data: bytes) -> bytes:
    """A sample order with one field (segment data[1], field data[2]) replaced by data[3:]."""
    orders = _orders()
    segments = orders[data[0] % len(orders)].split(b"\r")
    s = data[1] % len(segments)
    fields = segments[s].split(b"|")
    f = 2 + data[2] % max(len(fields) - 1, 1) if s == 0 else 1 + data[2] % (len(fields) + 1)
    while len(fields) <= f:
        fields.append(b"")
    fields[f] = data[3:]
    segments[s] = b"|".join(fields)
    return b"\r".join(segments)


@cache
def _orders() -> tuple[bytes, ...]:
    """Valid sample orders, segments separated by CR."""
    out = []
    for raw in _samples():
        try:
            msg = parse(raw)
        except Hl7Error:
            continue
        if (msg.message_type, msg.trigger) in ORDER_TYPES:
            out.append(raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r"))
    return tuple(out)


@cache
def _samples() -> tuple[bytes, ...]:
    from connector.demo import demo_order

    samples = [p.read_bytes() for p in sorted((REPO / "conformance" / "samples").glob("*.hl7"))]
    samples += [s.replace(b"\r\n", b"\r").replace(b"\n", b"\r") for s in samples]
    samples.append(demo_order("SEED-1", "PL-SEED-1").encode("utf-8"))
    samples.append(demo_order("SEED-2", "PL-SEED-2").encode("utf-8")
                   + b"OBX|1|CWE|CONSENT^Consentement du patient^L||Y^Oui^HL70136||||||F\r")
    return tuple(dict.fromkeys(samples))


@cache
def _bad_corpus_frames() -> tuple[bytes, ...]:
    """The malformed messages of the HL7 bad-input corpus, each as sent (framed) and bare."""
    path = REPO / "tests" / "support" / "bad_corpus.py"
    spec = importlib.util.spec_from_file_location("_fuzz_bad_corpus", path)
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)  # in sys.modules first: its dataclasses look it up
    wires, bare = [], []
    for case in module.CASES:
        for wire in (*case.setup, b"".join(case.wire)):
            if len(wire) <= MAX_SEED:
                wires.append(wire)
                bare += FrameReader().feed(wire)
    return tuple(wires), tuple(bare)


def seeds(target: str) -> list[bytes]:
    wires, bare = _bad_corpus_frames()
    messages = [*_samples(), *bare]
    if target == "mllp":
        framed = [frame(m) for m in _samples()]
        return [b"\x00\x00\x00" + w for w in (*framed, *wires)] + [
            b"\x01\x00\x03\x05\x40\x90" + b"".join(framed),  # max_size 256, three cuts
            b"\x00\x20\x02\x01\x02" + START + b"x" * 40 + END + b"junk" + framed[0]]
    if target == "parse":
        return messages
    if target == "orm":
        spliced = [bytes([1 + i % 3, seg, field]) + value
                   for i, (seg, field, value) in enumerate(
                       [(1, 3, b"IPP9^^^X&1.2&ISO^PI"), (1, 7, b"19581312"), (1, 5, b"^^"),
                        (3, 1, b"XO"), (4, 5, b"S"), (5, 5, b"^IM^JPEG^Base64^////"),
                        (5, 2, b"ED"), (0, 8, b"OMG^O19^OMG_O19")])]
        return [b"\x00" + m for m in messages] + spliced
    raise KeyError(target)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fuzzing import main

    main(TARGETS, seeds, instrumented=("connector", "hl7"))
