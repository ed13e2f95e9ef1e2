"""A report from the reporting system (ORU^R01, MDM^T02, MDM^T10) -> `InboundReport`: which
case it answers, its text, conduct, signing dermatologist and whether it corrects a report
already sent.

Field positions and code tables are data (`mappings/hl7/report_in.toml`). Every problem becomes
an `Hl7Error` located where the sender must look (101 missing, 102 malformed, 103 code not in a
table, 100 more than one report); ERR-7 never quotes a received value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from connector.domain.errors import DomainError
from connector.domain.model import PersonName, Practitioner, valid_conduct_code

from .errors import Hl7Error
from .parse import Location, ParsedMessage
from .readers import MappingFile, authority_of, first_valued, where_missing

MAPPING_FILE = Path(__file__).resolve().parents[2] / "mappings" / "hl7" / "report_in.toml"

_TYPE = re.compile(r"^[A-Z]{3}$")
_TRIGGER = re.compile(r"^[A-Z0-9]{3}$")
_STATUSES = ("final", "corrected")
_PERSON_TYPES = ("NDL", "XCN")


@dataclass(frozen=True)
class PersonField:
    """Where a person is read and how its components are laid out (NDL or XCN)."""

    position: Location
    type: str


@dataclass(frozen=True)
class ReportInMapping:
    events: dict[str, frozenset[str]]            # MSH-9.1 -> MSH-9.2 taken
    corrections: frozenset[tuple[str, str]]      # (type, trigger) that always correct
    accession: tuple[Location, ...]
    placer_order_number: tuple[Location, ...]
    status: tuple[Location, ...]
    specialist: tuple[PersonField, ...]
    text_value_types: frozenset[str]
    conduct_observation: Location
    conduct_identifiers: frozenset[str]
    conduct_value: Location
    conduct_when_absent: str
    status_codes: dict[str, str]
    conduct_codes: dict[str, str]


@dataclass(frozen=True)
class InboundReport:
    """What a reporting system's message says, before we look the case up."""

    accession: str                 # our accession (filler order number), or ""
    accession_location: str        # ERR-2 where it was read (or would have been)
    placer_order_number: str       # the requester's number, or ""
    placer_namespace: str          # its EI.2 (the placer application), or ""
    placer_location: str
    text: str
    conduct: str                   # a code of mappings/conducts.toml
    conduct_location: str          # ERR-2 of the conduct's OBX-5, "" when defaulted
    specialist: Practitioner
    correction: bool               # OBX-11 C (or another corrected status), or MDM^T10
    status_location: str


@functools.lru_cache(maxsize=None)
def load_mapping(path: Path = MAPPING_FILE) -> ReportInMapping:
    """Read and check the mapping file once; a malformed one raises `ConfigError` naming the
    file and key."""
    f = MappingFile(path, "inbound report mapping")
    section = f.table("events")
    events = {}
    for name in section:
        if name == "corrections":
            continue
        if not _TYPE.match(name):
            raise f.fail(f"events.{name}", "must be a message type like ORU")
        codes = f.codes(f"events.{name}")
        if not all(_TRIGGER.match(c) for c in codes):
            raise f.fail(f"events.{name}", "must list trigger events like R01")
        events[name] = frozenset(codes)
    if not events:
        raise f.fail("events", "must list at least one message type")
    corrections = set()
    for text in section.get("corrections", []):
        kind = tuple(str(text).strip().upper().split("^"))
        if len(kind) != 2 or kind[1] not in events.get(kind[0], ()):
            raise f.fail("events.corrections", "must list taken events written like MDM^T10")
        corrections.add(kind)
    report = f.table("report")
    people = report.get("specialist")
    if not isinstance(people, list) or not people:
        raise f.fail("report.specialist", "must be a non-empty list of {position, type}")
    specialist = []
    for entry in people:
        if not isinstance(entry, dict) or set(entry) != {"position", "type"}:
            raise f.fail("report.specialist", "each entry must be {position = ..., type = ...}")
        if entry["type"] not in _PERSON_TYPES:
            raise f.fail("report.specialist", "type must be NDL or XCN")
        specialist.append(PersonField(f._position("report.specialist", entry["position"],
                                                  whole=True), entry["type"]))
    conduct = f.table("conduct")
    when_absent = conduct.get("when_absent", "")
    if not isinstance(when_absent, str) or (when_absent and not valid_conduct_code(when_absent)):
        raise f.fail("conduct.when_absent", 'must be a conduct code like no_visit, or ""')
    statuses = f.table("codes.status")
    if not statuses or not all(v in _STATUSES for v in statuses.values()):
        raise f.fail("codes.status", "must map status codes to final or corrected")
    conducts = f.table("codes.conduct")
    if not all(isinstance(v, str) and valid_conduct_code(v) for v in conducts.values()):
        raise f.fail("codes.conduct", "must map codes to conduct codes like no_visit")
    return ReportInMapping(
        events=events, corrections=frozenset(corrections),
        accession=f.positions("positions.accession"),
        placer_order_number=f.positions("positions.placer_order_number"),
        status=f.positions("positions.status"),
        specialist=tuple(specialist),
        text_value_types=frozenset(f.codes("report.text_value_types")),
        conduct_observation=f.position("conduct.observation", segment="OBX"),
        conduct_identifiers=frozenset(f.codes("conduct.identifiers")),
        conduct_value=f.position("conduct.value", segment="OBX"),
        conduct_when_absent=when_absent,
        status_codes={k.upper(): v for k, v in statuses.items()},
        conduct_codes={k.upper(): v for k, v in conducts.items()})


def events(mapping: ReportInMapping | None = None) -> frozenset[tuple[str, str]]:
    """The (MSH-9.1, MSH-9.2) pairs this mapper takes."""
    m = mapping or load_mapping()
    return frozenset((t, e) for t, triggers in m.events.items() for e in triggers)


def message_types(mapping: ReportInMapping | None = None) -> frozenset[str]:
    return frozenset((mapping or load_mapping()).events)


def read_report(msg: ParsedMessage, mapping: ReportInMapping | None = None, *,
                conducts: Collection[str] | None = None) -> InboundReport:
    """The report a message carries. `conducts` are the known conduct codes (none = not checked).

    Raises `Hl7Error` (AE): 100 for more than one OBR; 101 when the case is not named, the text,
    the status or the specialist is missing, or the conduct is missing and the mapping has no
    default; 102 for a malformed specialist name; 103 for a status or conduct code the tables
    do not take.
    """
    m = mapping or load_mapping()
    if msg.segment_ids().count("OBR") > 1:
        raise Hl7Error("only one report (OBR) per message is supported", hl7_code=100,
                       location="OBR^2", hint="send one report per message")
    acc_loc, accession = first_valued(msg, m.accession)
    placer_loc, placer = first_valued(msg, m.placer_order_number)
    if not accession and not placer:
        loc = where_missing(msg, m.accession)
        raise Hl7Error(f"the case is not named ({loc.segment}-{loc.field})", hl7_code=101,
                       location=loc.erl(), hint="send our accession number (the filler order "
                       "number) or the placer order number of the request")
    if not accession:
        acc_loc = where_missing(msg, m.accession)
    if not placer:
        placer_loc = where_missing(msg, m.placer_order_number)
    conduct_obx, conduct, conduct_where = _conduct(msg, m, conducts)
    text, text_where = _text(msg, m, skip=conduct_obx)
    if not text:
        raise Hl7Error("report text is missing", hl7_code=101, location=text_where,
                       hint="send the report as OBX with value type "
                            + " or ".join(sorted(m.text_value_types)))
    status_loc, status = first_valued(msg, m.status)
    if not status:
        status_loc = where_missing(msg, m.status)
        raise Hl7Error(f"report status is missing ({status_loc.segment}-{status_loc.field})",
                       hl7_code=101, location=status_loc.erl())
    meaning = m.status_codes.get(status.upper())
    if meaning is None:
        raise Hl7Error("report status is not one we record (only signed reports are)",
                       hl7_code=103, location=status_loc.erl(),
                       hint="use one of " + ", ".join(sorted(m.status_codes)))
    correction = (meaning == "corrected"
                  or (msg.message_type.upper(), msg.trigger.upper()) in m.corrections)
    return InboundReport(
        accession=accession, accession_location=acc_loc.erl(),
        placer_order_number=placer, placer_namespace=msg.part(placer_loc, 2),
        placer_location=placer_loc.erl(), text=text, conduct=conduct,
        conduct_location=conduct_where, specialist=_specialist(msg, m),
        correction=correction, status_location=status_loc.erl())


def _obx_count(msg: ParsedMessage) -> int:
    return msg.segment_ids().count("OBX")


def _conduct(msg: ParsedMessage, m: ReportInMapping,
             conducts: Collection[str] | None) -> tuple[int, str, str]:
    """(OBX number of the conduct or 0, our conduct code, ERR-2 of its value or "")."""
    for n in range(1, _obx_count(msg) + 1):
        what = msg.value(m.conduct_observation.at(occurrence=n)).strip().upper()
        if what not in m.conduct_identifiers:
            continue
        where = m.conduct_value.at(occurrence=n)
        code = msg.value(where).strip()
        if not code:
            raise Hl7Error("conduct code is missing", hl7_code=101, location=where.erl())
        ours = m.conduct_codes.get(code.upper())
        if ours is None and (conducts is None or code.lower() in conducts):
            ours = code.lower()
        if ours is None or (conducts is not None and ours not in conducts):
            raise Hl7Error("conduct code is not in the accepted table", hl7_code=103,
                           location=where.erl(),
                           hint="use one of " + ", ".join(sorted(conducts or ())))
        return n, ours, where.erl()
    if not m.conduct_when_absent:
        raise Hl7Error("conduct is missing", hl7_code=101,
                       location="OBX^1" if _obx_count(msg) else "OBR^1",
                       hint="send an OBX whose observation is one of "
                            + ", ".join(sorted(m.conduct_identifiers)))
    return 0, m.conduct_when_absent, ""


def _text(msg: ParsedMessage, m: ReportInMapping, *, skip: int) -> tuple[str, str]:
    """(report text, ERR-2 to name when it is empty)."""
    lines: list[str] = []
    first = 0
    for n in range(1, _obx_count(msg) + 1):
        if n == skip or msg.value(Location("OBX", n, 2)).strip().upper() not in m.text_value_types:
            continue
        first = first or n
        for value in msg.repetitions(Location("OBX", n, 5)):
            lines += value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    text = "\n".join(line.rstrip() for line in lines).strip("\n")
    if first:
        return (text if text.strip() else ""), f"OBX^{first}^5"
    return "", "OBX^1^5" if _obx_count(msg) else "OBX^1"


def _specialist(msg: ParsedMessage, m: ReportInMapping) -> Practitioner:
    chosen = next((p for p in m.specialist if msg.components(p.position)), None)
    if chosen is None:
        loc = where_missing(msg, tuple(p.position for p in m.specialist))
        raise Hl7Error(f"the signing dermatologist is missing ({loc.segment}-{loc.field})",
                       hl7_code=101, location=loc.erl())
    loc = chosen.position
    if chosen.type == "NDL":  # CNN in NDL.1: the parts are subcomponents
        ident, family, given = (msg.part(loc, 1, s) for s in (1, 2, 3))
        auth = msg.part(loc, 1, 10) or msg.part(loc, 1, 9)
    else:
        ident, family, given = msg.part(loc, 1), msg.part(loc, 2, 1), msg.part(loc, 3)
        auth = authority_of(msg, loc, 9)
    if not ident:
        raise Hl7Error(f"the dermatologist's identifier is missing ({loc.segment}-{loc.field})",
                       hl7_code=101, location=loc.erl())
    if not family:
        raise Hl7Error(f"the dermatologist's name is missing ({loc.segment}-{loc.field})",
                       hl7_code=101, location=loc.erl())
    try:
        return Practitioner(ident, PersonName(family, given), authority=auth)
    except DomainError as exc:
        raise Hl7Error(exc.text, hl7_code=102, location=loc.erl()) from None
