"""ADT identity messages -> a patient update (A08, A31), a merge (A40), a change of identifier
(A47) or a link / unlink of two patient records (A24 / A37), as domain patients.

Which trigger does what, and where the prior identifier of a merge is, are data
(`mappings/hl7/adt.toml`). The patient in PID is read by `orm.patient_from_message`, with the
order mapping's positions and code tables, so an ADT and an order agree on who the patient is.
Every problem becomes an `Hl7Error` located where the sender must look, and never quotes a
received value (ERR-7 must not carry patient data).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

from connector.domain.model import Patient
from connector.mapfile import read_toml
from connector.validation import NonEmpty, Problems, SiteModel

from .errors import Hl7Error
from .orm import OrmMapping, patient_from_message
from .parse import Location, ParsedMessage
from .readers import Codes, authority_of, position

MAPPING_FILE = Path(__file__).resolve().parents[2] / "mappings" / "hl7" / "adt.toml"
MESSAGE_TYPE = "ADT"
_MAX_ID = 64  # as Patient.id


@dataclass(frozen=True)
class AdtMapping:
    update_events: frozenset[str]
    merge_events: frozenset[str]
    prior_patient_id: Location
    change_identifier_events: frozenset[str] = frozenset()
    link_events: frozenset[str] = frozenset()
    unlink_events: frozenset[str] = frozenset()
    second_patient: int = 2  # the occurrence of PID holding a link's other patient

    @property
    def all_events(self) -> frozenset[str]:
        return (self.update_events | self.merge_events | self.change_identifier_events
                | self.link_events | self.unlink_events)


@dataclass(frozen=True)
class PatientUpdate:
    """A08 / A31: the patient's demographics as the identity server now knows them."""

    event: str
    patient: Patient


@dataclass(frozen=True)
class PatientMerge:
    """A40: the prior patient (MRG) is merged into the surviving one (PID)."""

    event: str
    surviving: Patient
    prior_id: str
    prior_issuer: str
    prior_location: str  # ERR-2 of the prior identifier (`MRG^1^1`)


@dataclass(frozen=True)
class IdentifierChange:
    """A47: the patient's identifier in MRG (prior) is replaced by the one in PID."""

    event: str
    patient: Patient
    prior_id: str
    prior_issuer: str
    prior_location: str


@dataclass(frozen=True)
class PatientLink:
    """A24 (`link`) / A37 (not `link`): the two patients are one person, or no longer said to
    be; `other` is read from the PID at the mapping's `second_patient` occurrence."""

    event: str
    patient: Patient
    other: Patient
    link: bool


def _triggers(codes: tuple[str, ...]) -> tuple[str, ...]:
    if any(len(c) != 3 or not c[0].isalpha() or not c[1:].isdigit() for c in codes):
        raise ValueError("must list ADT trigger events like A08")
    return codes


_Triggers = Annotated[Codes, NonEmpty, AfterValidator(_triggers)]


class _Events(SiteModel):
    update: _Triggers
    merge: _Triggers
    change_identifier: _Triggers
    link: _Triggers
    unlink: _Triggers


class _Merge(SiteModel):
    prior_patient_id: position(whole=True, segment="MRG")


class _Link(SiteModel):
    second_patient: Annotated[int, Field(ge=2, le=9)]


class _File(SiteModel):
    events: _Events
    merge: _Merge
    link: _Link


@functools.lru_cache(maxsize=None)
def load_mapping(path: Path = MAPPING_FILE) -> AdtMapping:
    """Read and check the mapping file once; a malformed one raises `ConfigError` naming the
    file and every bad key."""
    problems = Problems(str(path))
    f = problems.validate(_File, read_toml(path, "ADT mapping"))
    if f is not None:
        lists = {"update": f.events.update, "merge": f.events.merge,
                 "change_identifier": f.events.change_identifier, "link": f.events.link,
                 "unlink": f.events.unlink}
        seen: dict[str, str] = {}
        for name, codes in lists.items():
            for code in codes:
                if code in seen:
                    problems.add(f"{code} is listed both as {seen[code]} and as {name}",
                                 key="events")
                seen.setdefault(code, name)
    problems.raise_any()
    return AdtMapping(frozenset(f.events.update), frozenset(f.events.merge),
                      f.merge.prior_patient_id, frozenset(f.events.change_identifier),
                      frozenset(f.events.link), frozenset(f.events.unlink),
                      f.link.second_patient)


def relocated(err: Hl7Error, segment: str, occurrence: int) -> Hl7Error:
    """`err` (raised reading a message through `with_first(segment, occurrence)`) located at
    that occurrence."""
    return Hl7Error(err.text, hl7_code=err.hl7_code,
                    location=erl_at(err.location, segment, occurrence),
                    severity=err.severity, ack_code=err.ack_code, hint=err.hint)


def erl_at(location: str, segment: str, occurrence: int) -> str:
    """An ERR-2 location of the first `segment` moved to occurrence `occurrence`."""
    parts = location.split("^")
    if parts[0] == segment and len(parts) > 1 and parts[1] == "1":
        parts[1] = str(occurrence)
    return "^".join(parts)


def events(mapping: AdtMapping | None = None) -> frozenset[tuple[str, str]]:
    """The (MSH-9.1, MSH-9.2) pairs this mapper takes."""
    m = mapping or load_mapping()
    return frozenset((MESSAGE_TYPE, e) for e in m.all_events)


def read_adt(msg: ParsedMessage, mapping: AdtMapping | None = None, *,
             orm: OrmMapping | None = None
             ) -> PatientUpdate | PatientMerge | IdentifierChange | PatientLink:
    """The update or merge an ADT message carries; PID is read with `orm` (the order mapping
    the site runs with, test mode included), or the shipped one.

    Raises `Hl7Error`: 201 (AR) for an event the mapping does not list; from PID, what
    `patient_from_message` raises (101 missing identifier or name, 102 malformed, 103 sex code);
    for a merge or a change of identifier, 100 when the MRG segment is missing, 101 when its
    identifier is empty, 102 when it is longer than 64 characters; for a link or unlink, what
    reading the second PID raises, located at that PID (`PID^2^3`).
    """
    m = mapping or load_mapping()
    event = msg.trigger.upper()
    if msg.message_type.upper() != MESSAGE_TYPE or event not in m.all_events:
        raise Hl7Error(f"event {msg.trigger} is not supported for {msg.message_type}",
                       hl7_code="201", location="MSH^1^9^2", ack_code="AR")
    patient = patient_from_message(msg, orm)
    if event in m.update_events:
        return PatientUpdate(event, patient)
    if event in m.link_events | m.unlink_events:
        n = m.second_patient
        try:
            other = patient_from_message(msg.with_first("PID", n), orm)
        except Hl7Error as err:
            raise relocated(err, "PID", n) from None
        return PatientLink(event, patient, other, event in m.link_events)
    loc = m.prior_patient_id
    if loc.segment not in msg.segment_ids():
        raise Hl7Error(f"a merge needs an {loc.segment} segment naming the prior patient",
                       hl7_code="100", location=f"{loc.segment}^1",
                       hint=f"send {loc.segment}-{loc.field} with the identifier being merged")
    prior_id = msg.part(loc, 1)
    where = f"{loc.segment}^{loc.occurrence}^{loc.field}"
    if not prior_id:
        raise Hl7Error(f"prior patient identifier is missing ({loc.segment}-{loc.field})",
                       hl7_code="101", location=where)
    if len(prior_id) > _MAX_ID:
        raise Hl7Error(f"prior patient identifier is longer than {_MAX_ID} characters",
                       hl7_code="102", location=where)
    kind = IdentifierChange if event in m.change_identifier_events else PatientMerge
    return kind(event, patient, prior_id, authority_of(msg, loc, 4), where)
