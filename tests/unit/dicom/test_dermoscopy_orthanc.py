"""Dermoscopic images in a real Debian Orthanc: REST upload and DCMTK storescu (C-STORE).

Integration test (it starts Orthanc through the root `orthanc` fixture); it lives beside the
unit tests of connector.dicom.dermoscopy because it checks the same objects end to end.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import DermoscopicPhotographyImageStorage, JPEGBaseline8Bit

from connector.dicom.dermoscopy import Device, DermoscopyParams, to_dermoscopy
from connector.dicom.sites import load_sites, lookup
from connector.dicom.uids import uid_from
from connector.dicom.wrap import to_bytes, wrap_photo
from tests.support.orthanc import TEST_DEVICE

DEVICE = Device(manufacturer="DermLite", model="DL5", serial="SN-0042",
                software_versions=("iOS 17.5", "Capture 2.1"))
PARAMS = DermoscopyParams(polarization="POLARIZED", contact="CONTACT", magnification=10,
                          immersion_media=["ULTRASOUND_GEL"], tracking_id="L1")


def _dermoscopy_file(patient, jpeg: bytes, accession: str) -> tuple[str, bytes]:
    digest = hashlib.sha256(jpeg).hexdigest()
    study_uid = uid_from("study", accession)
    ds = wrap_photo(jpeg, patient=patient, study_uid=study_uid, accession=accession,
                    series_uid=uid_from("series", accession, "dermoscopy"),
                    sop_uid=uid_from("instance", accession, "dermoscopy", digest),
                    instance_number=1, study_datetime="20240315093000",
                    content_datetime="20240315094512", site=lookup(load_sites(), "66643007"),
                    laterality="L", source_sha256=digest)
    return study_uid, to_bytes(to_dermoscopy(ds, DEVICE, PARAMS))


def _check_stored(orthanc, study_uid: str, data: bytes) -> None:
    instances = orthanc.client.study_instances(study_uid)
    assert len(instances) == 1
    stored = instances[0]
    assert stored["Modality"] == "DMS"
    assert stored["SOPClassUID"] == DermoscopicPhotographyImageStorage
    assert stored["TransferSyntaxUID"] == JPEGBaseline8Bit
    # The data set arrives unchanged (the file meta header is the receiver's own over C-STORE).
    sent = dcmread(io.BytesIO(data))
    stored_file = httpx.get(f"{orthanc.url}/instances/{stored['orthanc_id']}/file",
                            auth=(orthanc.username, orthanc.password))
    received = dcmread(io.BytesIO(stored_file.raise_for_status().content))
    assert received == sent
    assert received.PixelData == sent.PixelData
    assert received.file_meta.TransferSyntaxUID == JPEGBaseline8Bit


def test_orthanc_keeps_dms_and_jpeg_baseline_when_stored_over_rest(orthanc, patient, plain_jpeg):
    study_uid, data = _dermoscopy_file(patient, plain_jpeg, "ACC-DMS-REST")
    orthanc.client.store(data)
    _check_stored(orthanc, study_uid, data)


def test_orthanc_receives_dms_when_sent_with_dcmtk_storescu(orthanc, patient, plain_jpeg,
                                                            tmp_path):
    storescu = shutil.which("storescu")
    if storescu is None:
        pytest.fail("storescu (Debian dcmtk) is not installed: run make test, which installs it")
    study_uid, data = _dermoscopy_file(patient, plain_jpeg, "ACC-DMS-SCU")
    path = tmp_path / "dms.dcm"
    path.write_bytes(data)
    # -R proposes only the classes the files need: DCMTK 3.6.7's default list lacks the
    # dermoscopy class ("No presentation context"); -xy proposes JPEG baseline
    # (reference/dicom.md 2.4). TCP_NODELAY=1 avoids Nagle delays on loopback.
    done = subprocess.run(
        [storescu, "-R", "-xy", "-aet", TEST_DEVICE.ae_title, "-aec", orthanc.managed.aet,
         "127.0.0.1", str(orthanc.dicom_port), str(path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "TCP_NODELAY": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    _check_stored(orthanc, study_uid, data)
