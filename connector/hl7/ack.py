"""Original-mode acknowledgements: writing ours (MSH + MSA + one ERR per error) and reading a
peer's (`read_ack`).

An ACK echoes what the sender needs to match it (MSH-10 in MSA-2, trigger, version, MSH-18) and
never contains patient data: ERR-7 is the error's own text, written without values from the
message.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass

import hl7

from .errors import Hl7Error
from .parse import (MAX_CONTROL_ID, SUPPORTED_VERSIONS, Header, ParsedMessage, codec, decode,
                    salvage_header)
from .segments import escape, escape_exact, msh, segment

_OLD_ERR = ("2.3.1", "2.4")  # versions whose ERR has only ERR-1 (ELD)


@dataclass(frozen=True)
class AckResult:
    """A peer's answer: MSA-1, MSA-2 (the control id it acknowledges), MSA-3 and its ERR segments."""

    code: str
    control_id_acked: str
    text: str = ""
    errors: tuple[Hl7Error, ...] = ()


def build_ack(msg: ParsedMessage | None, code: str, errors: list[Hl7Error], control_id: str,
              now: str, sending: tuple[str, str] = ("TELEDERM", "TELEDERM")) -> str:
    """The ACK for `msg` (None when nothing of it could be read).

    MSH-3/4 echo the original MSH-5/6 (the identity the peer addressed) or else `sending`;
    MSH-5/6 are the original MSH-3/4. MSA-3 repeats the first error's text.
    """
    if code not in ("AA", "AE", "AR", "CA", "CE", "CR"):
        raise ValueError(f"MSA-1 must be a table 0008 code, got {code!r}")
    return _ack(msg.header if msg else Header(), code, errors, control_id, now, sending)


def ack_for_unparseable(raw: bytes, error: Hl7Error, control_id: str, now: str,
                        sending: tuple[str, str] = ("TELEDERM", "TELEDERM")) -> str:
    """The ACK for bytes that failed to parse, using whatever MSH fields can be salvaged;
    MSA-1 is the error's `ack_code`."""
    header = salvage_header(raw)
    if len(header.control_id) > MAX_CONTROL_ID:  # not echoed back: MSA-2 stays empty
        header = dataclasses.replace(header, control_id="")
    text = _ack(header, error.ack_code, [error], control_id, now, sending)
    try:
        text.encode(codec(header.charset) or "utf-8")
    except UnicodeEncodeError:  # salvaged text the declared charset cannot carry: use UTF-8
        text = _ack(dataclasses.replace(header, charset=""), error.ack_code, [error],
                    control_id, now, sending)
    return text


def read_ack(message: str | bytes) -> AckResult:
    """Parse a peer's ACK. Raises `Hl7Error` (101 at MSA^1^1) when it has no MSA-1."""
    text = decode(message) if isinstance(message, bytes) else message
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip()
    try:
        ack = hl7.parse(text)
        msa = ack.segment("MSA")
    except Exception:
        raise Hl7Error("answer is not an HL7 ACK", hl7_code=101, location="MSA^1^1") from None
    code = msa.extract_field(1, 1) if len(msa) > 1 else ""
    if not code:
        raise Hl7Error("ACK has no MSA-1", hl7_code=101, location="MSA^1^1")
    acked = msa.extract_field(1, 2) if len(msa) > 2 else ""
    note = msa.extract_field(1, 3) if len(msa) > 3 else ""
    errors = tuple(_read_err(seg) for seg in ack if seg[0][0] == "ERR")
    return AckResult(code, acked, note, errors)


def _ack(original: Header, code: str, errors: list[Hl7Error], control_id: str, now: str,
         sending: tuple[str, str]) -> str:
    version = original.version if original.version in SUPPORTED_VERSIONS else "2.5"
    trigger = escape(original.trigger)
    lines = [
        msh(sending=(original.receiving_application or sending[0],
                     original.receiving_facility or sending[1]),
            receiving=(original.sending_application, original.sending_facility),
            now=now, message_type=f"ACK^{trigger}^ACK" if trigger else "ACK",
            control_id=control_id, version=version,
            charset=original.charset if codec(original.charset) else "",
            processing_id=original.processing_id or "P"),
        segment("MSA", code, escape_exact(original.control_id), escape(errors[0].text) if errors else ""),
    ]
    lines += [_err(e, version) for e in errors]
    return "\r".join(lines) + "\r"


def _err(error: Hl7Error, version: str) -> str:
    cwe = f"{error.hl7_code}^{escape(error.label)}^HL70357"
    eld = ""
    if version in _OLD_ERR:  # ERR-1 ELD: segment ^ sequence ^ field ^ code (CE as subcomponents)
        where = (error.location.split("^") + ["", "", ""])[:3]
        eld = "^".join(where + [cwe.replace("^", "&")])
    return segment("ERR", eld, error.location, cwe, error.severity, "", "",
                   escape(error.text), escape(error.hint))


def _read_err(seg: hl7.Segment) -> Hl7Error:
    """An ERR segment back into an `Hl7Error`; falls back to ERR-1 (ELD, v2.3.1/2.4) when ERR-3
    is empty. A location or code we cannot represent is dropped / read as 207."""
    def read(field: int, comp: int = 1, sub: int = 1) -> str:
        try:
            return seg.extract_field(1, field, 1, comp, sub) if field < len(seg) else ""
        except IndexError:
            return ""

    def erl(field: int, last: int) -> str:
        return "^".join(read(field, c) for c in range(1, last + 1)).rstrip("^")

    location, code = erl(2, 6), read(3)
    if not code:
        location, code = erl(1, 3), read(1, 4)
    severity = read(4) if read(4) in ("E", "W", "I") else "E"
    text = read(7) or read(3, 2) or read(1, 4, 2) or "no diagnostic given"
    code = code if code.isdigit() else "207"
    try:
        return Hl7Error(text, hl7_code=code, location=location, severity=severity)
    except ValueError:
        return Hl7Error(text, hl7_code=code, severity=severity)
