"""Modules every object we write shares: Patient, General Study, SOP Common basics, file meta.

Why: the photos and the PDF report of one case must carry identical patient and study
attributes, or the archive shows one study with conflicting demographics. Building them in one
place keeps them identical and validates the inputs once (strict when encoding).

Identity: Patient ID / Issuer of Patient ID are the patient's id (in France the INS with its OID
when the identity is qualified, else the IPP: `domain.model.Patient`); an OID issuer is also
given as Issuer of Patient ID Qualifiers (Universal Entity ID, type ISO); the patient's other
identifiers (the IPP beside a qualified INS, or the reverse) go in Other Patient IDs Sequence.
An INS that is not usable is never written.

Character set: names and identifiers arrive from HL7 in UTF-8, 8859/1 or 8859/15 and are text
(str) here; what reaches Orthanc is ISO_IR 100 (Latin-1) when every text of the object fits it,
else ISO_IR 192 (UTF-8), because 8859/15 (Œ œ €) has no DICOM defined term. `fit_charset`
decides from every text element; `to_bytes` applies it before writing.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import BinaryIO

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import RE_VALID_UID

from connector.domain.errors import DomainError
from connector.domain.model import Patient, PersonName, valid_oid

from .uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

# DICOM Specific Character Set (0008,0005) defined terms we write. ISO 8859-15 (the HL7 `8859/15`
# French senders use, with Œ œ € Š ...) has no DICOM defined term: such text goes in UTF-8.
LATIN1 = "ISO_IR 100"
UTF8 = "ISO_IR 192"


def dicom_charset(texts) -> str:
    """The character set for a set of strings: `ISO_IR 100` when every character is Latin-1
    (ISO 8859-1), else `ISO_IR 192` (UTF-8)."""
    for text in texts:
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            return UTF8
    return LATIN1


CHARSET = UTF8  # the widest we write; `fit_charset` picks ISO_IR 100 when it is enough
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "PN", "UC"})


def patient_and_study(
    *,
    patient: Patient,
    study_uid: str,
    accession: str,
    study_datetime: str,
    referring: PersonName | None,
    study_description: str = "",
    study_id: str = "",
) -> Dataset:
    """A new dataset holding the Patient and General Study modules and the character set.

    Every object of a case's study is built from the same values (`workflow.study`), so the
    archive answers one date, description and referring physician whatever instance it reads.
    """
    check_uid(study_uid, "study_uid")
    check_len(accession, 16, "accession")
    check_lo(study_description, 64, "study_description")
    check_len(study_id, 16, "study_id")
    ds = Dataset()
    ds.SpecificCharacterSet = CHARSET
    add_patient(ds, patient)
    ds.StudyInstanceUID = study_uid
    ds.StudyDate, ds.StudyTime = (
        split_datetime(study_datetime, "study_datetime") if study_datetime else ("", "")
    )
    ds.ReferringPhysicianName = referring.hl7() if referring else ""
    ds.StudyID = study_id
    ds.AccessionNumber = accession
    if study_description:
        ds.StudyDescription = study_description
    fit_charset(ds)
    return ds


def add_patient(ds: Dataset, patient: Patient) -> None:
    """The Patient module's identification and demographics (see the module docstring)."""
    ds.PatientName = patient.name.hl7()
    ds.PatientID = patient.id
    if patient.issuer:
        ds.IssuerOfPatientID = patient.issuer
        if valid_oid(patient.issuer):
            ds.IssuerOfPatientIDQualifiersSequence = Sequence([_qualifiers(patient.issuer)])
    if patient.other_ids:
        ds.OtherPatientIDsSequence = Sequence(
            [_other_id(value, issuer) for value, issuer in patient.other_ids])
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex


def other_patient_ids(patient: Patient) -> list[dict]:
    """The patient's Other Patient IDs Sequence, items as nested {keyword: value} (the form
    Orthanc's simplified tags show and its `/modify` `Replace` takes), built as `add_patient`
    builds it, so an identity update leaves a stored object as a new one would be."""
    return [_simple(_other_id(value, issuer)) for value, issuer in patient.other_ids]


def _simple(ds: Dataset) -> dict:
    return {e.keyword: [_simple(item) for item in e.value] if e.VR == "SQ" else str(e.value)
            for e in ds}


def _qualifiers(oid: str) -> Dataset:
    item = Dataset()
    item.UniversalEntityID = oid
    item.UniversalEntityIDType = "ISO"
    return item


def _other_id(value: str, issuer: str) -> Dataset:
    item = Dataset()
    item.PatientID = value
    if issuer:
        item.IssuerOfPatientID = issuer
        if valid_oid(issuer):
            item.IssuerOfPatientIDQualifiersSequence = Sequence([_qualifiers(issuer)])
    item.TypeOfPatientID = "TEXT"
    return item


def fit_charset(ds: Dataset) -> str:
    """Set Specific Character Set from every text element (nested ones too): ISO_IR 100 when
    all of it is Latin-1, else ISO_IR 192. Values must already be text (build them as str, or
    `ds.decode()` a received object first). Returns the term set."""
    texts = []
    for element in ds.iterall():
        if element.VR in _TEXT_VRS and element.value is not None:
            values = element.value if element.VM > 1 else [element.value]
            texts.extend(str(v) for v in values)
    ds.SpecificCharacterSet = dicom_charset(texts)
    return ds.SpecificCharacterSet


def file_meta(sop_class: str, sop_uid: str, transfer_syntax: str) -> FileMetaDataset:
    """File meta information naming the connector as the implementation that wrote it;
    pydicom fills the group length."""
    check_uid(sop_uid, "sop_uid")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    sign_meta(meta)
    return meta


def sign_meta(meta: FileMetaDataset) -> None:
    """Name the connector as the implementation writing the file (PS3.10 7.1): also for a
    received object the connector rewrites, whose meta named the sender's."""
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME


def to_bytes(ds: Dataset) -> bytes:
    """Serialise as a DICOM Part-10 file (preamble, DICM, file meta naming the connector) in
    memory, in the narrowest character set its text fits (`fit_charset`)."""
    buffer = io.BytesIO()
    write(ds, buffer)
    return buffer.getvalue()


def write(ds: Dataset, fh: BinaryIO) -> None:
    """What `to_bytes` returns, written straight into an open file: a 12-Mpx photo's Pixel
    Data is not copied into a buffer first."""
    fit_charset(ds)
    if getattr(ds, "file_meta", None) is not None:
        sign_meta(ds.file_meta)
    ds.save_as(fh, enforce_file_format=True)


def split_datetime(value: str, where: str) -> tuple[str, str]:
    """Split YYYYMMDDHHMMSS into DICOM DA and TM, refusing anything that is not a real instant."""
    try:
        dt.datetime.strptime(value, "%Y%m%d%H%M%S")
    except (TypeError, ValueError):
        raise DomainError("date-time must be a valid YYYYMMDDHHMMSS value", where=where) from None
    if len(value) != 14:  # strptime accepts single-digit fields
        raise DomainError("date-time must be a valid YYYYMMDDHHMMSS value", where=where)
    return value[:8], value[8:]


def check_uid(value: str, where: str) -> None:
    if not (isinstance(value, str) and len(value) <= 64 and RE_VALID_UID.match(value)):
        raise DomainError("not a valid DICOM UID (digits and dots, at most 64 characters)",
                          where=where)


def check_len(value: str, limit: int, where: str) -> None:
    if len(value) > limit:
        raise DomainError(f"{where} is longer than {limit} characters", where=where)


# A backslash separates DICOM values; control characters (NUL, ESC ...) are not text in LO.
_NOT_LO = re.compile(r"[\\\x00-\x1f\x7f]")


def check_lo(value: str, limit: int, where: str) -> None:
    """A user's text bound for an LO element (at most `limit` characters, one value)."""
    check_len(value, limit, where)
    if _NOT_LO.search(value):
        raise DomainError(f"{where} may not hold a backslash or control characters",
                          where=where)


def check_number(value: int, where: str) -> None:
    """Series and instance numbers: positive integers that fit an IS value."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise DomainError("must be a whole number from 1 to 2147483647", where=where)
