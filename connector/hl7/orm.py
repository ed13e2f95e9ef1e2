"""ORM^O01 / OMG^O19 -> (order control, domain `Order`), the images embedded in the order
(OBX ED) -> `OrderImage`s, and a teleconsultation the EHR reports as done (a teleconsultation
procedure code in OBR-4) -> `ReportedTeleconsultation`.

A new order (ORC-1 NW) also carries the patient's consent (required, `questionnaire.py`), the
structured request (questionnaire answers, `mappings/questionnaire.toml`) and the triage they
give, and the requesting facility (FINESS). French identity rules (INS and its status, IdNatPS /
RPPS) are in `identity.py`; test and demo INS are accepted only when the mapping was loaded for
a site in test mode (`OrmMapping.test_mode`, from `[hl7] test_mode` of the config).

Which field holds what is data (`mappings/hl7/orm_o01.toml`), because senders disagree (ORC-12
or OBR-16, TQ1-9 or ORC-7 or OBR-5 ...). Every problem becomes an `Hl7Error` located where the
sender must look; domain validation errors are relocated onto the HL7 position they came from.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Len

from connector.domain.errors import DomainError
from connector.domain.model import (ImageKind, Order, Patient, PersonName, Practitioner, Priority,
                                    valid_date)
from connector.mapfile import read_toml
from connector.validation import SiteModel, load

from .errors import Hl7Error
from .identity import (FacilitySection, IdentityMapping, IdentitySection, ReliabilityCodes,
                       facility, identity_mapping, patient_ids, practitioner_ids)
from .parse import Location, ParsedMessage, is_timestamp
from .questionnaire import (ConsentMapping, ConsentSection, Questionnaire, answers_from_order,
                            consent_from_order, load_questionnaire)
from .readers import Codes, authority_of, position, positions

MAPPING_FILE = Path(__file__).resolve().parents[2] / "mappings" / "hl7" / "orm_o01.toml"

_IMAGE_KINDS = tuple(k.value for k in ImageKind)


@dataclass(frozen=True)
class ImageMapping:
    """Where an embedded image's kind and body site are read, and which subtypes are taken."""

    kind: Location
    site: Location
    subtypes: frozenset[str]
    kind_codes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class OrderImage:
    """One image embedded in an order (OBX with value type ED)."""

    location: str      # ERR-2 form of its OBX-5, e.g. `OBX^1^5`
    data: bytes
    subtype: str       # OBX-5.3 as sent (JPEG, PNG ...)
    kind: str          # photo | dermoscopy
    site: str          # body-site code, or ""


@dataclass(frozen=True)
class TeleconsultationMapping:
    """Where a teleconsultation reported as done is recognised and read ([teleconsultation] and
    [codes.teleconsultation]); no codes = the feature is off."""

    service: Location
    codes: tuple[tuple[str, bool], ...]  # OBR-4.1 code -> specialist_is_gp (TCG: GP)
    performed_at: tuple[Location, ...]
    performer: tuple[Location, ...]
    majoration: Location
    majoration_codes: frozenset[str]
    majoration_value: Location


@dataclass(frozen=True)
class OrmMapping:
    """The parsed mapping file: positions per order part, code tables, accepted ORC-1 values."""

    positions: dict[str, tuple[Location, ...]]
    question_notes: Location
    order_controls: frozenset[str]
    priority_codes: dict[str, Priority]
    sex_codes: dict[str, str]
    images: ImageMapping
    inpatient_classes: frozenset[str]
    teleconsultation: TeleconsultationMapping
    identity: IdentityMapping
    consent: ConsentMapping
    # The questionnaire the order's OBX answer (None: the shipped mappings/questionnaire.toml).
    questionnaire: Questionnaire | None = None
    # Test mode (config `[hl7] test_mode`): test and demo INS are accepted.
    test_mode: bool = False


@dataclass(frozen=True)
class OrderCancel:
    """What a cancel (ORC-1 CA) names: the order by its placer number, its filler number (our
    accession), or both; the whole order when the message carries one (None otherwise)."""

    sender: str
    placer_order_number: str  # "" when only the filler number is given
    filler_order_number: str  # "" when only the placer number is given
    order: Order | None


@dataclass(frozen=True)
class ReportedTeleconsultation:
    """A teleconsultation the EHR reports as done (OBR-4 carries a teleconsultation code)."""

    code: str                      # OBR-4.1 as sent
    specialist_is_gp: bool         # TCG (GP) rather than TC (specialist)
    performer: Practitioner        # the doctor who performed it
    performed_on: str              # act date YYYYMMDD, "" when the message gives none
    majorations: tuple[str, ...]   # codes claimed, in OBX order
    majoration_locations: tuple[str, ...]  # ERR-2 of each claimed majoration (`OBX^n^5`)


# --- the mapping file, as written ---------------------------------------------------------

class _Positions(SiteModel):
    order_control: positions()
    placer_order_number: positions()
    filler_order_number: positions()
    ordered_at: positions()
    procedure: positions()
    question: positions()
    priority: positions()
    requester: positions(whole=True)
    patient_id: positions(whole=True)
    patient_name: positions(whole=True)
    birth_date: positions()
    sex: positions()
    patient_class: positions()
    service: positions()
    procedure_code: positions()


class _Notes(SiteModel):
    question: position()


class _Codes(SiteModel):
    order_control: tuple[Annotated[str, Len(min_length=1)], ...]
    inpatient_classes: Codes
    priority: dict[str, Priority]
    sex: dict[str, Literal["M", "F", "O", ""]]
    image_kind: dict[str, Literal[_IMAGE_KINDS]]
    teleconsultation: dict[str, Literal["specialist", "gp"]]
    identity_reliability: ReliabilityCodes


class _Images(SiteModel):
    kind: position(segment="OBX")
    site: position(segment="OBX")
    subtypes: Codes


class _Teleconsultation(SiteModel):
    service: position(segment="OBR")
    performer: positions(whole=True)
    performed_at: positions()
    majoration: position(segment="OBX")
    majoration_codes: Codes
    majoration_value: position(segment="OBX")


class _OrmFile(SiteModel):
    positions: _Positions
    notes: _Notes
    codes: _Codes
    images: _Images
    teleconsultation: _Teleconsultation
    identity: IdentitySection
    facility: FacilitySection
    consent: ConsentSection


@functools.lru_cache(maxsize=None)
def load_mapping(path: Path = MAPPING_FILE) -> OrmMapping:
    """Read and check the mapping file once; a malformed one raises `ConfigError` naming the
    file and every bad key."""
    f = load(_OrmFile, read_toml(path, "ORM mapping"), str(path))
    codes, tc = f.codes, f.teleconsultation
    return OrmMapping(
        positions=dict(f.positions), question_notes=f.notes.question,
        order_controls=frozenset(codes.order_control), priority_codes=dict(codes.priority),
        sex_codes=dict(codes.sex),
        images=ImageMapping(f.images.kind, f.images.site, frozenset(f.images.subtypes),
                            tuple((k.upper(), v) for k, v in codes.image_kind.items())),
        inpatient_classes=frozenset(codes.inpatient_classes),
        teleconsultation=TeleconsultationMapping(
            service=tc.service, codes=tuple((k.upper(), v == "gp")
                                            for k, v in codes.teleconsultation.items()),
            performed_at=tc.performed_at, performer=tc.performer, majoration=tc.majoration,
            majoration_codes=frozenset(tc.majoration_codes),
            majoration_value=tc.majoration_value),
        identity=identity_mapping(f.identity, f.facility, codes.identity_reliability),
        consent=f.consent.mapping())


def images_from_orm(msg: ParsedMessage, mapping: OrmMapping | None = None) -> list[OrderImage]:
    """Every image embedded in the order: each OBX whose OBX-2 is ED, decoded.

    Raises `Hl7Error` (AE) located at the OBX's field 5 (`OBX^n^5`): 101 when the data is
    empty, 102 when it is not Base64 or not image data (OBX-5.2 must be IM, OBX-5.4 Base64),
    103 for a subtype not in the mapping's list. Other OBX (NM, TX, CWE answers ...) are left
    alone.
    """
    m = (mapping or load_mapping()).images
    kinds = dict(m.kind_codes)
    found = []
    for n in range(1, msg.segment_ids().count("OBX") + 1):
        if msg.value(Location("OBX", n, 2)).strip().upper() != "ED":
            continue
        where = Location("OBX", n, 5)
        part = functools.partial(msg.part, where)
        if part(2).upper() != "IM":
            raise Hl7Error("only images (ED type of data IM) can be embedded in an order",
                           hl7_code=102, location=where.erl(),
                           hint="send other documents separately")
        subtype = part(3)
        if subtype.upper() not in m.subtypes:
            raise Hl7Error(f"image subtype {subtype!r} is not accepted", hl7_code=103,
                           location=where.erl(), hint="use one of " + ", ".join(sorted(m.subtypes)))
        if part(4).upper() != "BASE64":
            raise Hl7Error("embedded image data must be Base64-encoded (OBX-5.4 Base64)",
                           hl7_code=102, location=where.erl())
        text = "".join(msg.value(where.at(component=5)).split())
        if not text:
            raise Hl7Error("embedded image has no data (OBX-5.5)", hl7_code=101,
                           location=where.erl())
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise Hl7Error("embedded image data is not valid Base64", hl7_code=102,
                           location=where.erl()) from None
        code = msg.value(m.kind.at(occurrence=n)).strip().upper()
        found.append(OrderImage(location=where.erl(), data=data, subtype=subtype,
                                kind=kinds.get(code, "photo"),
                                site=msg.value(m.site.at(occurrence=n)).strip()))
    return found


def order_from_orm(msg: ParsedMessage, mapping: OrmMapping | None = None) -> tuple[str, Order]:
    """Read the single order of an ORM^O01 / OMG^O19: (ORC-1 order control, Order).

    Raises `Hl7Error` (AE): 101 for a missing required part (at the first position tried), 102
    for a malformed value, 103 for a code not in the mapping's tables, 100 when the message
    carries more than one order (we would otherwise silently drop the others).
    """
    m = mapping or load_mapping()
    control = order_control(msg, m)
    reader = _Reader(msg, m)
    placer_loc, placer = reader.required("placer_order_number", "placer order number")
    patient, requester = _patient(reader), _requester(reader)
    question, priority, ordered_at = _question(reader), _priority(reader), _ordered_at(reader)
    _, procedure = reader.first("procedure")
    _, patient_class = reader.first("patient_class")
    hospitalised = patient_class.upper() in m.inpatient_classes
    extra = {"procedure": procedure[:64], "service": reader.first("service")[1].strip(),
             "procedure_code": reader.first("procedure_code")[1].strip()}
    if control.upper() == "NW":
        extra.update(_request(msg, m, priority))
    order = _relocate(lambda: Order(msg.sender, placer, patient, requester, question, priority,
                                    ordered_at, hospitalised, **extra),
                      {"placer_order_number": placer_loc})
    return control, order


def order_control(msg: ParsedMessage, mapping: OrmMapping | None = None) -> str:
    """ORC-1 of the message's single order, upper case. Raises `Hl7Error` (AE): 101 when it is
    missing, 103 when the mapping does not take it, 100 for more than one order (we would
    otherwise silently drop the others)."""
    m = mapping or load_mapping()
    if msg.segment_ids().count("ORC") > 1:
        raise Hl7Error("only one order (ORC) per message is supported", hl7_code=100,
                       location="ORC^2", hint="send one order per message")
    control_loc, control = _Reader(msg, m).required("order_control", "order control")
    if control.upper() not in m.order_controls:
        raise Hl7Error(f"order control {control!r} is not supported", hl7_code=103,
                       location=control_loc.erl(),
                       hint="use one of " + ", ".join(sorted(m.order_controls)))
    return control.upper()


def cancel_from_orm(msg: ParsedMessage, mapping: OrmMapping | None = None) -> OrderCancel:
    """The order a cancel (ORC-1 CA) names: by the placer's number (ORC-2), ours (ORC-3, the
    accession), or both. Nothing else is required (ORC-12, OBR, even PID are optional in a
    v2.5 cancel); when the message also carries the whole order (PID and a requester), it is
    read as for any order, so the requester can be told should the cancel fail later.

    Raises `Hl7Error` (AE) 101 at ORC-2 when neither number is given."""
    m = mapping or load_mapping()
    reader = _Reader(msg, m)
    placer_loc, placer = reader.first("placer_order_number")
    _, filler = reader.first("filler_order_number")
    if not (placer or filler):
        raise Hl7Error("a cancel names no order (placer or filler order number)", hl7_code=101,
                       location=placer_loc.erl(),
                       hint="send the placer order number in ORC-2 or the accession we "
                            "returned in ORC-3")
    whole = bool("PID" in msg.segment_ids() and placer
                 and msg.components(reader.first_field("requester")))
    order = order_from_orm(msg, m)[1] if whole else None
    return OrderCancel(msg.sender, placer, filler, order)


def _request(msg: ParsedMessage, m: OrmMapping, priority: Priority) -> dict:
    """What only a new order carries: consent, questionnaire answers, triage, facility."""
    consent = consent_from_order(msg, m.consent)
    questionnaire = m.questionnaire or load_questionnaire()
    t = m.teleconsultation

    def not_a_question(n: int) -> bool:
        return m.consent.is_consent_obx(msg, n) or msg.value(
            t.majoration.at(occurrence=n)).strip().upper() in t.majoration_codes

    answers = answers_from_order(msg, questionnaire, not_a_question)
    return {"questionnaire": answers, "consent": consent,
            "triage": questionnaire.triage.assess(priority, answers),
            "facility": facility(msg, m.identity)}


def patient_from_message(msg: ParsedMessage, mapping: OrmMapping | None = None) -> Patient:
    """The patient of any message with a PID (orders, ADT updates), read with the order
    mapping's positions and rules, so an ADT and an order agree on who the patient is.

    French identity rules apply (`identity.py`): the INS is read from PID-3 with its status
    (PID-32) and identifies the patient only when qualified (QUAL), else the IPP does; test and
    demo INS are refused unless `mapping.test_mode`."""
    return _patient(_Reader(msg, mapping or load_mapping()))


def teleconsultation_from_orm(msg: ParsedMessage,
                              mapping: OrmMapping | None = None) -> ReportedTeleconsultation | None:
    """The teleconsultation an order reports as done, or None when its procedure code (OBR-4.1
    by default) is not one of [codes.teleconsultation].

    The performer is the first valued field of `performer` (PV1-7 attending doctor, else the
    ordering provider ORC-12); the act date is the first 8 characters of `performed_at` (OBR-7
    observation date/time, else ORC-9), "" when none is given; each OBX whose OBX-3.1 is one of
    `majoration_codes` claims the majoration coded in its OBX-5.1. Raises `Hl7Error` (AE): 101
    for a missing performer or an empty majoration, 102 for a malformed date.
    """
    m = mapping or load_mapping()
    t = m.teleconsultation
    code = msg.value(t.service).strip().upper()
    gp = dict(t.codes).get(code)
    if gp is None:
        return None
    reader = _Reader(msg, m)
    performer = _practitioner(reader, reader.first_field_of(t.performer), "performer")
    performed_on = ""
    loc, value = reader.first_of(t.performed_at)
    if value:
        if not is_timestamp(value) or not valid_date(value[:8]):
            raise Hl7Error("date/time the teleconsultation took place is not an HL7 timestamp",
                           hl7_code=102, location=loc.erl())
        performed_on = value[:8]
    majorations, locations = [], []
    for n in range(1, msg.segment_ids().count("OBX") + 1):
        if msg.value(t.majoration.at(occurrence=n)).strip().upper() not in t.majoration_codes:
            continue
        where = t.majoration_value.at(occurrence=n)
        claimed = msg.value(where).strip().upper()
        if not claimed:
            raise Hl7Error("majoration code is missing", hl7_code=101, location=where.erl())
        majorations.append(claimed)
        locations.append(where.erl())
    return ReportedTeleconsultation(code, gp, performer, performed_on, tuple(majorations),
                                    tuple(locations))


class _Reader:
    """Reads mapping keys from one message: first non-empty position wins."""

    def __init__(self, msg: ParsedMessage, mapping: OrmMapping):
        self.msg, self.mapping = msg, mapping

    def first(self, key: str) -> tuple[Location, str]:
        """(winning position, value), or (first position, "") when none has a value."""
        return self.first_of(self.mapping.positions[key])

    def first_of(self, locs: tuple[Location, ...]) -> tuple[Location, str]:
        for loc in locs:
            value = self.msg.value(loc).strip()
            if value:
                return loc, value
        return locs[0], ""

    def first_field(self, key: str) -> Location:
        """The first whole-field position with any component valued (else the first one)."""
        return self.first_field_of(self.mapping.positions[key])

    def first_field_of(self, locs: tuple[Location, ...]) -> Location:
        return next((loc for loc in locs if self.msg.components(loc)), locs[0])

    def required(self, key: str, what: str) -> tuple[Location, str]:
        loc, value = self.first(key)
        if not value:
            raise _missing(what, loc)
        return loc, value


def _patient(r: _Reader) -> Patient:
    m = r.mapping
    ids = patient_ids(r.msg, m.positions["patient_id"], m.identity, test_mode=m.test_mode)
    id_loc = ids.location
    name_loc = r.first_field("patient_name")
    name = _name(r, name_loc, "patient name")
    birth_loc, birth = r.first("birth_date")
    birth = birth[:8]
    if birth and not valid_date(birth):
        raise Hl7Error("birth date is not a valid date (YYYYMMDD)", hl7_code=102,
                       location=birth_loc.erl())
    sex_loc, sex_code = r.first("sex")
    sex = _code(r.mapping.sex_codes, sex_code.upper(), sex_loc, "sex", "")
    return _relocate(lambda: Patient(ids.id, name, issuer=ids.issuer, birth_date=birth, sex=sex,
                                     ins=ids.ins, ins_oid=ids.ins_oid,
                                     identity_status=ids.status, identity_flags=ids.flags,
                                     other_ids=ids.other_ids, id_details=ids.details),
                     {"patient.id": id_loc, "patient.birth_date": birth_loc,
                      "patient.sex": sex_loc, "name": name_loc, "patient.ins": id_loc,
                      "patient.other_ids": id_loc,
                      "patient.identity_status": m.identity.reliability})


def patient_location(msg: ParsedMessage, mapping: OrmMapping, where: str,
                     identifier: tuple[str, str] = ("", "")) -> str:
    """ERR-2 of a patient trait a refusal names (`patient.id`, `patient.name`,
    `patient.birth_date`, `patient.sex`): for an identifier, its PID-3 repetition
    (`PID^1^3^2`) when the message carries it there, else the field."""
    r = _Reader(msg, mapping)
    if where != "patient.id":
        key = {"patient.name": "patient_name", "patient.birth_date": "birth_date",
               "patient.sex": "sex"}[where]
        return r.first_field(key).erl()
    loc = r.first_field("patient_id")
    for rep in range(1, len(msg.repetitions(loc)) + 1):
        here = loc.at(repetition=rep)
        if (msg.part(here, 1), authority_of(msg, here, 4)) == identifier:
            return f"{loc.erl()}^{rep}"
    return loc.erl()


def _requester(r: _Reader) -> Practitioner:
    return _practitioner(r, r.first_field("requester"), "requester")


def _practitioner(r: _Reader, loc: Location, what: str) -> Practitioner:
    """An XCN field: 1 id, 2 family, 3 given, 9 assigning authority."""
    ident = r.msg.part(loc, 1)
    if not ident:
        raise _missing(f"{what} identifier", loc)
    name = _name(r, loc, f"{what} name", offset=1)
    authority = authority_of(r.msg, loc, 9)
    id_type, rpps = practitioner_ids(r.msg, loc, r.mapping.identity, ident, authority)
    return _relocate(lambda: Practitioner(ident, name, authority=authority, id_type=id_type,
                                          rpps=rpps),
                     {"practitioner.id": loc, "name": loc})


def _name(r: _Reader, loc: Location, what: str, offset: int = 0) -> PersonName:
    """XPN (family at .1) or the name part of XCN (family at .2, `offset` 1)."""
    family = r.msg.part(loc, 1 + offset, 1)
    if not family:
        raise _missing(what, loc)
    return _relocate(lambda: PersonName(family, r.msg.part(loc, 2 + offset)), {"name": loc})


def _question(r: _Reader) -> str:
    """Every valued `question` position (OBR-13 relevant clinical information, each OBR-31
    reason for study), then the order's notes (NTE after OBR), one per line."""
    lines = []
    for loc in r.mapping.positions["question"]:
        whole = Location(loc.segment, loc.occurrence, loc.field)
        for rep in range(1, len(r.msg.repetitions(whole)) + 1):
            text = r.msg.value(loc.at(repetition=rep)).strip()
            if text and text not in lines:
                lines.append(text)
    ids = r.msg.segment_ids()
    if "OBR" in ids:
        notes = r.mapping.question_notes
        i = ids.index("OBR") + 1
        while i < len(ids) and ids[i] == notes.segment:
            occurrence = ids[:i].count(notes.segment) + 1
            lines += r.msg.repetitions(notes.at(occurrence=occurrence))
            i += 1
    return "\n".join(line.replace("\r", "\n").strip() for line in lines).strip()


def _priority(r: _Reader) -> Priority:
    loc, code = r.first("priority")
    return _code(r.mapping.priority_codes, code.upper(), loc, "priority", Priority.ROUTINE)


def _ordered_at(r: _Reader) -> str:
    loc, value = r.first("ordered_at")
    if value and not is_timestamp(value):
        raise Hl7Error("order date/time is not an HL7 timestamp", hl7_code=102,
                       location=loc.erl())
    return value


def _code(table: dict, code: str, loc: Location, what: str, default):
    if not code:
        return default
    if code not in table:
        # The value itself is not quoted: a shifted field may hold patient data.
        raise Hl7Error(f"{what} code is not in the accepted table", hl7_code=103,
                       location=loc.erl(), hint="use one of " + ", ".join(sorted(table)))
    return table[code]


def _missing(what: str, loc: Location) -> Hl7Error:
    return Hl7Error(f"{what} is missing ({loc.segment}-{loc.field})", hl7_code=101,
                    location=loc.erl())


def _relocate(build, where_to_location: dict[str, Location]):
    """Run a domain constructor; turn its DomainError into a 102 at the HL7 position the
    faulty value came from (emptiness is checked before, so what is left is format/length)."""
    try:
        return build()
    except DomainError as exc:
        loc = where_to_location.get(exc.where)
        raise Hl7Error(exc.text, hl7_code=102, location=loc.erl() if loc else "") from None
