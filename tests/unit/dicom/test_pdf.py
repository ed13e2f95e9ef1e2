"""connector.dicom.pdf: PDF report → Encapsulated PDF Storage (DOC)."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, VLPhotographicImageStorage

from connector.dicom.pdf import encapsulate_pdf, to_bytes
from connector.dicom.uids import uid_from
from connector.domain.errors import DomainError
from connector.domain.model import PersonName


# A minimal but well-formed PDF; its length (odd on purpose) exercises the padding rule.
PDF = (
    b"%PDF-1.4\n"
    b"1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n"
    b"%%EOF\n"
)
PHOTOS = [(VLPhotographicImageStorage, uid_from("instance", "ACC-42", "1")),
          (VLPhotographicImageStorage, uid_from("instance", "ACC-42", "2"))]


@pytest.fixture
def encapsulate(patient):
    def run(pdf: bytes = PDF, **overrides):
        args = dict(
            patient=patient,
            study_uid=uid_from("study", "ACC-42"),
            accession="ACC-42",
            series_uid=uid_from("series", "ACC-42", "report"),
            sop_uid=uid_from("report", "ACC-42", "1"),
            instance_number=1,
            title="Avis dermatologique",
            content_datetime="20240316101500",
            referring=PersonName("MARTIN", "Jean"),
            source_images=PHOTOS,
            study_datetime="20240315093000",
        )
        args.update(overrides)
        return encapsulate_pdf(pdf, **args)

    return run


def _write(tmp_path, ds):
    path = tmp_path / "report.dcm"
    path.write_bytes(to_bytes(ds))
    return path


def test_encapsulate_pdf_passes_dciodvfy_when_sources_given(encapsulate, dciodvfy, tmp_path):
    report = dciodvfy(_write(tmp_path, encapsulate()))
    assert "EncapsulatedPDF" in report
    assert [line for line in report if "Error" in line] == []


def test_encapsulate_pdf_passes_dciodvfy_when_no_sources_and_even_length(encapsulate, dciodvfy,
                                                                        tmp_path):
    even = PDF + b"\n"
    ds = encapsulate(even, source_images=(), referring=None, study_datetime="")
    assert "SourceInstanceSequence" not in ds
    assert [line for line in dciodvfy(_write(tmp_path, ds)) if "Error" in line] == []


def test_encapsulate_pdf_pads_to_even_length_and_records_true_length_when_odd(encapsulate,
                                                                              tmp_path):
    assert len(PDF) % 2 == 1
    back = dcmread(_write(tmp_path, encapsulate()))
    assert back.EncapsulatedDocument == PDF + b"\x00"
    assert back.EncapsulatedDocumentLength == len(PDF)


def test_encapsulate_pdf_fills_document_attributes_when_written(encapsulate, tmp_path):
    back = dcmread(_write(tmp_path, encapsulate()))
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert back.SOPClassUID == EncapsulatedPDFStorage
    assert back.Modality == "DOC" and back.ConversionType == "WSD"
    assert back.BurnedInAnnotation == "YES"
    assert back.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert (back.SeriesNumber, back.InstanceNumber) == (1, 1)
    assert back.DocumentTitle == "Avis dermatologique"
    assert (back.ContentDate, back.ContentTime) == ("20240316", "101500")
    assert back.StudyInstanceUID == uid_from("study", "ACC-42")
    assert str(back.PatientName) == "DUPONT^Hélène"
    assert str(back.ReferringPhysicianName) == "MARTIN^Jean"


def test_encapsulate_pdf_references_the_source_photos_when_given(encapsulate, tmp_path):
    back = dcmread(_write(tmp_path, encapsulate()))
    refs = [(item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID)
            for item in back.SourceInstanceSequence]
    assert refs == PHOTOS


def test_encapsulate_pdf_raises_domain_error_when_not_a_pdf(encapsulate):
    with pytest.raises(DomainError) as caught:
        encapsulate(b"<html>report</html>")
    assert caught.value.where == "pdf" and caught.value.hint


def test_encapsulate_pdf_raises_domain_error_when_source_uid_is_bad(encapsulate):
    with pytest.raises(DomainError) as caught:
        encapsulate(source_images=[(VLPhotographicImageStorage, "photo-1")])
    assert caught.value.where == "source_images[0].sop_uid"


def test_encapsulate_pdf_correction_references_the_replaced_report_and_passes_dciodvfy(
        encapsulate, dciodvfy, tmp_path):
    replaced = uid_from("report", "ACC-42", "1")
    ds = encapsulate(sop_uid=uid_from("report", "ACC-42", "2"), instance_number=2,
                     replaces=replaced)
    read = dcmread(_write(tmp_path, ds))
    (ref,) = read.ReferencedInstanceSequence
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (
        EncapsulatedPDFStorage, replaced)
    (purpose,) = ref.PurposeOfReferenceCodeSequence
    assert (purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning) == (
        "121360", "DCM", "Replaced report")
    assert [line for line in dciodvfy(_write(tmp_path, ds)) if "Error" in line] == []


def test_encapsulate_pdf_first_version_references_no_report(encapsulate, tmp_path):
    assert "ReferencedInstanceSequence" not in dcmread(_write(tmp_path, encapsulate()))


def test_encapsulate_pdf_raises_domain_error_when_it_would_replace_itself(encapsulate):
    with pytest.raises(DomainError) as err:
        encapsulate(replaces=uid_from("report", "ACC-42", "1"))
    assert err.value.where == "replaces"
