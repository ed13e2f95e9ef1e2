"""The patient's identity and character set in what reaches Orthanc: a qualified INS is Patient ID
with its OID as issuer (IPP in Other Patient IDs), an unusable one is written nowhere; names that
fit Latin-1 are ISO_IR 100, others (Œ, œ, € from 8859/15) ISO_IR 192. Checked with dciodvfy."""

from __future__ import annotations

import pytest
from pydicom import dcmread

from connector.dicom.common import fit_charset, to_bytes
from connector.dicom.pdf import encapsulate_pdf
from connector.dicom.uids import uid_from
from connector.dicom.wrap import wrap_image
from connector.hl7.orm import order_from_orm
from connector.hl7.parse import parse
from tests.support.dciodvfy import dciodvfy_errors

NIR = "279035121518989"
INS_OID = "1.2.250.1.213.1.4.8"


def order_message(*, family: str, given: str, charset: str, pid32: str = "",
                  codec: str = "utf-8") -> bytes:
    """An ORM^O01 NW with an IPP and an INS, encoded as MSH-18 says."""
    segments = [
        "MSH|^~\\&|DPI|CHU_NIMES|TELEDERM|TELEDERM|20261115093000||ORM^O01^ORM_O01|C1|P|2.5"
        f"|||||FRA|{charset}",
        f"PID|1||IPP0012345^^^CHU_NIMES^PI~{NIR}^^^ASIP-SANTE-INS-NIR&{INS_OID}&ISO^INS||"
        f"{family}^{given}^^^^^L||19720314|F" + "|" * 24 + pid32,
        "ORC|NW|CMD-1^DPI|||||||20261115092500|||801234567897^MARTIN^François",
        "OBR|1|CMD-1^DPI||TELEDERM^Télé-expertise^L|||||||||Lésion",
        "OBX|1|CWE|CONSENT^Consentement^L||Y||||||F",
    ]
    return ("\r".join(segments) + "\r").encode(codec)


def wrapped(data: bytes, raw: bytes, **extra):
    _, order = order_from_orm(parse(raw))
    study = uid_from("study", "DPI", order.placer_order_number)
    return wrap_image(data, patient=order.patient, study_uid=study, accession="TD00000001",
                      series_uid=uid_from("series", study, "photo"),
                      sop_uid=uid_from("instance", study, "1"), instance_number=1,
                      study_datetime="20261115092500", content_datetime="20261115093000",
                      referring=order.requester.name, **extra)


def written(tmp_path, wrapped_image, name="out.dcm"):
    path = tmp_path / name
    path.write_bytes(wrapped_image.to_bytes())
    return path, dcmread(path)


@pytest.mark.parametrize("charset,codec", [("8859/1", "latin-1"), ("8859/15", "iso8859-15"),
                                           ("UNICODE UTF-8", "utf-8")])
def test_latin1_names_from_any_hl7_charset_are_written_iso_ir_100(tmp_path, plain_jpeg,
                                                                   charset, codec):
    raw = order_message(family="LEFÈVRE", given="Hélène", charset=charset, codec=codec)
    path, ds = written(tmp_path, wrapped(plain_jpeg, raw))
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    assert str(ds.PatientName) == "LEFÈVRE^Hélène"
    assert str(ds.ReferringPhysicianName) == "MARTIN^François"
    assert "LEFÈVRE".encode("latin-1") in path.read_bytes()
    assert dciodvfy_errors(path) == []


@pytest.mark.parametrize("charset,codec", [("8859/15", "iso8859-15"),
                                           ("UNICODE UTF-8", "utf-8")])
def test_names_latin1_lacks_are_written_utf8(tmp_path, plain_jpeg, charset, codec):
    raw = order_message(family="CŒUR", given="Zoë", charset=charset, codec=codec)
    path, ds = written(tmp_path, wrapped(plain_jpeg, raw))
    assert ds.SpecificCharacterSet == "ISO_IR 192"  # 8859/15 has no DICOM defined term
    assert str(ds.PatientName) == "CŒUR^Zoë"
    assert "CŒUR".encode("utf-8") in path.read_bytes()
    assert dciodvfy_errors(path) == []


def test_any_text_of_the_object_decides_the_charset(tmp_path, plain_jpeg):
    raw = order_message(family="DUPONT", given="Jean", charset="UNICODE UTF-8")
    _, ds = written(tmp_path, wrapped(plain_jpeg, raw, description="Lésion du cœur"))
    assert ds.SpecificCharacterSet == "ISO_IR 192" and ds.SeriesDescription == "Lésion du cœur"


def test_qualified_ins_is_the_patient_id_and_the_ipp_goes_in_other_patient_ids(tmp_path,
                                                                              plain_jpeg):
    raw = order_message(family="LEFÈVRE", given="Hélène", charset="UNICODE UTF-8",
                        pid32="QUAL")
    path, ds = written(tmp_path, wrapped(plain_jpeg, raw))
    assert (ds.PatientID, ds.IssuerOfPatientID) == (NIR, INS_OID)
    (qualifiers,) = ds.IssuerOfPatientIDQualifiersSequence
    assert (qualifiers.UniversalEntityID, qualifiers.UniversalEntityIDType) == (INS_OID, "ISO")
    (other,) = ds.OtherPatientIDsSequence
    assert (other.PatientID, other.IssuerOfPatientID, other.TypeOfPatientID) == (
        "IPP0012345", "CHU_NIMES", "TEXT")
    assert dciodvfy_errors(path) == []


@pytest.mark.parametrize("pid32", ["", "VALI", "RECUP", "QUAL~DOUT"])
def test_unusable_ins_is_written_nowhere(tmp_path, plain_jpeg, pid32):
    raw = order_message(family="LEFÈVRE", given="Hélène", charset="UNICODE UTF-8", pid32=pid32)
    path, ds = written(tmp_path, wrapped(plain_jpeg, raw))
    assert (ds.PatientID, ds.IssuerOfPatientID) == ("IPP0012345", "CHU_NIMES")
    assert "OtherPatientIDsSequence" not in ds and "IssuerOfPatientIDQualifiersSequence" not in ds
    assert NIR.encode() not in path.read_bytes()
    assert dciodvfy_errors(path) == []


def test_report_pdf_object_follows_the_same_identity_and_charset_rules(tmp_path):
    raw = order_message(family="CŒUR", given="Zoë", charset="8859/15", codec="iso8859-15",
                        pid32="QUAL")
    _, order = order_from_orm(parse(raw))
    study = uid_from("study", "DPI", order.placer_order_number)
    ds = encapsulate_pdf(b"%PDF-1.4\n%%EOF\n", patient=order.patient, study_uid=study,
                          accession="TD00000001", series_uid=uid_from("series", study, "pdf"),
                          sop_uid=uid_from("instance", study, "pdf"), instance_number=1,
                          study_datetime="20261115092500", content_datetime="20261115093000",
                          title="Compte rendu", referring=order.requester.name)
    path = tmp_path / "report.dcm"
    path.write_bytes(to_bytes(ds))
    back = dcmread(path)
    assert back.SpecificCharacterSet == "ISO_IR 192" and str(back.PatientName) == "CŒUR^Zoë"
    assert back.PatientID == NIR and back.OtherPatientIDsSequence[0].PatientID == "IPP0012345"
    assert dciodvfy_errors(path) == []


def test_fit_charset_reads_nested_and_multi_valued_text():
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    ds = Dataset()
    ds.PatientName = "DUPONT^Jean"
    item = Dataset()
    item.CodeMeaning = "Peau du cœur"
    ds.AnatomicRegionSequence = Sequence([item])
    assert fit_charset(ds) == "ISO_IR 192"
    item.CodeMeaning = "Peau du dos"
    ds.OtherPatientNames = ["ÉLODIE", "MARTIN"]
    assert fit_charset(ds) == "ISO_IR 100"
