"""The study-level attributes of a case, the same on every object of its study.

Why: a PACS shows one study per case, and reads its date, time and description from whichever
instance it happens to read (Orthanc's QIDO-RS answers from one of them). Photos, dermoscopy,
the report's Encapsulated PDF, objects received from devices and the worklist entry must then
agree, so every step that writes one takes its values here:

- Study Date / Study Time: the order's date-time (ORC-9) as the placer wrote it, else the moment
  the case was opened (stored on the case row); never the time an object was made;
- Study Description: the requested procedure's label (OBR-4.2), else the connector's own label
  in the site's language;
- Referring Physician's Name: the requester; Accession Number and Study ID: the accession.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..domain.model import Case, PersonName
from ..domain.moment import Moment
from ..store.uow import UnitOfWork

# The label of a request whose order names no procedure, by `[reports] language`.
PROCEDURE = {"fr": "Télé-expertise dermatologique", "en": "Dermatology tele-expertise"}
# The label of the images of a modality (worklist step, a series without a description).
MODALITY_LABEL = {"fr": {"XC": "Photographies cliniques", "DMS": "Dermoscopie"},
                  "en": {"XC": "Clinical photographs", "DMS": "Dermoscopy"}}

# The parts of HL7 TS beyond seconds (fraction, offset): DICOM DA/TM take local date and time.
_TS_DIGITS = re.compile(r"^(\d{4,14})")
_TS_FILL = "00000101000000"  # YYYY then January 1st, midnight: what a shorter TS leaves out
_NOT_TEXT = re.compile(r"[\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class StudyFacts:
    """What every object of a case's study carries at study level."""

    uid: str
    accession: str
    datetime: str          # YYYYMMDDHHMMSS, local
    description: str       # LO, at most 64 characters
    referring: PersonName

    @property
    def study_id(self) -> str:
        return self.accession

    def attributes(self) -> dict:
        """The keyword arguments `wrap_image` and `encapsulate_pdf` take for the study."""
        return dict(study_uid=self.uid, accession=self.accession,
                    study_datetime=self.datetime, study_description=self.description,
                    study_id=self.study_id, referring=self.referring)


def of_case(uow: UnitOfWork, case: Case) -> StudyFacts:
    """The study facts of a stored case (read in the caller's unit of work)."""
    opened = uow.cases.created_at(case.accession) or uow.moment.iso
    language = uow.services.config.reports.language
    return facts(case, opened_at=opened, language=language)


def facts(case: Case, *, opened_at: str, language: str) -> StudyFacts:
    """The study facts of `case`, opened at `opened_at` (ISO UTC, as the store writes it)."""
    order = case.order
    return StudyFacts(
        uid=case.study_uid, accession=case.accession,
        datetime=study_datetime(order.ordered_at) or Moment.from_iso(opened_at).hl7,
        description=_text(order.procedure)[:64] or PROCEDURE[language],
        referring=order.requester.name)


def study_datetime(ordered_at: str) -> str:
    """An HL7 TS (YYYY[MM[DD[HH[MM[SS]]]]] with an optional fraction and offset) as DICOM's
    YYYYMMDDHHMMSS, a missing part taken as its first value; "" when there is none."""
    found = _TS_DIGITS.match(ordered_at or "")
    if not found:
        return ""
    digits = found[1]
    return digits + _TS_FILL[len(digits):]


def _text(value: str) -> str:
    """A label fit for one LO value (no backslash, no control characters)."""
    return " ".join(_NOT_TEXT.sub(" ", value or "").split())
