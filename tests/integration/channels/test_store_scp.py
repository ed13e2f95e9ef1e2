"""DICOM C-STORE SCP: objects sent by pynetdicom and by DCMTK storescu end up in Orthanc under
the case's study, with the case's accession and patient; unmatched objects are refused with a
failure status that names no case, and nothing is stored."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (DermoscopicPhotographyImageStorage, ImplicitVRLittleEndian,
                         JPEGBaseline8Bit, RLELossless, SecondaryCaptureImageStorage,
                         VLPhotographicImageStorage, generate_uid)
from pynetdicom import AE
from sqlalchemy import func, select

from connector.demo import DEMO_DEVICE_AE
from connector.entrypoints.dicom_scp import UNMATCHED_COMMENT
from connector.store.schema import images
from tests.support.channels import DEADLINE, jpeg_object, part10, storescu
from tests.support.wait import wait_until

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


def send_pynetdicom(channels, ds):
    """One C-STORE over a new association; returns the status dataset."""
    ae = AE(ae_title="DERMOCAM")
    ae.add_requested_context(VLPhotographicImageStorage, JPEGBaseline8Bit)
    ae.add_requested_context(DermoscopicPhotographyImageStorage, JPEGBaseline8Bit)
    ae.add_requested_context(SecondaryCaptureImageStorage, ImplicitVRLittleEndian)
    ae.add_requested_context(VLPhotographicImageStorage, RLELossless)
    assoc = ae.associate("127.0.0.1", channels.running.dicom_port, ae_title="TELEDERM_SCP")
    assert assoc.is_established
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return assoc.send_c_store(ds)
    finally:
        assoc.release()


def image_rows(channels, sop_uid: str) -> int:
    with channels.services.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(images).where(
            images.c.sop_uid == sop_uid)).scalar()


def test_object_from_pynetdicom_joins_its_case_when_it_carries_the_accession(channels):
    case = channels.open_case()
    ds = jpeg_object(accession=case["accession"], patient_id="IPP123456")
    status = send_pynetdicom(channels, ds)
    assert status.Status == 0x0000
    (inst,) = channels.wait_instances(case["study_instance_uid"], 1)
    assert inst["SOPInstanceUID"] == ds.SOPInstanceUID  # the device's UID is kept
    assert inst["AccessionNumber"] == case["accession"]
    assert inst["TransferSyntaxUID"] == JPEG_BASELINE
    tags = channels.services.archive._request(
        "get", f"instances/{inst['orthanc_id']}/tags", params={"simplify": ""}).json()
    assert (tags["PatientID"], tags["PatientName"]) == ("IPP123456", "DUPONT^Hélène")
    assert tags["StudyInstanceUID"] == case["study_instance_uid"]
    assert tags["PatientBirthDate"] == "19580312"
    # What the device had is kept in Original Attributes Sequence (reason COERCE).
    (original,) = tags["OriginalAttributesSequence"]
    assert original["ReasonForTheAttributeModification"] == "COERCE"
    assert original["ModifiedAttributesSequence"][0]["PatientName"] == "DEVICE^NAME"
    assert channels.case(case["accession"])["status"] in ("IMAGES_PENDING", "READY")


def test_object_from_storescu_joins_the_patients_only_open_case_when_it_has_no_accession(
        channels, tmp_path):
    case = channels.open_case(patient_id="IPP-SCU-1")
    ds = jpeg_object(accession="", patient_id="IPP-SCU-1", seed=7)
    path = tmp_path / "xc.dcm"
    path.write_bytes(part10(ds))
    done = storescu(path, channels.running.dicom_port)
    assert done.returncode == 0, done.stdout + done.stderr
    (inst,) = channels.wait_instances(case["study_instance_uid"], 1)
    assert inst["SOPInstanceUID"] == ds.SOPInstanceUID
    assert inst["AccessionNumber"] == case["accession"]
    assert (inst["Modality"], inst["TransferSyntaxUID"]) == ("XC", JPEG_BASELINE)


def test_dermoscopy_object_from_storescu_r_joins_its_case_when_it_carries_the_accession(
        channels, tmp_path):
    case = channels.open_case()
    ds = jpeg_object(accession=case["accession"], patient_id="IPP123456", dermoscopy=True, seed=11)
    path = tmp_path / "dms.dcm"
    path.write_bytes(part10(ds))
    done = storescu(path, channels.running.dicom_port, dermoscopy=True)
    assert done.returncode == 0, done.stdout + done.stderr
    (inst,) = channels.wait_instances(case["study_instance_uid"], 1)
    assert inst["SOPClassUID"] == DermoscopicPhotographyImageStorage
    assert (inst["Modality"], inst["AccessionNumber"]) == ("DMS", case["accession"])
    (row,) = channels.case(case["accession"])["images"]
    assert row["kind"] == "dermoscopy"


def test_unmatched_object_gets_a_failure_status_and_nothing_is_stored(channels):
    ds = jpeg_object(accession="", patient_id="NOBODY-42")
    status = send_pynetdicom(channels, ds)
    assert status.Status == 0xC000
    assert status.ErrorComment == UNMATCHED_COMMENT
    assert image_rows(channels, ds.SOPInstanceUID) == 0
    assert not channels.orthanc_has_sop(ds.SOPInstanceUID)
    refused = [a for a in channels.audit_actions("image.refused") if ds.SOPInstanceUID in a["detail"]]
    assert len(refused) == 1 and "NOBODY" not in refused[0]["detail"]


def test_unknown_accession_is_refused_when_the_patient_has_an_open_case(channels):
    case = channels.open_case(patient_id="IPP-ACC-77")
    ds = jpeg_object(accession="TD77777777", patient_id="IPP-ACC-77", seed=77)
    status = send_pynetdicom(channels, ds)
    assert status.Status == 0xC000
    assert status.ErrorComment == UNMATCHED_COMMENT  # a stranger learns nothing of our cases
    assert image_rows(channels, ds.SOPInstanceUID) == 0
    assert not channels.orthanc_has_sop(ds.SOPInstanceUID)
    assert channels.case(case["accession"])["status"] == "OPEN"
    assert _refusal_reason(channels, ds) == "no case with accession TD77777777"


def _refusal_reason(channels, ds) -> str:
    """The reason the audit trail keeps for the refusal of `ds` (the peer is not told)."""
    (row,) = [a for a in channels.audit_actions("image.refused")
              if ds.SOPInstanceUID in a["detail"]]
    return json.loads(row["detail"])["reason"]


def test_association_calling_another_ae_title_is_rejected(channels):
    ae = AE(ae_title=DEMO_DEVICE_AE)
    ae.add_requested_context(VLPhotographicImageStorage, JPEGBaseline8Bit)
    assoc = ae.associate("127.0.0.1", channels.running.dicom_port, ae_title="ANY-SCP")
    assert assoc.is_rejected
    ours = ae.associate("127.0.0.1", channels.running.dicom_port, ae_title="TELEDERM_SCP")
    assert ours.is_established
    ours.release()


def test_association_from_an_undeclared_calling_ae_title_is_rejected(channels):
    stranger = AE(ae_title="STRANGER")
    stranger.add_requested_context(VLPhotographicImageStorage, JPEGBaseline8Bit)
    assoc = stranger.associate("127.0.0.1", channels.running.dicom_port,
                               ae_title="TELEDERM_SCP")
    assert assoc.is_rejected
    # result 1 (rejected-permanent), source 1 (service user), reason 3: calling AE not known
    rejection = assoc.acceptor.primitive
    assert (rejection.result, rejection.result_source, rejection.diagnostic) == (1, 1, 3)


def _without(keyword):
    def edit(ds):
        delattr(ds, keyword)
        return ds
    return edit


def _set(keyword, value):
    def edit(ds):
        setattr(ds, keyword, value)
        return ds
    return edit


@pytest.mark.parametrize("dermoscopy, edit, named", [
    (False, _without("Rows"), "Rows"),
    (False, _set("Modality", "OT"), "Modality"),
    (False, _set("PhotometricInterpretation", "PALETTE COLOR"), "PhotometricInterpretation"),
    (True, _set("Modality", "XC"), "Modality"),
    (True, _without("RecognizableVisualFeatures"), "RecognizableVisualFeatures"),
    (True, _without("DeviceSerialNumber"), "DeviceSerialNumber"),
    (True, _set("ContactMethod", "TOUCH"), "ContactMethod"),
])
def test_object_not_matching_its_iod_gets_a900_naming_the_attribute_and_nothing_is_stored(
        channels, dermoscopy, edit, named):
    case = channels.open_case()
    ds = edit(jpeg_object(accession=case["accession"], patient_id="IPP123456",
                          dermoscopy=dermoscopy, seed=31))
    status = send_pynetdicom(channels, ds)
    assert status.Status == 0xA900
    assert named in status.ErrorComment
    assert image_rows(channels, ds.SOPInstanceUID) == 0
    assert not channels.orthanc_has_sop(ds.SOPInstanceUID)


def test_dermoscopy_object_with_xc_and_no_dermoscopic_attributes_gets_a900_from_storescu(
        channels, tmp_path):
    case = channels.open_case()
    ds = jpeg_object(accession=case["accession"], patient_id="IPP123456", seed=12)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DermoscopicPhotographyImageStorage
    path = tmp_path / "bad-dms.dcm"
    path.write_bytes(part10(ds))
    done = storescu(path, channels.running.dicom_port, dermoscopy=True)
    assert done.returncode != 0  # storescu: the peer answered a failure status
    refused = [a for a in channels.audit_actions("image.refused")
               if ds.SOPInstanceUID in a["detail"]]
    assert len(refused) == 1 and "Modality must be DMS" in refused[0]["detail"]
    assert image_rows(channels, ds.SOPInstanceUID) == 0
    assert not channels.orthanc_has_sop(ds.SOPInstanceUID)


def test_association_names_the_connector_as_the_implementation(channels):
    from connector.dicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
    ae = AE(ae_title="DERMOCAM")
    ae.add_requested_context(VLPhotographicImageStorage, JPEGBaseline8Bit)
    assoc = ae.associate("127.0.0.1", channels.running.dicom_port, ae_title="TELEDERM_SCP")
    assert assoc.is_established
    try:
        assert assoc.acceptor.implementation_class_uid == IMPLEMENTATION_CLASS_UID
        assert assoc.acceptor.implementation_version_name == IMPLEMENTATION_VERSION_NAME
    finally:
        assoc.release()


def test_object_of_another_patient_is_refused_when_it_carries_a_cases_accession(channels):
    case = channels.open_case()
    ds = jpeg_object(accession=case["accession"], patient_id="SOMEONE-ELSE")
    status = send_pynetdicom(channels, ds)
    assert status.Status == 0xC000 and status.ErrorComment == UNMATCHED_COMMENT
    assert image_rows(channels, ds.SOPInstanceUID) == 0
    assert "another patient" in _refusal_reason(channels, ds)


def test_object_is_refused_when_the_patient_has_two_open_cases_and_no_accession_is_sent(channels):
    channels.open_case(patient_id="IPP-TWICE")
    channels.open_case(patient_id="IPP-TWICE")
    ds = jpeg_object(patient_id="IPP-TWICE")
    status = send_pynetdicom(channels, ds)
    assert status.Status == 0xC000 and status.ErrorComment == UNMATCHED_COMMENT
    assert image_rows(channels, ds.SOPInstanceUID) == 0
    assert _refusal_reason(channels, ds) == "2 open cases for this patient"


def test_same_object_sent_twice_is_one_image_when_the_device_retries(channels):
    case = channels.open_case()
    ds = jpeg_object(accession=case["accession"], patient_id="", seed=3)
    assert send_pynetdicom(channels, ds).Status == 0x0000
    assert send_pynetdicom(channels, ds).Status == 0x0000
    assert image_rows(channels, ds.SOPInstanceUID) == 1
    assert len(channels.wait_instances(case["study_instance_uid"], 1)) == 1


def test_object_is_refused_when_its_case_is_cancelled_or_answered(channels):
    case = channels.open_case()
    accession = case["accession"]
    assert send_pynetdicom(channels, jpeg_object(accession=accession, patient_id="", seed=5)).Status == 0
    wait_until(lambda: channels.case(accession)["status"] == "READY", DEADLINE,
               "the case to be READY")
    r = channels.api.post(f"/api/cases/{accession}/report", json={
        "text": "Naevus bénin.", "conduct": "no_visit",
        "specialist": {"id": "810001234567", "name": "LEROY^Claire"}})
    assert r.status_code == 201, r.text
    late = jpeg_object(accession=accession, seed=6, patient_id="")
    late.SOPInstanceUID = late.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    status = send_pynetdicom(channels, late)
    assert status.Status == 0xC000 and "ANSWERED" in status.ErrorComment
    assert image_rows(channels, late.SOPInstanceUID) == 0


def uncompressed_object(*, accession: str, sop_class: str, syntax: str) -> Dataset:
    """A small 8-bit RGB image (Secondary Capture or VL Photographic) in the given syntax."""
    pixels = np.zeros((16, 24, 3), dtype=np.uint8)
    pixels[4:12, 6:18] = (120, 70, 40)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.PatientName, ds.PatientID = "DEVICE^NAME", "IPP123456"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.AccessionNumber = accession
    ds.Modality = "OT" if sop_class == SecondaryCaptureImageStorage else "XC"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ConversionType = "WSD"
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if syntax == RLELossless:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.PixelData = pixels.tobytes()
        ds.compress(RLELossless, pixels)
    else:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = pixels.tobytes()
    return ds


@pytest.mark.parametrize("sop_class, syntax", [
    (SecondaryCaptureImageStorage, ImplicitVRLittleEndian),
    (VLPhotographicImageStorage, RLELossless),
])
def test_uncompressed_and_rle_objects_are_taken_in_their_transfer_syntax(channels, sop_class,
                                                                         syntax):
    case = channels.open_case()
    ds = uncompressed_object(accession=case["accession"], sop_class=sop_class, syntax=syntax)
    assert send_pynetdicom(channels, ds).Status == 0x0000
    (inst,) = channels.wait_instances(case["study_instance_uid"], 1)
    assert (inst["SOPClassUID"], inst["TransferSyntaxUID"]) == (sop_class, syntax)
    assert inst["AccessionNumber"] == case["accession"]
