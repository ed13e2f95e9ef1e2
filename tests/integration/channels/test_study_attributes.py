"""Every object of a case's study carries the same study attributes, whatever wrote it (upload,
dermoscopy upload, a device's C-STORE, the report's Encapsulated PDF), so Orthanc's QIDO-RS
answers the order's date and time whichever instance it reads; each upload of another body site
is a series of its own with its own number and description; every file names the connector as
its implementation; and dciodvfy finds no error in any of them."""

from __future__ import annotations

import shutil
import subprocess

import httpx

from tests.support.channels import demo_jpeg, jpeg_object, part10, storescu
from connector.dicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from tests.support.wait import wait_until

ORDERED_AT = "20261115103000"
STUDY_LEVEL = ("StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription",
               "ReferringPhysicianName", "AccessionNumber", "StudyID")
DCIODVFY = shutil.which("dciodvfy") or "/usr/bin/dciodvfy"


def with_order_time(text: str) -> str:
    """The demo order with ORC-9 (date/time of transaction) valued, with a time zone."""
    segments = text.split("\r")
    for k, segment in enumerate(segments):
        if segment.startswith("ORC|"):
            fields = segment.split("|")
            fields[9] = ORDERED_AT + "+0100"
            segments[k] = "|".join(fields)
    return "\r".join(segments)


def upload(channels, accession, data, **form):
    r = channels.api.post(f"/api/cases/{accession}/images",
                          files={"file": ("x.jpg", data, "image/jpeg")}, data=form)
    assert r.status_code == 201, r.text
    return r.json()["images"][0]["sop_instance_uid"]


def test_every_object_of_the_study_has_the_orders_study_attributes_and_its_own_series(
        channels, tmp_path):
    case = channels.open_case(patient_id="IPP-STUDY-1", edit=with_order_time)
    accession, study_uid = case["accession"], case["study_instance_uid"]
    jpeg = demo_jpeg()
    upload(channels, accession, jpeg, kind="photo", site="66643007", laterality="L")
    upload(channels, accession, jpeg + b"\0", kind="photo", site="66643007", laterality="L")
    upload(channels, accession, jpeg + b"\0\0", kind="photo", site="60496002", laterality="R",
           description="Pied droit, vue plantaire")
    upload(channels, accession, jpeg + b"\0\0\0", kind="dermoscopy", site="66643007",
           laterality="L", device="dermlite-dl5")
    device = tmp_path / "device.dcm"
    sent = jpeg_object(accession=accession, patient_id="IPP-STUDY-1", seed=5)
    device.write_bytes(part10(sent))
    assert storescu(device, channels.running.dicom_port).returncode == 0
    wait_until(lambda: channels.case(accession)["status"] == "READY", 60, "the case to be READY")
    r = channels.api.post(f"/api/cases/{accession}/report", json={
        "text": "Naevus banal.", "conduct": "no_visit",
        "specialist": {"id": "810001234567", "name": "LEROY^Claire"}})
    assert r.status_code in (200, 201), r.text
    instances = channels.wait_instances(study_uid, 6)

    archive = channels.services.archive
    tags = [archive._request("get", f"instances/{i['orthanc_id']}/tags",
                             params={"simplify": ""}).json() for i in instances]
    study = {tuple(t.get(k, "") for k in STUDY_LEVEL) for t in tags}
    assert study == {(study_uid, ORDERED_AT[:8], ORDERED_AT[8:], "Télé-expertise dermatologie",
                      "MARTIN^Jean", accession, accession)}

    series = {}
    for t in tags:
        series.setdefault(t["SeriesInstanceUID"], set()).add(
            (t["Modality"], t["SeriesNumber"], t.get("SeriesDescription", "")))
    # left back (2 photos), right foot, dermoscopy of the left back, the device's, the report
    assert len(series) == 5 and all(len(v) == 1 for v in series.values())
    numbers = [next(iter(v))[1] for v in series.values()]
    assert sorted(numbers, key=int) == ["1", "2", "3", "4", "5"]
    described = {next(iter(v))[0]: next(iter(v))[2] for v in series.values()
                 if next(iter(v))[0] in ("DMS",)}
    assert described["DMS"] == "Dermoscopie - Peau du dos gauche"
    assert {next(iter(v))[2] for v in series.values()} >= {
        "Photographies cliniques - Peau du dos gauche", "Pied droit, vue plantaire"}

    # QIDO-RS (Orthanc's DICOMweb plugin) answers the order's date and time for the study
    orthanc = channels.running.config.orthanc
    qido = httpx.get(f"{orthanc.url}/dicom-web/studies", params={"AccessionNumber": accession, "includefield": "00081030"},
                     auth=(orthanc.username, orthanc.password), timeout=30).json()
    assert len(qido) == 1
    assert qido[0]["00080020"]["Value"] == [ORDERED_AT[:8]]
    assert qido[0]["00080030"]["Value"] == [ORDERED_AT[8:]]
    assert qido[0]["00081030"]["Value"] == ["Télé-expertise dermatologie"]

    for k, inst in enumerate(instances):
        data = archive._request("get", f"instances/{inst['orthanc_id']}/file").content
        header = archive._request("get", f"instances/{inst['orthanc_id']}/header",
                                  params={"simplify": ""}).json()
        assert header["ImplementationClassUID"] == IMPLEMENTATION_CLASS_UID
        assert header["ImplementationVersionName"] == IMPLEMENTATION_VERSION_NAME
        if inst["SOPInstanceUID"] == sent.SOPInstanceUID:
            continue  # the device's object: its modules are the device's (Type 1 checked on receipt)
        path = tmp_path / f"{k}.dcm"
        path.write_bytes(data)
        done = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True,
                              errors="replace", timeout=60)
        errors = [line for line in (done.stdout + done.stderr).splitlines() if "Error" in line]
        assert errors == [], (inst["Modality"], errors)
