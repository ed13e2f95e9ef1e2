"""The channel tests' connector as they see it (`Channels`: open cases, look into Orthanc and
the audit trail), DICOM objects a device would send, and the DCMTK tools that send them."""

from __future__ import annotations

import io
import itertools
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (DermoscopicPhotographyImageStorage, JPEGBaseline8Bit,
                         VLPhotographicImageStorage, generate_uid)

from connector.demo import DEMO_DEVICE_AE, demo_order, demo_photo
from connector.domain.errors import NotFound
from connector.hl7.client import send_message
from connector.runtime.server import RunningConnector
from tests.support.wait import wait_until

DEADLINE = 60          # worker publication, archive store: well under this on a quiet machine
_placers = itertools.count(1)


@dataclass
class Channels:
    running: RunningConnector
    api: httpx.Client
    work: Path
    watch: Path

    @property
    def services(self):
        return self.running.services

    @property
    def orthanc_dicom_port(self) -> int:
        return self.running.config.orthanc.dicom_port

    def open_case(self, *, patient_id: str | None = None, edit=None) -> dict:
        """Send a new order over MLLP (AA expected) and return the case as the API shows it;
        `edit` may change the order's text (e.g. add OBX segments) before it is sent."""
        placer = f"PL-CH-{secrets.token_hex(3)}-{next(_placers)}"
        text = demo_order(f"CH-{placer}", placer)
        if patient_id:
            text = text.replace("IPP123456^", f"{patient_id}^", 1)
        if edit is not None:
            text = edit(text)
        ack = send_message("127.0.0.1", self.running.hl7_port, text)
        assert ack.code == "AA", (ack.code, [e.text for e in ack.errors])
        (case,) = self.api.get("/api/cases", params={"placer_order_number": placer}).json()
        return case

    def send_order(self, edit) -> tuple[object, str]:
        """Send an edited demo order; return the ACK and the placer order number."""
        placer = f"PL-CH-{secrets.token_hex(3)}-{next(_placers)}"
        ack = send_message("127.0.0.1", self.running.hl7_port,
                           edit(demo_order(f"CH-{placer}", placer)))
        return ack, placer

    def case(self, accession: str) -> dict:
        return self.api.get(f"/api/cases/{accession}").json()

    def instances(self, study_uid: str) -> list[dict]:
        try:
            return self.services.archive.study_instances(study_uid)
        except NotFound:
            return []

    def wait_instances(self, study_uid: str, count: int) -> list[dict]:
        return wait_until(lambda: (found := self.instances(study_uid)) and len(found) >= count
                          and found, DEADLINE, f"{count} instance(s) in the study in Orthanc")

    def orthanc_has_sop(self, sop_uid: str) -> bool:
        matches = self.services.archive._request("post", "tools/lookup", data=sop_uid).json()
        return any(m["Type"] == "Instance" for m in matches)

    def audit_actions(self, action: str) -> list[dict]:
        from sqlalchemy import select

        from connector.store.schema import audit
        with self.services.store.engine.connect() as conn:
            rows = conn.execute(select(audit).where(audit.c.action == action)).mappings().all()
        return [dict(r) for r in rows]


# --- DICOM objects a device would send -----------------------------------------------------

def jpeg_object(*, accession: str = "", patient_id: str = "DEV-PAT-1", patient_name: str = "DEVICE^NAME",
                dermoscopy: bool = False, seed: int = 0) -> Dataset:
    """A VL Photographic (XC) or Dermoscopic Photography (DMS) image with a baseline JPEG frame,
    in a study of the device's own making (its own Study Instance UID)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (96, 64), (200, 160 + seed % 60, 140))
    ImageDraw.Draw(img).ellipse((30, 16, 66, 48), fill=(80, 50, 30 + seed % 100))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    frame = out.getvalue()
    sop_class = DermoscopicPhotographyImageStorage if dermoscopy else VLPhotographicImageStorage
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19000101"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime = "20260101", "101010"
    ds.AccessionNumber = accession
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.Modality = "DMS" if dermoscopy else "XC"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "DermoCam"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = 64, 96
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"
    if dermoscopy:  # Enhanced General Equipment and Dermoscopic Image (Type 1 and 2)
        ds.ManufacturerModelName = "DC-1"
        ds.DeviceSerialNumber = "DC1-0042"
        ds.SoftwareVersions = ["DermoCam 2.1"]
        ds.RecognizableVisualFeatures = "NO"
        ds.LightSourcePolarization = "POLARIZED"
        ds.EmitterColorTemperature = None
        ds.ContactMethod = "CONTACT"
        ds.ImmersionMedia = ["ULTRASOUND_GEL"]
        ds.OpticalMagnificationFactor = "10"
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.file_meta = meta
    return ds


def part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dcmtk_env() -> dict:
    """DCMTK tools answer each PDU at once only with TCP_NODELAY=1 in their environment."""
    return {**os.environ, "TCP_NODELAY": "1"}


def storescu(path: Path, port: int, *, dermoscopy: bool = False,
             called: str = "TELEDERM_SCP") -> subprocess.CompletedProcess:
    """DCMTK storescu sending the file unchanged (-xy: propose JPEG baseline; -R: only the
    contexts the file needs, required for the dermoscopy class DCMTK does not propose)."""
    args = ["storescu", "-xy", "-aet", DEMO_DEVICE_AE, "-aec", called]
    if dermoscopy:
        args.append("-R")
    return subprocess.run(args + ["127.0.0.1", str(port), str(path)], check=False,
                          capture_output=True, text=True, errors="replace", env=dcmtk_env(),
                          timeout=60)


def findscu_worklist(port: int, out: Path, *keys: str) -> list[Dataset]:
    """DCMTK findscu -W against Orthanc; the answers, read back from the files -X writes."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    args = ["findscu", "-W", "-X", "-od", str(out), "-aet", DEMO_DEVICE_AE, "-aec", "TELEDERM"]
    for key in keys:
        args += ["-k", key]
    done = subprocess.run(args + ["127.0.0.1", str(port)], check=False, capture_output=True,
                          text=True, errors="replace", env=dcmtk_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


WORKLIST_KEYS = (
    "AccessionNumber", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate",
    "PatientSex", "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription",
    "RequestedProcedurePriority", "ReferringPhysicianName", "RequestingPhysician",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
)


def demo_jpeg() -> bytes:
    return demo_photo(False)
