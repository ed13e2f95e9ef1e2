"""Value objects and the Case aggregate.

Value objects validate in their constructor (as highdicom does): a finished object is always
usable, and the error names the argument at fault.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass, field

from .errors import DomainError
from .states import CaseEvent, CaseStatus, next_status


class Priority(str, enum.Enum):
    ROUTINE = "routine"
    URGENT = "urgent"
    STAT = "stat"


class ImageKind(str, enum.Enum):
    PHOTO = "photo"
    DERMOSCOPY = "dermoscopy"


class SexValues(str, enum.Enum):
    """Administrative sex as DICOM writes it (PS3.3 C.7.1.1)."""

    M = "M"
    F = "F"
    O = "O"  # noqa: E741 - the standard's own code


class LateralityValues(str, enum.Enum):
    """Image Laterality (0020,0062) enumerated values."""

    R = "R"
    L = "L"
    B = "B"
    U = "U"


class ResultStatusValues(str, enum.Enum):
    """Observation result status (HL7 table 0085): the OBX-11 of a report version."""

    FINAL = "F"
    CORRECTED = "C"
    DELETED = "D"  # the report is withdrawn


class TransactionTypeValues(str, enum.Enum):
    """Transaction type (HL7 table 0017): the FT1-6 of a charge line."""

    CHARGE = "CG"
    CREDIT = "CD"


class ChargeRole(str, enum.Enum):
    """Who bills a line: the requis answers a tele-expertise, the requérant asked for it, the
    doctor holds a teleconsultation."""

    REQUIS = "requis"
    REQUERANT = "requerant"
    DOCTOR = "doctor"


class ActKind(str, enum.Enum):
    """The billable acts (NGAP) a case can be."""

    TELEEXPERTISE = "teleexpertise"
    TELECONSULTATION = "teleconsultation"


def _member(vocabulary: type[enum.Enum], value: str, text: str, where: str) -> str:
    """`value` (a code or a member of `vocabulary`) as the plain code it stands for, so stored
    rows and messages carry the code; DomainError `text` at `where` when it is none of them."""
    try:
        return vocabulary(value).value
    except ValueError:
        raise DomainError(text, where=where) from None


_DATE = re.compile(r"\d{8}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_OID = re.compile(r"[0-2](\.(0|[1-9]\d*))+")
_CONDUCT_CODE = re.compile(r"[a-z][a-z0-9_]*")
NAME_MAX = 64  # DICOM PN: 64 characters per component group


@dataclass(frozen=True)
class PersonName:
    family: str
    given: str = ""

    def __post_init__(self):
        if not self.family.strip():
            raise DomainError("family name is empty", where="name")
        for part in (self.family, self.given):
            if any(c in part for c in "|^~\\&\r\n"):
                raise DomainError("name contains an HL7 delimiter", where="name")
            if len(part) > NAME_MAX:
                raise DomainError(f"a name part is longer than {NAME_MAX} characters",
                                  where="name", hint="DICOM PN allows 64 characters per part")

    @classmethod
    def parse(cls, text: str) -> "PersonName":
        """Read `FAMILY^GIVEN` (HL7 XPN / DICOM PN order)."""
        family, _, given = text.partition("^")
        return cls(family.strip(), given.split("^")[0].strip())

    def hl7(self) -> str:
        return f"{self.family}^{self.given}" if self.given else self.family


# French national identity (reference hl7-and-billing.md 9.2-9.3). The RNIV's four exclusive
# identity statuses (PID-32, table 0445 of the French extension), weakest first; "" = not given.
IDENTITY_STATUSES = ("PROV", "VALI", "RECUP", "QUAL")
QUALIFIED = "QUAL"
_INS = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}$")


def ins_key_ok(value: str) -> bool:
    """The NIR/NIA control key: the last two digits are 97 - (the first 13 mod 97), with
    Corsica's 2A/2B read as 19/18. `value` must already have the INS shape (15 characters)."""
    body = value[:13].replace("2A", "19", 1) if value[5:7] == "2A" else value[:13]
    body = body.replace("2B", "18", 1) if value[5:7] == "2B" else body
    return body.isdigit() and int(value[13:]) == 97 - int(body) % 97


def valid_ins(value: str) -> bool:
    """A well-formed INS matricule (NIR or NIA): 15 characters with a correct key."""
    return bool(_INS.match(value)) and ins_key_ok(value)


@dataclass(frozen=True)
class Patient:
    """A patient as the connector identifies them.

    `id`/`issuer` are the identifier everything is keyed on (PatientID + Issuer of Patient ID
    in DICOM). In France the national INS may be that identifier only when the identity is
    qualified (`identity_status` QUAL); otherwise it is kept here (`ins`, `ins_oid`) but
    flagged unusable (`ins_usable` False), sent nowhere, and the local IPP is the id.
    `other_ids` are further identifiers of the same patient that may be sent alongside
    ((id, issuer) pairs: DICOM Other Patient IDs Sequence). `id_details` say how the sender
    wrote each identifier beyond (id, issuer): (id, issuer, the namespace it gave beside an
    OID issuer, the identifier type code), so messages back name it the same way.
    """

    id: str
    name: PersonName
    issuer: str = ""
    birth_date: str = ""  # YYYYMMDD or empty
    sex: str = ""
    ins: str = ""                          # INS matricule (NIR or NIA), whatever its status
    ins_oid: str = ""                      # its assigning authority (1.2.250.1.213.1.4.8 ...)
    identity_status: str = ""              # PROV | VALI | RECUP | QUAL, "" when not given
    identity_flags: tuple[str, ...] = ()   # other PID-32 codes (identity attributes), as sent
    other_ids: tuple[tuple[str, str], ...] = ()
    id_details: tuple[tuple[str, str, str, str], ...] = ()

    def __post_init__(self):
        if not self.id.strip():
            raise DomainError("patient identifier is empty", where="patient.id")
        if any(len(d) != 4 or len(d[2]) > 64 or len(d[3]) > 10 for d in self.id_details):
            raise DomainError("identifier details are (id, issuer, namespace <= 64, type <= 10)",
                              where="patient.id_details")
        if len(self.id) > 64:
            raise DomainError("patient identifier is longer than 64 characters", where="patient.id")
        if self.birth_date and not valid_date(self.birth_date):
            raise DomainError("birth date is not a valid YYYYMMDD date", where="patient.birth_date")
        if self.sex and self.sex not in {s.value for s in SexValues}:
            raise DomainError("sex must be M, F or O", where="patient.sex")
        if self.identity_status and self.identity_status not in IDENTITY_STATUSES:
            raise DomainError("identity status must be PROV, VALI, RECUP or QUAL",
                              where="patient.identity_status")
        if self.ins and not valid_ins(self.ins):
            raise DomainError("INS is not a 15-character NIR/NIA with a correct key",
                              where="patient.ins")
        if bool(self.ins) != bool(self.ins_oid):
            raise DomainError("an INS needs its assigning authority OID, and only an INS has one",
                              where="patient.ins")
        for other_id, other_issuer in self.other_ids:
            if not other_id.strip() or len(other_id) > 64 or len(other_issuer) > 64:
                raise DomainError("other patient identifiers must be 1 to 64 characters",
                                  where="patient.other_ids")
        if self.ins and not self.ins_usable and (
                (self.ins, self.ins_oid) in self.other_ids
                or (self.id, self.issuer) == (self.ins, self.ins_oid)):
            raise DomainError("the INS may identify the patient only when the identity is "
                              "qualified (QUAL)", where="patient.ins",
                              hint="keep the local identifier (IPP) as the patient id")

    def details_of(self, ident: str, issuer: str) -> tuple[str, str]:
        """(namespace, identifier type) the sender gave identifier (ident, issuer), or ("", "")."""
        return next(((d[2], d[3]) for d in self.id_details if (d[0], d[1]) == (ident, issuer)),
                    ("", ""))

    @property
    def ins_usable(self) -> bool:
        """True when the INS may be used to identify the patient: a qualified identity."""
        return bool(self.ins) and self.identity_status == QUALIFIED


_RPPS = re.compile(r"[0-9]{11}")
_FINESS = re.compile(r"(?:[0-9]{2}|2A|2B)[0-9]{7}")


def valid_rpps(value: str) -> bool:
    """An RPPS number (the French practitioners' directory): 11 digits."""
    return bool(_RPPS.fullmatch(value))


def valid_finess(value: str) -> bool:
    """A FINESS number (French care facilities): the department (2 digits, or Corsica's 2A/2B)
    and 7 digits."""
    return bool(_FINESS.fullmatch(value))


def valid_oid(value: str) -> bool:
    """An ISO object identifier in dotted decimal form (1.2.250.1.71.4.2.1), as HL7 universal
    ids of type ISO and DICOM Universal Entity IDs write assigning authorities."""
    return bool(_OID.fullmatch(value))


def valid_conduct_code(value: str) -> bool:
    """A conduct code as reports carry it (mappings/conducts.toml): lower_snake_case."""
    return bool(_CONDUCT_CODE.fullmatch(value))


@dataclass(frozen=True)
class Practitioner:
    """A doctor, identified nationally (IdNatPS in France) or by a local id.

    `id_type` is the identifier type code as sent (XCN-13: IDNPS, RPPS ...); `rpps` the 11-digit
    RPPS number when the id is RPPS-based (an IdNatPS is `8` + RPPS) or is a bare RPPS.
    """

    id: str
    name: PersonName
    authority: str = ""
    id_type: str = ""
    rpps: str = ""

    def __post_init__(self):
        if not self.id.strip():
            raise DomainError("practitioner identifier is empty", where="practitioner.id")
        if self.rpps and not valid_rpps(self.rpps):
            raise DomainError("RPPS number must be 11 digits", where="practitioner.id")


def practitioner_by_id(ident: str, name: PersonName, *, idnatps_authority: str,
                       ) -> Practitioner:
    """A practitioner known by an identifier alone (posted through the API). An RPPS-based
    IdNatPS (`8` + the 11-digit RPPS) is the national identifier: it takes the site's IdNatPS
    assigning authority and the type `IDNPS`, as a French HL7 sender writes it; any other
    identifier is local and goes as given."""
    if ident.startswith("8") and valid_rpps(ident[1:]):
        return Practitioner(ident, name, idnatps_authority, id_type="IDNPS", rpps=ident[1:])
    return Practitioner(ident, name)


@dataclass(frozen=True)
class Facility:
    """A care facility; in France identified by its FINESS number (9 characters)."""

    finess: str = ""
    name: str = ""
    kind: str = ""  # FINEG (geographic) | FINEJ (legal entity) | "" when not said

    def __post_init__(self):
        if self.finess and not valid_finess(self.finess):
            raise DomainError("FINESS number must be 9 characters (department + 7 digits)",
                              where="facility.finess")
        if len(self.name) > 100:
            raise DomainError("facility name is longer than 100 characters",
                              where="facility.name")


@dataclass(frozen=True)
class Answer:
    """One item of the structured request (questionnaire) answered on an order.

    `values` are answer codes (coded and yes/no items) or the number or text as sent; `weight`
    is the triage points they carry; `red_flags` the values that are warning signs. `label` and
    `value_labels` keep the wording (French, English) the questionnaire had when it was answered.
    """

    item: str
    values: tuple[str, ...]
    weight: int = 0
    red_flags: tuple[str, ...] = ()
    label: tuple[str, str] = ("", "")                       # (fr, en)
    value_labels: tuple[tuple[str, str, str], ...] = ()     # (value, fr, en)

    def __post_init__(self):
        if not self.item.strip():
            raise DomainError("questionnaire item id is empty", where="questionnaire")
        if not self.values or not all(v.strip() for v in self.values):
            raise DomainError("questionnaire answer is empty", where="questionnaire")
        if not set(self.red_flags) <= set(self.values):
            raise DomainError("a red flag must be one of the answer's values",
                              where="questionnaire")


@dataclass(frozen=True)
class Consent:
    """The patient's consent to the tele-expertise, as the order carried it."""

    source: str           # OBX | CON
    given_at: str = ""    # HL7 timestamp when the order says when, else ""

    def __post_init__(self):
        if self.source not in ("OBX", "CON"):
            raise DomainError("consent source must be OBX or CON", where="consent")


# Triage levels are the DICOM Requested Procedure Priority (0040,1003) defined terms, most
# urgent first, so the level goes to the worklist unchanged.
TRIAGE_LEVELS = ("STAT", "HIGH", "MEDIUM", "ROUTINE", "LOW")


@dataclass(frozen=True)
class Triage:
    """How urgently a case should be looked at: a score and the level it reaches."""

    score: int = 0
    level: str = ""   # one of TRIAGE_LEVELS, "" when never assessed
    red_flags: tuple[str, ...] = ()  # item:value of every red flag answered

    def __post_init__(self):
        if self.level and self.level not in TRIAGE_LEVELS:
            raise DomainError("triage level must be one of " + ", ".join(TRIAGE_LEVELS),
                              where="triage")

    @property
    def rank(self) -> int:
        """0 for STAT ... 4 for LOW; 5 when never assessed (sorts last)."""
        return TRIAGE_LEVELS.index(self.level) if self.level else len(TRIAGE_LEVELS)


@dataclass(frozen=True)
class TriagePolicy:
    """The triage rule (mappings/questionnaire.toml [triage]): points for the order priority plus
    the weights of the answers; the level is the most urgent one whose minimum the score reaches
    (the least urgent level when it reaches none)."""

    priority_points: tuple[tuple[Priority, int], ...]
    levels: tuple[tuple[str, int], ...]

    def __post_init__(self):
        if not self.levels:
            raise DomainError("triage needs at least one level", where="triage.levels")
        names = [name for name, _ in self.levels]
        if any(n not in TRIAGE_LEVELS for n in names) or len(set(names)) != len(names):
            raise DomainError("triage levels must be distinct among " + ", ".join(TRIAGE_LEVELS),
                              where="triage.levels")
        ordered = sorted(self.levels, key=lambda item: TRIAGE_LEVELS.index(item[0]))
        minimums = [minimum for _, minimum in ordered]
        if minimums != sorted(minimums, reverse=True) or len(set(minimums)) != len(minimums):
            raise DomainError("a more urgent triage level needs a higher minimum score",
                              where="triage.levels")
        if {p for p, _ in self.priority_points} != set(Priority):
            raise DomainError("triage needs points for every priority (stat, urgent, routine)",
                              where="triage.priority")

    def assess(self, priority: Priority, answers: tuple[Answer, ...] = ()) -> Triage:
        score = dict(self.priority_points)[priority] + sum(a.weight for a in answers)
        ordered = sorted(self.levels, key=lambda item: TRIAGE_LEVELS.index(item[0]))
        level = next((name for name, minimum in ordered if score >= minimum), ordered[-1][0])
        flags = tuple(f"{a.item}:{v}" for a in answers for v in a.red_flags)
        return Triage(score, level, flags)


@dataclass(frozen=True)
class Order:
    """What a requester asks for: the content of an ORM^O01 NW, independent of HL7."""

    sender: str  # sending application/facility, scopes the placer number
    placer_order_number: str
    patient: Patient
    requester: Practitioner
    question: str
    priority: Priority = Priority.ROUTINE
    ordered_at: str = ""  # HL7/DICOM DT, informative
    # True when the patient is hospitalised at the requesting facility (PV1-2 = I): the
    # tele-expertise is then not billable (hospitals bill it for outpatient activity only).
    patient_hospitalised: bool = False
    questionnaire: tuple[Answer, ...] = ()   # the structured request, in questionnaire order
    consent: Consent | None = None           # None: not recorded (orders from before consent)
    triage: Triage = Triage()                # level "" when never assessed
    facility: Facility | None = None         # the requesting facility, when the order names it
    procedure: str = ""  # the requested procedure's label (OBR-4.2), the study's description
    service: str = ""     # the requesting service (ORC-17.1, else PV1-3.1): routing, scopes
    procedure_code: str = ""  # the order's code (OBR-4.1), for routing

    def __post_init__(self):
        if not isinstance(self.patient_hospitalised, bool):
            raise DomainError("patient_hospitalised must be true or false",
                              where="patient_hospitalised")
        if not self.placer_order_number.strip():
            raise DomainError("placer order number is empty", where="placer_order_number")
        if len(self.placer_order_number) > 22:
            raise DomainError("placer order number is longer than 22 characters",
                              where="placer_order_number")
        items = [a.item for a in self.questionnaire]
        if len(set(items)) != len(items):
            raise DomainError("a questionnaire item is answered twice", where="questionnaire")


@dataclass
class Case:
    """The aggregate: one request for an opinion and everything that happens to it."""

    accession: str
    study_uid: str
    order: Order
    status: CaseStatus = CaseStatus.OPEN
    events: list[tuple[CaseEvent, CaseStatus, CaseStatus]] = field(default_factory=list)

    def apply(self, event: CaseEvent) -> CaseStatus:
        """Move the case by `event`; raises StateConflict when the state does not allow it."""
        new = next_status(self.status, event)
        self.events.append((event, self.status, new))
        self.status = new
        return new


def parse_yyyymmdd(text: str) -> dt.date | None:
    """The calendar date written YYYYMMDD (HL7 DT, DICOM DA), or None."""
    if not _DATE.fullmatch(text):
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def parse_iso_date(text: str) -> dt.date | None:
    """The calendar date written YYYY-MM-DD, or None; `date.fromisoformat` alone would also
    take 20220401 and 2022-W13-5."""
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def valid_date(text: str) -> bool:
    """True for a real calendar date written YYYYMMDD."""
    return parse_yyyymmdd(text) is not None


# A reason someone gives for a refusal, a cancellation or a withdrawal travels in ORC-16.2 (CE
# text, 199 characters in v2.5), TXA-21, FT1 credit lines and the audit trail: one rule for all.
MAX_REASON = 199
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def reason_text(text: str, *, hint: str) -> str:
    """`text` with every run of whitespace (line breaks too) made one space; DomainError at
    `reason` when that is empty, longer than MAX_REASON or holds a control character."""
    reason = " ".join(text.split())
    if not reason:
        raise DomainError("reason is empty", where="reason", hint=hint)
    if len(reason) > MAX_REASON:
        raise DomainError(f"reason is longer than {MAX_REASON} characters", where="reason")
    if _CONTROL.search(reason):
        raise DomainError("reason contains a control character", where="reason",
                          hint="write the reason as plain text")
    return reason


@dataclass(frozen=True)
class BodySite:
    """A coded anatomic site (CID 4029 by default) with optional laterality."""

    scheme: str  # coding scheme designator, e.g. SCT
    code: str
    meaning: str

    def __post_init__(self):
        if not (self.scheme and self.code and self.meaning):
            raise DomainError("body site needs a scheme, a code and a meaning", where="site")


@dataclass(frozen=True)
class Report:
    """The dermatologist's answer. `conduct` is a code from mappings/conducts.toml."""

    text: str
    conduct: str
    specialist: Practitioner
    signed_at: str  # DICOM/HL7 DT, YYYYMMDDHHMMSS
    status: str = ResultStatusValues.FINAL.value  # OBX-11 (ResultStatusValues)

    def __post_init__(self):
        if not self.text.strip():
            raise DomainError("report text is empty", where="text")
        if not self.conduct.strip():
            raise DomainError("conduct code is empty", where="conduct")
        object.__setattr__(self, "status", _member(
            ResultStatusValues, self.status, "report status must be F, C or D", "status"))


@dataclass(frozen=True)
class Charge:
    """One billable line (one FT1): a national act code billed by one role on one date."""

    transaction_id: str  # FT1-2, stable: the same act always yields the same id
    code: str  # national code, e.g. NGAP TE2
    role: str  # ChargeRole: requis | requerant | doctor
    amount_cents: int
    type: str  # TransactionTypeValues: CG charge, CD credit
    act_date: str  # YYYYMMDD
    performed_by: Practitioner
    ordered_by: Practitioner | None = None

    def __post_init__(self):
        object.__setattr__(self, "type", _member(
            TransactionTypeValues, self.type, "charge type must be CG or CD", "type"))
        object.__setattr__(self, "role", _member(
            ChargeRole, self.role, "charge role must be requis, requerant or doctor", "role"))
        if not valid_date(self.act_date):
            raise DomainError("act date is not a valid YYYYMMDD date", where="act_date")
        if self.amount_cents < 0:
            raise DomainError("amount is negative", where="amount")
