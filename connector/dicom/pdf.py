"""Wrap a PDF report as Encapsulated PDF Storage (Modality DOC) in the case's study.

Why: the PDF is what most viewers and EHRs display, and storing it in the same study as the
photos keeps the answer next to the images in the archive. Source Instance Sequence names the
photos the report was made from, so the link survives outside our database. A corrected
version names the version it replaces in Referenced Instance Sequence (0008,114A) with purpose
(DCM, 121360, "Replaced report"), so an archive or viewer that holds both knows which one is
superseded; its Instance Number (the version) and Content Date/Time sort it last.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian

from connector.domain.errors import DomainError
from connector.domain.model import Patient, PersonName

from .common import check_number, check_uid, file_meta, patient_and_study, split_datetime, to_bytes

__all__ = ["encapsulate_pdf", "to_bytes"]

MANUFACTURER = "TeleDerm Connector"


def encapsulate_pdf(
    pdf: bytes,
    *,
    patient: Patient,
    study_uid: str,
    accession: str,
    series_uid: str,
    sop_uid: str,
    instance_number: int,
    title: str,
    content_datetime: str,
    referring: PersonName | None = None,
    source_images: SequenceABC[tuple[str, str]] = (),
    study_datetime: str = "",
    series_number: int = 1,
    study_description: str = "",
    study_id: str = "",
    replaces: str = "",
) -> Dataset:
    """Build an Encapsulated PDF dataset; `source_images` are (SOP Class UID, SOP Instance UID);
    `replaces` is the SOP Instance UID of the report (Encapsulated PDF) this one corrects.

    Raises DomainError when `pdf` is not a PDF or an argument is malformed.
    """
    if not pdf.startswith(b"%PDF-"):
        raise DomainError("the report is not a PDF document (no %PDF- header)", where="pdf",
                          hint="render the report as PDF before storing it")
    if len(title) > 1024:
        raise DomainError("title is longer than 1024 characters", where="title")
    check_uid(series_uid, "series_uid")
    check_uid(sop_uid, "sop_uid")
    check_number(instance_number, "instance_number")
    check_number(series_number, "series_number")
    for k, (sop_class, sop_instance) in enumerate(source_images):
        check_uid(sop_class, f"source_images[{k}].sop_class")
        check_uid(sop_instance, f"source_images[{k}].sop_uid")
    if replaces:
        check_uid(replaces, "replaces")
        if replaces == sop_uid:
            raise DomainError("a report cannot replace itself", where="replaces")

    ds = patient_and_study(patient=patient, study_uid=study_uid, accession=accession,
                           study_datetime=study_datetime, referring=referring,
                           study_description=study_description, study_id=study_id)
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = sop_uid

    # Encapsulated Document Series
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number

    # General Equipment + SC Equipment: we made this object on a workstation.
    ds.Manufacturer = MANUFACTURER
    ds.ConversionType = "WSD"

    # Encapsulated Document
    ds.InstanceNumber = instance_number
    ds.ContentDate, ds.ContentTime = split_datetime(content_datetime, "content_datetime")
    ds.AcquisitionDateTime = content_datetime
    ds.BurnedInAnnotation = "YES"  # the report shows the patient's identity
    if source_images:
        ds.SourceInstanceSequence = Sequence(
            [_reference(sop_class, sop_instance) for sop_class, sop_instance in source_images]
        )
    if replaces:
        ds.ReferencedInstanceSequence = Sequence([_replaced(replaces)])
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = Sequence()
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)  # unpadded length (CP-1851)

    ds.file_meta = file_meta(EncapsulatedPDFStorage, sop_uid, ExplicitVRLittleEndian)
    return ds


def _reference(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def _replaced(sop_instance: str) -> Dataset:
    item = _reference(EncapsulatedPDFStorage, sop_instance)
    replaced = codes.DCM.ReplacedReport
    purpose = Dataset()
    purpose.CodeValue = replaced.value
    purpose.CodingSchemeDesignator = replaced.scheme_designator
    purpose.CodeMeaning = replaced.meaning
    item.PurposeOfReferenceCodeSequence = Sequence([purpose])
    return item
