"""Pieces shared by the messages we write (ACK, ORU, DFT): escaping, MSH, PID, person types.

We always write the standard delimiters `|^~\\&`; every value goes through `escape()`, so text
from users or peers can never change a message's structure.
"""

from __future__ import annotations

import re

from connector.domain.model import Patient, PersonName, Practitioner

_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")

HD = str | tuple[str, ...]  # a hierarchic designator: namespace, or its components


def escape(text: str) -> str:
    """Escape HL7 delimiters (`\\E\\ \\F\\ \\S\\ \\T\\ \\R\\`); line breaks become spaces (callers
    that keep lines put one per OBX)."""
    text = "".join(_ESCAPES.get(c, c) for c in text)
    return re.sub(r"[\r\n]+", " ", text)


def segment(name: str, *fields: str) -> str:
    """One segment: fields are already escaped/composed; trailing empty fields are dropped."""
    values = list(fields)
    while values and not values[-1]:
        values.pop()
    return "|".join([name, *values])


def hd(value: HD) -> str:
    """An HD field from a namespace or a tuple of components."""
    parts = (value,) if isinstance(value, str) else value
    return "^".join(escape(p) for p in parts)


def authority(value: str) -> str:
    """An assigning authority inside a composite: an OID goes to the universal id with type ISO,
    anything else is a namespace id."""
    if _OID.match(value):
        return f"&{value}&ISO"
    return escape(value)


def xpn(name: PersonName) -> str:
    return "^".join([escape(name.family), escape(name.given)]).rstrip("^")


def xcn(person: Practitioner) -> str:
    """XCN: id ^ family ^ given ^ ... ^ assigning authority (XCN-9)."""
    parts = [escape(person.id), escape(person.name.family), escape(person.name.given)]
    if person.authority:
        parts += ["", "", "", "", "", authority(person.authority)]
    return "^".join(parts).rstrip("^")


def cnn(person: Practitioner) -> str:
    """CNN as used inside OBR-32 (NDL.1): components become subcomponents; the authority goes to
    CNN-9 (namespace) or CNN-10/11 (OID, ISO)."""
    parts = [escape(person.id), escape(person.name.family), escape(person.name.given)]
    if person.authority:
        auth = [person.authority, "ISO"] if _OID.match(person.authority) else []
        parts += ["", "", "", "", ""] + ([""] + auth if auth else [escape(person.authority)])
    return "&".join(parts).rstrip("&")


def msh(*, sending: tuple[HD, HD], receiving: tuple[HD, HD], now: str, message_type: str,
        control_id: str, version: str = "2.5", charset: str = "UNICODE UTF-8",
        processing_id: str = "P") -> str:
    """MSH with the standard delimiters; `message_type` is already composed (`ORU^R01^ORU_R01`)."""
    fields = [hd(sending[0]), hd(sending[1]), hd(receiving[0]), hd(receiving[1]), escape(now), "",
              message_type, escape(control_id), escape(processing_id), escape(version),
              "", "", "", "", "", escape(charset)]
    return segment("MSH|^~\\&", *fields)


def pid(patient: Patient) -> str:
    """PID-3 (CX: id ^^^ authority), PID-5, PID-7, PID-8."""
    cx = escape(patient.id) + (f"^^^{authority(patient.issuer)}" if patient.issuer else "")
    return segment("PID", "1", "", cx, "", xpn(patient.name), "", patient.birth_date,
                   patient.sex)


def pv1_outpatient() -> str:
    """The minimal visit: patient class O (outpatient), nothing else known to us."""
    return segment("PV1", "", "O")
