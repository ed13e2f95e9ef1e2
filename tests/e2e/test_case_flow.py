"""One tele-expertise case end to end: order over MLLP, photos over HTTP, report, ORU and DFT
to real MLLP peers, with a real Orthanc, a real SQLite file and dciodvfy on what Orthanc holds."""

from __future__ import annotations

import base64
import io

import httpx
from PIL import Image, ImageFilter

from connector.demo import demo_order, demo_photo
from connector.hl7.client import send_message
from tests.support.dciodvfy import dciodvfy_errors
from tests.support.wait import wait_until

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
VL_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


def send(running, text: str):
    return send_message("127.0.0.1", running.hl7_port, text)


def test_case_runs_end_to_end_on_real_orthanc_and_sockets(env):
    running, api, ehr, accounting, work = env

    ack = send(running, demo_order("E2E-1", "PL-E2E-1"))
    assert (ack.code, ack.control_id_acked) == ("AA", "E2E-1")
    cases = api.get("/api/cases", params={"placer_order_number": "PL-E2E-1"}).json()
    assert len(cases) == 1 and cases[0]["status"] == "OPEN"
    case = cases[0]
    accession, study_uid = case["accession"], case["study_instance_uid"]
    assert case["patient"]["name"] == "DUPONT^Hélène" and case["priority"] == "routine"

    photos = [demo_photo(False), demo_photo(True)]
    for data in photos:
        r = api.post(f"/api/cases/{accession}/images", files={"file": ("p.jpg", data, "image/jpeg")},
                     data={"site": "66643007", "laterality": "U"})
        assert r.status_code == 201, r.text
    wait_until(lambda: api.get(f"/api/cases/{accession}").json()["status"] == "READY", 60,
               "the case to be READY")

    r = api.post(f"/api/cases/{accession}/report", json={
        "text": "Naevus bénin.\nSurveillance annuelle.", "conduct": "no_visit",
        "specialist": {"id": "810001234567", "name": "LEROY^Claire"}})
    assert r.status_code == 201, r.text
    wait_until(lambda: ehr.messages and accounting.messages, 60, "ORU and DFT")
    wait_until(lambda: api.get("/api/stats").json()["outbox"]["pending"] == 0, 60, "outbox drained")
    assert api.get(f"/api/cases/{accession}").json()["status"] == "ANSWERED"

    # What Orthanc holds: two photos passed through as JPEG baseline, one Encapsulated PDF.
    instances = running.services.archive.study_instances(study_uid)
    assert len(instances) == 3
    assert sorted(i["SOPClassUID"] for i in instances) == sorted([VL_PHOTO, VL_PHOTO, ENCAPSULATED_PDF])
    assert {i["AccessionNumber"] for i in instances} == {accession}
    config = running.services.config
    for inst in instances:
        blob = httpx.get(f"{config.orthanc.url}/instances/{inst['orthanc_id']}/file",
                         auth=(config.orthanc.username, config.orthanc.password)
                         ).raise_for_status().content
        path = work / f"{inst['SOPInstanceUID']}.dcm"
        path.write_bytes(blob)
        assert dciodvfy_errors(path) == [], inst["SOPClassUID"]
        if inst["SOPClassUID"] == VL_PHOTO:
            assert inst["TransferSyntaxUID"] == JPEG_BASELINE
            assert inst["Modality"] == "XC"
            assert b"Exif" not in blob and b"SERIAL-0042" not in blob and b"DemoPhone" not in blob
        else:
            assert inst["Modality"] == "DOC"

    # The requester's EHR got one ORU^R01 with the text lines and the PDF, final.
    (oru,) = ehr.parsed()
    assert str(oru.segment("MSH")[9]) == "ORU^R01^ORU_R01"
    assert str(oru.segment("OBR")[3]) == accession
    obx = list(oru.segments("OBX"))
    assert {str(s[11]) for s in obx} == {"F"}
    texts = [str(s[5]) for s in obx if str(s[2]) == "TX"]
    assert texts == ["Naevus bénin.", "Surveillance annuelle."]
    (ed,) = [s for s in obx if str(s[2]) == "ED"]
    assert base64.b64decode(str(ed[5][0][4])).startswith(b"%PDF")

    # Accounting got one DFT^P03: TE2 for the dermatologist, RQD for the requester.
    (dft,) = accounting.parsed()
    assert str(dft.segment("MSH")[9]) == "DFT^P03^DFT_P03"
    ft1 = list(dft.segments("FT1"))
    assert [str(s[25][0][0]) for s in ft1] == ["TE2", "RQD"]
    assert [str(s[6]) for s in ft1] == ["CG", "CG"]
    assert [str(s[23]) for s in ft1] == [accession, accession]
    assert str(ft1[0][20][0][0]) == "810001234567"

    # Each message delivered is in the audit trail: type, control id and destination only.
    def sent():
        with running.services.reading() as uow:
            return [row["detail"] for row in uow.audit.listing(accession=accession)
                    if row["action"] == "message.sent"]
    wait_until(lambda: {d["type"] for d in sent()} >= {"ORU^R01", "DFT^P03"},
               30, "the ORU and the DFT in the audit trail")
    assert {(d["type"], d["destination"]) for d in sent()} >= {
        ("ORU^R01", "ehr"), ("DFT^P03", "accounting")}
    assert all(d["control_id"] for d in sent())


def test_same_order_twice_opens_one_case_and_gets_the_same_ack(env):
    running, api, *_ = env
    first = send(running, demo_order("DUP-1", "PL-DUP-1"))
    again = send(running, demo_order("DUP-1", "PL-DUP-1"))
    assert first.code == again.code == "AA"
    assert len(api.get("/api/cases", params={"placer_order_number": "PL-DUP-1"}).json()) == 1
    # Same placer number under a new MSH-10: refused as a duplicate key, still one case.
    other = send(running, demo_order("DUP-2", "PL-DUP-1"))
    assert other.code == "AE" and other.errors[0].hl7_code == "205"
    assert len(api.get("/api/cases", params={"placer_order_number": "PL-DUP-1"}).json()) == 1


def test_malformed_order_gets_ae_with_err_and_the_listener_keeps_serving(env):
    running, api, *_ = env
    bad = demo_order("BAD-1", "PL-BAD-1").replace(
        "PID|1||IPP123456^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI||", "PID|1||||")
    ack = send(running, bad)
    assert ack.code == "AE"
    (err,) = ack.errors
    assert (err.location, err.hl7_code, err.severity) == ("PID^1^3", "101", "E")
    assert api.get("/api/cases", params={"placer_order_number": "PL-BAD-1"}).json() == []
    assert send(running, demo_order("GOOD-1", "PL-GOOD-1")).code == "AA"


def test_unknown_case_and_bad_upload_get_problem_json(env):
    running, api, *_ = env
    r = api.post("/api/cases/NOPE/images", files={"file": ("p.jpg", demo_photo(False), "image/jpeg")})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    send(running, demo_order("IMG-1", "PL-IMG-1"))
    accession = api.get("/api/cases", params={"placer_order_number": "PL-IMG-1"}).json()[0]["accession"]
    r = api.post(f"/api/cases/{accession}/images", files={"file": ("x.jpg", b"not a jpeg", "image/jpeg")})
    assert r.status_code == 415 and r.json()["type"].endswith("/unsupported-type")
    r = httpx.get(f"http://127.0.0.1:{running.http_port}/api/cases")
    assert r.status_code == 401


def test_dermoscopy_upload_lands_as_dms_and_a_blurred_photo_is_flagged(env):
    running, api, *_ = env
    send(running, demo_order("DMS-1", "PL-DMS-1"))
    case = api.get("/api/cases", params={"placer_order_number": "PL-DMS-1"}).json()[0]
    r = api.post(f"/api/cases/{case['accession']}/images",
                 files={"file": ("d.jpg", demo_photo(False), "image/jpeg")},
                 data={"kind": "dermoscopy", "device": "dermlite-dl5", "tracking_id": "dos-1"})
    assert r.status_code == 201, r.text
    out = io.BytesIO()
    Image.open(io.BytesIO(demo_photo(False))).filter(ImageFilter.GaussianBlur(8)).save(out, "JPEG")
    r = api.post(f"/api/cases/{case['accession']}/images",
                 files={"file": ("blurred.jpg", out.getvalue(), "image/jpeg")})
    assert r.status_code == 201 and "blurred" in r.json()["images"][0]["quality"]
    wait_until(lambda: all(i["archived"] for i in api.get(f"/api/cases/{case['accession']}").json()["images"]),
               60, "both images archived")
    modalities = {i["Modality"] for i in running.services.archive.study_instances(case["study_instance_uid"])}
    assert modalities == {"DMS", "XC"}
    detail = api.get(f"/api/cases/{case['accession']}").json()
    assert [i["quality"] for i in detail["images"] if i["kind"] == "photo"] == [["blurred"]]


def test_dermatologist_declines_and_operator_cancels_with_a_reason_over_the_api(env):
    running, api, _, _, _ = env
    accessions = []
    for n in (1, 2):
        assert send(running, demo_order(f"REF-{n}", f"PL-REF-{n}")).code == "AA"
        [case] = api.get("/api/cases", params={"placer_order_number": f"PL-REF-{n}"}).json()
        accessions.append(case["accession"])

    r = api.post(f"/api/cases/{accessions[0]}/decline",
                 json={"reason": "Photos floues, merci de reprendre"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "REJECTED"
    assert api.get(f"/api/cases/{accessions[0]}").json()["status"] == "REJECTED"
    again = api.post(f"/api/cases/{accessions[0]}/decline", json={"reason": "again"})
    assert again.status_code == 409 and again.json()["type"].endswith("/state-conflict")
    assert api.post(f"/api/cases/{accessions[1]}/cancel", json={"reason": ""}).status_code == 422

    r = api.post(f"/api/cases/{accessions[1]}/cancel", json={"reason": "Demande en double"})
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
    assert api.post("/api/cases/TD99999999/decline", json={"reason": "x"}).status_code == 404


def test_the_configuration_a_start_runs_with_is_in_the_audit_trail(env):
    running = env[0]
    with running.services.reading() as uow:
        loaded = [row for row in uow.audit.listing() if row["action"] == "config.loaded"]
    assert loaded and len(loaded[0]["detail"]["sha256"]) == 64
    assert loaded[0]["detail"]["mappings"] == str(running.config.mappings_dir)
    assert running.config.orthanc.password not in str(loaded)
