"""Pieces shared by the messages we write (ACK, ORU, MDM, order status, DFT): escaping, MSH,
PID, person types.

We always write the standard delimiters `|^~\\&`; every value goes through `escape()`, so text
from users or peers can never change a message's structure.

French rules applied here (reference hl7-and-billing.md 9.2-9.4): the national INS goes out in
PID-3 (CX-5 `INS`, its OID as assigning authority) only for a qualified identity (PID-32
`QUAL`); PID-32 carries the identity status and flags as received; a practitioner's identifier
type (e.g. `IDNPS` for an IdNatPS) goes to XCN-13.
"""

from __future__ import annotations

import re

from connector.domain.model import Patient, PersonName, Practitioner, valid_oid

_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)
_SPECIAL = re.compile(r"[\\|^&~\r\n]")
_LINE_BREAKS = re.compile(r"[\r\n]+")

HD = str | tuple[str, ...]  # a hierarchic designator: namespace, or its components


def escape(text: str) -> str:
    """Escape HL7 delimiters (`\\E\\ \\F\\ \\S\\ \\T\\ \\R\\`); line breaks become spaces (callers
    that keep lines put one per OBX)."""
    if not _SPECIAL.search(text):
        return text  # most values: nothing to escape
    return _LINE_BREAKS.sub(" ", text.translate(_ESCAPE_TABLE))


def escape_exact(text: str) -> str:
    """`escape()` that keeps line breaks, as hex escapes (`\\X0D\\`, `\\X0A\\`): for values
    echoed back to their sender, such as MSH-10 in MSA-2, which must compare equal."""
    text = text.translate(_ESCAPE_TABLE)
    return text.replace("\r", "\\X0D\\").replace("\n", "\\X0A\\")


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


def authority(value: str, namespace: str = "") -> str:
    """An assigning authority inside a composite: an OID goes to the universal id with type ISO
    (beside `namespace`, the namespace id the sender gave with it), anything else is a
    namespace id."""
    if valid_oid(value):
        return f"{escape(namespace)}&{value}&ISO"
    return escape(value)


def xpn(name: PersonName) -> str:
    return "^".join([escape(name.family), escape(name.given)]).rstrip("^")


def xcn(person: Practitioner) -> str:
    """XCN: id ^ family ^ given ^ ... ^ assigning authority (XCN-9) ... ^ identifier type code
    (XCN-13, when known: IDNPS, RPPS ...)."""
    return "^".join(_xcn_parts(person)).rstrip("^")


def _xcn_parts(person: Practitioner) -> list[str]:
    parts = [escape(person.id), escape(person.name.family), escape(person.name.given)]
    if person.authority or person.id_type:
        parts += ["", "", "", "", "", authority(person.authority) if person.authority else ""]
    if person.id_type:
        parts += ["", "", "", escape(person.id_type)]
    return parts


def ppn(person: Practitioner, when: str) -> str:
    """PPN (TXA-22): the XCN components, then the date/time of the action in PPN-15."""
    parts = _xcn_parts(person)
    parts += [""] * (14 - len(parts)) + [escape(when)]
    return "^".join(parts).rstrip("^")


def cnn(person: Practitioner) -> str:
    """CNN as used inside OBR-32 (NDL.1): components become subcomponents; the authority goes to
    CNN-9 (namespace) or CNN-10/11 (OID, ISO)."""
    parts = [escape(person.id), escape(person.name.family), escape(person.name.given)]
    if person.authority:
        auth = [person.authority, "ISO"] if valid_oid(person.authority) else []
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
    """PID-3 (CX: id ^^^ authority ^ type, repeated), PID-5, PID-7, PID-8, PID-32.

    Each identifier goes back as the sender wrote it (`Patient.id_details`): the namespace
    beside its OID and its type code (`IPP123456^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI`).

    PID-3: the patient's identifier, then its other identifiers (e.g. the IPP when a qualified
    INS is the identifier), then the INS when the identity is qualified and it is not there yet;
    the INS repetition has CX-5 `INS`. An INS of an identity that is not qualified is never
    written. PID-32 repeats the identity status and flags as the order carried them."""
    ins = (patient.ins, patient.ins_oid) if patient.ins else None
    pairs = [(patient.id, patient.issuer), *patient.other_ids]
    if patient.ins_usable and ins not in pairs:
        pairs.append(ins)
    ids = []
    for pair in dict.fromkeys(pairs):  # in order, once each
        if pair == ins and not patient.ins_usable:
            continue  # (the model refuses this; never send an unusable INS)
        namespace, id_type = patient.details_of(*pair)
        ids.append(_cx(pair[0], pair[1], namespace,
                       "INS" if pair == ins else id_type))
    status = "~".join(escape(s) for s in (patient.identity_status, *patient.identity_flags) if s)
    fields = ["1", "", "~".join(ids), "", xpn(patient.name), "", patient.birth_date, patient.sex]
    if status:
        fields += [""] * 23 + [status]  # PID-9 .. PID-31 empty, PID-32
    return segment("PID", *fields)


def _cx(value: str, issuer: str, namespace: str, type_code: str) -> str:
    """CX: id ^^^ assigning authority (CX-4) ^ identifier type code (CX-5)."""
    parts = [escape(value), "", "", authority(issuer, namespace) if issuer else "",
             escape(type_code)]
    return "^".join(parts).rstrip("^")


def pv1_outpatient() -> str:
    """The minimal visit: patient class O (outpatient), nothing else known to us."""
    return segment("PV1", "", "O")
