"""Modules every object we write shares: Patient, General Study, SOP Common basics, file meta.

Why: the photos and the PDF report of one case must carry identical patient and study
attributes, or the archive shows one study with conflicting demographics. Building them in one
place keeps them identical and validates the inputs once (strict when encoding).
"""

from __future__ import annotations

import datetime as dt
import io

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import RE_VALID_UID

from connector.domain.errors import DomainError
from connector.domain.model import Patient, PersonName

CHARSET = "ISO_IR 192"  # UTF-8: French accents in names and titles


def patient_and_study(
    *,
    patient: Patient,
    study_uid: str,
    accession: str,
    study_datetime: str,
    referring: PersonName | None,
) -> Dataset:
    """A new dataset holding the Patient and General Study modules and the character set."""
    check_uid(study_uid, "study_uid")
    check_len(accession, 16, "accession")
    ds = Dataset()
    ds.SpecificCharacterSet = CHARSET
    ds.PatientName = patient.name.hl7()
    ds.PatientID = patient.id
    if patient.issuer:
        ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.StudyInstanceUID = study_uid
    ds.StudyDate, ds.StudyTime = (
        split_datetime(study_datetime, "study_datetime") if study_datetime else ("", "")
    )
    ds.ReferringPhysicianName = referring.hl7() if referring else ""
    ds.StudyID = ""
    ds.AccessionNumber = accession
    return ds


def file_meta(sop_class: str, sop_uid: str, transfer_syntax: str) -> FileMetaDataset:
    """File meta information; pydicom fills the group length and implementation fields."""
    check_uid(sop_uid, "sop_uid")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    return meta


def to_bytes(ds: Dataset) -> bytes:
    """Serialise as a DICOM Part-10 file (preamble, DICM, file meta) in memory."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


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


def check_number(value: int, where: str) -> None:
    """Series and instance numbers: positive integers that fit an IS value."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise DomainError("must be a whole number from 1 to 2147483647", where=where)
