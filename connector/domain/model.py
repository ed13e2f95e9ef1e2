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


_DATE = re.compile(r"^\d{8}$")
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


@dataclass(frozen=True)
class Patient:
    id: str
    name: PersonName
    issuer: str = ""
    birth_date: str = ""  # YYYYMMDD or empty
    sex: str = ""

    def __post_init__(self):
        if not self.id.strip():
            raise DomainError("patient identifier is empty", where="patient.id")
        if len(self.id) > 64:
            raise DomainError("patient identifier is longer than 64 characters", where="patient.id")
        if self.birth_date and not _valid_date(self.birth_date):
            raise DomainError("birth date is not a valid YYYYMMDD date", where="patient.birth_date")
        if self.sex and self.sex not in {s.value for s in SexValues}:
            raise DomainError("sex must be M, F or O", where="patient.sex")


@dataclass(frozen=True)
class Practitioner:
    """A doctor, identified nationally (IdNatPS in France) or by a local id."""

    id: str
    name: PersonName
    authority: str = ""

    def __post_init__(self):
        if not self.id.strip():
            raise DomainError("practitioner identifier is empty", where="practitioner.id")


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

    def __post_init__(self):
        if not isinstance(self.patient_hospitalised, bool):
            raise DomainError("patient_hospitalised must be true or false",
                              where="patient_hospitalised")
        if not self.placer_order_number.strip():
            raise DomainError("placer order number is empty", where="placer_order_number")
        if len(self.placer_order_number) > 22:
            raise DomainError("placer order number is longer than 22 characters",
                              where="placer_order_number")


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


def _valid_date(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


def valid_date(text: str) -> bool:
    """True for a real calendar date written YYYYMMDD."""
    return _valid_date(text)


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
    status: str = "F"  # OBX-11: F final, C corrected, D deleted (the report is withdrawn)

    def __post_init__(self):
        if not self.text.strip():
            raise DomainError("report text is empty", where="text")
        if not self.conduct.strip():
            raise DomainError("conduct code is empty", where="conduct")
        if self.status not in ("F", "C", "D"):
            raise DomainError("report status must be F, C or D", where="status")


@dataclass(frozen=True)
class Charge:
    """One billable line (one FT1): a national act code billed by one role on one date."""

    transaction_id: str  # FT1-2, stable: the same act always yields the same id
    code: str  # national code, e.g. NGAP TE2
    role: str  # requis | requerant | doctor
    amount_cents: int
    type: str  # CG charge, CD credit
    act_date: str  # YYYYMMDD
    performed_by: Practitioner
    ordered_by: Practitioner | None = None

    def __post_init__(self):
        if self.type not in ("CG", "CD"):
            raise DomainError("charge type must be CG or CD", where="type")
        if self.role not in ("requis", "requerant", "doctor"):
            raise DomainError("charge role must be requis, requerant or doctor", where="role")
        if not _valid_date(self.act_date):
            raise DomainError("act date is not a valid YYYYMMDD date", where="act_date")
        if self.amount_cents < 0:
            raise DomainError("amount is negative", where="amount")
