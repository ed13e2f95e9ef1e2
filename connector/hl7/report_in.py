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
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict

from connector.domain.errors import DomainError
from connector.domain.model import PersonName, Practitioner, valid_conduct_code
from connector.mapfile import read_toml
from connector.validation import NonEmpty, Problems, SiteModel

from .errors import Hl7Error
from .parse import Location, ParsedMessage
from .readers import Codes, authority_of, first_valued, position, positions, where_missing

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


# --- the mapping file, as written ---------------------------------------------------------

def _triggers(codes: tuple[str, ...]) -> tuple[str, ...]:
    if not all(_TRIGGER.match(c) for c in codes):
        raise ValueError("must list trigger events like R01")
    return codes


def _conduct_code(code: str) -> str:
    if not valid_conduct_code(code):
        raise ValueError("must be a conduct code like no_visit")
    return code


def _conduct_or_none(code: str) -> str:
    if code and not valid_conduct_code(code):
        raise ValueError('must be a conduct code like no_visit, or ""')
    return code


_Triggers = Annotated[Codes, NonEmpty, AfterValidator(_triggers)]
_ConductCode = Annotated[str, AfterValidator(_conduct_code)]


class _Events(SiteModel):
    """[events]: one key per message type (`ORU = ["R01"]`), and the events that correct."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, _Triggers]
    corrections: Codes = ()


class _Positions(SiteModel):
    accession: positions()
    placer_order_number: positions()
    status: positions()


class _Person(SiteModel):
    position: position(whole=True)
    type: Literal[_PERSON_TYPES]


class _Report(SiteModel):
    specialist: Annotated[tuple[_Person, ...], NonEmpty]
    text_value_types: Annotated[Codes, NonEmpty]


class _Conduct(SiteModel):
    observation: position(segment="OBX")
    identifiers: Annotated[Codes, NonEmpty]
    value: position(segment="OBX")
    when_absent: Annotated[str, AfterValidator(_conduct_or_none)]


class _Codes(SiteModel):
    status: Annotated[dict[str, Literal[_STATUSES]], NonEmpty]
    conduct: dict[str, _ConductCode]


class _File(SiteModel):
    events: _Events
    positions: _Positions
    report: _Report
    conduct: _Conduct
    codes: _Codes


@functools.lru_cache(maxsize=None)
def load_mapping(path: Path = MAPPING_FILE) -> ReportInMapping:
    """Read and check the mapping file once; a malformed one raises `ConfigError` naming the
    file and every bad key."""
    problems = Problems(str(path))
    f = problems.validate(_File, read_toml(path, "inbound report mapping"))
    if f is None:
        problems.raise_any()
    events = {name: frozenset(codes) for name, codes in f.events.model_extra.items()}
    for name in events:
        if not _TYPE.match(name):
            problems.add("must be a message type like ORU", key=f"events.{name}")
    if not events:
        problems.add("must list at least one message type", key="events")
    corrections = {tuple(text.split("^")) for text in f.events.corrections}
    if any(len(kind) != 2 or kind[1] not in events.get(kind[0], ()) for kind in corrections):
        problems.add("must list taken events written like MDM^T10", key="events.corrections")
    problems.raise_any()
    return ReportInMapping(
        events=events, corrections=frozenset(corrections),
        accession=f.positions.accession, placer_order_number=f.positions.placer_order_number,
        status=f.positions.status,
        specialist=tuple(PersonField(p.position, p.type) for p in f.report.specialist),
        text_value_types=frozenset(f.report.text_value_types),
        conduct_observation=f.conduct.observation,
        conduct_identifiers=frozenset(f.conduct.identifiers), conduct_value=f.conduct.value,
        conduct_when_absent=f.conduct.when_absent,
        status_codes={k.upper(): v for k, v in f.codes.status.items()},
        conduct_codes={k.upper(): v for k, v in f.codes.conduct.items()})


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
