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
import tomllib
from dataclasses import dataclass
from pathlib import Path

from connector.domain.errors import ConfigError, DomainError
from connector.domain.model import (ImageKind, Order, Patient, PersonName, Practitioner, Priority,
                                    valid_date)

from .errors import Hl7Error
from .identity import IdentityMapping, facility, load_identity, patient_ids, practitioner_ids
from .parse import Location, ParsedMessage, is_timestamp
from .questionnaire import (ConsentMapping, Questionnaire, answers_from_order,
                            consent_from_order, load_consent, load_questionnaire)
from .readers import authority_of

MAPPING_FILE = Path(__file__).resolve().parents[2] / "mappings" / "hl7" / "orm_o01.toml"

_POSITIONS = ("order_control", "placer_order_number", "ordered_at", "question", "priority",
              "requester", "patient_id", "patient_name", "birth_date", "sex")
_WHOLE_FIELDS = ("requester", "patient_id", "patient_name")
# Optional [positions] keys, with their defaults when the mapping file does not list them.
_OPTIONAL_POSITIONS = {"patient_class": ("PV1-2",)}
_IMAGE_KINDS = tuple(k.value for k in ImageKind)
_OBX_3_1 = Location("OBX", field=3, component=1)
_OBX_20_1 = Location("OBX", field=20, component=1)


@dataclass(frozen=True)
class ImageMapping:
    """Where an embedded image's kind and body site are read, and which subtypes are taken."""

    kind: Location = _OBX_3_1
    site: Location = _OBX_20_1
    subtypes: frozenset[str] = frozenset({"JPEG", "JPG", "PNG"})
    kind_codes: tuple[tuple[str, str], ...] = (("DERMOSCOPY", "dermoscopy"),)


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

    service: Location = Location("OBR", field=4, component=1)
    codes: tuple[tuple[str, bool], ...] = ()  # OBR-4.1 code -> specialist_is_gp (TCG: GP)
    performed_at: tuple[Location, ...] = (Location("OBR", field=7, component=1),
                                          Location("ORC", field=9, component=1))
    performer: tuple[Location, ...] = (Location("PV1", field=7), Location("ORC", field=12))
    majoration: Location = _OBX_3_1
    majoration_codes: frozenset[str] = frozenset({"MAJORATION"})
    majoration_value: Location = Location("OBX", field=5, component=1)


@dataclass(frozen=True)
class OrmMapping:
    """The parsed mapping file: positions per order part, code tables, accepted ORC-1 values."""

    positions: dict[str, tuple[Location, ...]]
    question_notes: Location
    order_controls: frozenset[str]
    priority_codes: dict[str, Priority]
    sex_codes: dict[str, str]
    images: ImageMapping = ImageMapping()
    inpatient_classes: frozenset[str] = frozenset({"I"})
    teleconsultation: TeleconsultationMapping = TeleconsultationMapping()
    identity: IdentityMapping = IdentityMapping()
    consent: ConsentMapping = ConsentMapping()
    # The questionnaire the order's OBX answer (None: the shipped mappings/questionnaire.toml).
    questionnaire: Questionnaire | None = None
    # Test mode (config `[hl7] test_mode`): test and demo INS are accepted.
    test_mode: bool = False


@dataclass(frozen=True)
class ReportedTeleconsultation:
    """A teleconsultation the EHR reports as done (OBR-4 carries a teleconsultation code)."""

    code: str                      # OBR-4.1 as sent
    specialist_is_gp: bool         # TCG (GP) rather than TC (specialist)
    performer: Practitioner        # the doctor who performed it
    performed_on: str              # act date YYYYMMDD, "" when the message gives none
    majorations: tuple[str, ...]   # codes claimed, in OBX order
    majoration_locations: tuple[str, ...]  # ERR-2 of each claimed majoration (`OBX^n^5`)


@functools.lru_cache(maxsize=None)
def load_mapping(path: Path = MAPPING_FILE) -> OrmMapping:
    """Read and check the mapping file once; a malformed one raises `ConfigError` naming the
    file and key."""
    def fail(key: str, what: str) -> ConfigError:
        return ConfigError(f"{what}", where=f"{path} [{key}]",
                           hint="fix the mapping file; see the comments at its top")

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise fail("file", f"cannot read ORM mapping: {exc}") from None
    positions = {}
    for key in _POSITIONS:
        raw = data.get("positions", {}).get(key)
        if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
            raise fail(f"positions.{key}", "must be a non-empty list of positions like PID-3.1")
        try:
            locs = tuple(Location.parse(p) for p in raw)
        except ValueError as exc:
            raise fail(f"positions.{key}", str(exc)) from None
        if key in _WHOLE_FIELDS and any(loc.component for loc in locs):
            raise fail(f"positions.{key}", "must name whole fields (PID-3), not components")
        positions[key] = locs
    for key, default in _OPTIONAL_POSITIONS.items():
        raw = data.get("positions", {}).get(key, list(default))
        try:
            if not isinstance(raw, list) or not raw:
                raise ValueError("must be a non-empty list of positions like PV1-2")
            positions[key] = tuple(Location.parse(p) for p in raw)
        except (TypeError, ValueError) as exc:
            raise fail(f"positions.{key}", str(exc)) from None
    try:
        notes = Location.parse(data["notes"]["question"])
    except (KeyError, TypeError, ValueError):
        raise fail("notes.question", "must be a position like NTE-3") from None
    codes = data.get("codes", {})
    controls = codes.get("order_control")
    if not isinstance(controls, list) or not all(isinstance(c, str) and c for c in controls):
        raise fail("codes.order_control", "must be a list of ORC-1 codes")
    try:
        priorities = {k: Priority(v) for k, v in codes["priority"].items()}
    except (KeyError, AttributeError, ValueError):
        raise fail("codes.priority", "must map codes to stat, urgent or routine") from None
    sexes = codes.get("sex")
    if not isinstance(sexes, dict) or not all(v in ("M", "F", "O", "") for v in sexes.values()):
        raise fail("codes.sex", "must map PID-8 codes to M, F, O or \"\"")
    inpatient = codes.get("inpatient_classes", ["I"])
    if not isinstance(inpatient, list) or not all(isinstance(c, str) and c for c in inpatient):
        raise fail("codes.inpatient_classes", "must be a list of PV1-2 patient classes")
    return OrmMapping(positions, notes, frozenset(controls), priorities, dict(sexes),
                      _image_mapping(data, fail), frozenset(c.upper() for c in inpatient),
                      _teleconsultation_mapping(data, fail), load_identity(data, fail),
                      load_consent(data, fail))


def _teleconsultation_mapping(data: dict, fail) -> TeleconsultationMapping:
    """The optional [teleconsultation] section and [codes.teleconsultation] table."""
    section = data.get("teleconsultation", {})
    default = TeleconsultationMapping()
    if not isinstance(section, dict):
        raise fail("teleconsultation", "must be a table")
    unknown = sorted(set(section) - {"service", "performed_at", "performer", "majoration",
                                     "majoration_codes", "majoration_value"})
    if unknown:
        raise fail(f"teleconsultation.{unknown[0]}", "unknown key")

    def one(key: str, segment: str) -> Location:
        try:
            loc = Location.parse(section[key]) if key in section else getattr(default, key)
        except (TypeError, ValueError):
            raise fail(f"teleconsultation.{key}", "must be a position like OBR-4.1") from None
        if loc.segment != segment:
            raise fail(f"teleconsultation.{key}", f"must be an {segment} position")
        return loc

    def many(key: str, whole: bool) -> tuple[Location, ...]:
        raw = section.get(key)
        if raw is None:
            return getattr(default, key)
        try:
            if not isinstance(raw, list) or not raw:
                raise ValueError
            locs = tuple(Location.parse(p) for p in raw)
        except (TypeError, ValueError):
            raise fail(f"teleconsultation.{key}", "must be a non-empty list of positions") from None
        if whole and any(loc.component for loc in locs):
            raise fail(f"teleconsultation.{key}", "must name whole fields (PV1-7), not components")
        return locs

    majoration_codes = section.get("majoration_codes", sorted(default.majoration_codes))
    if not isinstance(majoration_codes, list) or not all(
            isinstance(c, str) and c for c in majoration_codes):
        raise fail("teleconsultation.majoration_codes", "must be a list of OBX-3.1 codes")
    codes = data.get("codes", {}).get("teleconsultation", {})
    if not isinstance(codes, dict) or not all(v in ("specialist", "gp") for v in codes.values()):
        raise fail("codes.teleconsultation", 'must map OBR-4.1 codes to "specialist" or "gp"')
    return TeleconsultationMapping(
        service=one("service", "OBR"),
        codes=tuple((k.upper(), v == "gp") for k, v in codes.items()),
        performed_at=many("performed_at", False), performer=many("performer", True),
        majoration=one("majoration", "OBX"),
        majoration_codes=frozenset(c.upper() for c in majoration_codes),
        majoration_value=one("majoration_value", "OBX"))


def _image_mapping(data: dict, fail) -> ImageMapping:
    """The optional [images] section and [codes.image_kind] table (defaults when absent)."""
    section = data.get("images", {})
    if not isinstance(section, dict):
        raise fail("images", "must be a table")
    default = ImageMapping()
    try:
        kind = Location.parse(section["kind"]) if "kind" in section else default.kind
        site = Location.parse(section["site"]) if "site" in section else default.site
    except (TypeError, ValueError):
        raise fail("images", "kind and site must be positions like OBX-3.1") from None
    if kind.segment != "OBX" or site.segment != "OBX":
        raise fail("images", "kind and site must be OBX positions")
    subtypes = section.get("subtypes", sorted(default.subtypes))
    if not isinstance(subtypes, list) or not all(isinstance(x, str) and x for x in subtypes):
        raise fail("images.subtypes", "must be a list of OBX-5.3 subtypes like JPEG")
    kinds = data.get("codes", {}).get("image_kind", dict(default.kind_codes))
    if not isinstance(kinds, dict) or not all(v in _IMAGE_KINDS for v in kinds.values()):
        raise fail("codes.image_kind", "must map OBX-3 codes to photo or dermoscopy")
    return ImageMapping(kind, site, frozenset(x.upper() for x in subtypes),
                        tuple((k.upper(), v) for k, v in kinds.items()))


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
    if msg.segment_ids().count("ORC") > 1:
        raise Hl7Error("only one order (ORC) per message is supported", hl7_code=100,
                       location="ORC^2", hint="send one order per message")
    reader = _Reader(msg, m)
    control_loc, control = reader.required("order_control", "order control")
    if control.upper() not in m.order_controls:
        raise Hl7Error(f"order control {control!r} is not supported", hl7_code=103,
                       location=control_loc.erl(),
                       hint="use one of " + ", ".join(sorted(m.order_controls)))
    placer_loc, placer = reader.required("placer_order_number", "placer order number")
    patient, requester = _patient(reader), _requester(reader)
    question, priority, ordered_at = _question(reader), _priority(reader), _ordered_at(reader)
    _, patient_class = reader.first("patient_class")
    hospitalised = patient_class.upper() in m.inpatient_classes
    extra = {}
    if control.upper() == "NW":
        extra = _request(msg, m, priority)
    order = _relocate(lambda: Order(msg.sender, placer, patient, requester, question, priority,
                                    ordered_at, hospitalised, **extra),
                      {"placer_order_number": placer_loc})
    return control.upper(), order


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
                                     other_ids=ids.other_ids),
                     {"patient.id": id_loc, "patient.birth_date": birth_loc,
                      "patient.sex": sex_loc, "name": name_loc, "patient.ins": id_loc,
                      "patient.other_ids": id_loc,
                      "patient.identity_status": m.identity.reliability})


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
