"""Corrections end to end (issue 14 item 3), on real Orthanc and MLLP peers, over the API and
over HL7 (ORU OBX-11 C, MDM^T10): the requester's EHR receives the corrected ORU (OBX-11 C)
with a new PAdES-signed PDF that pyhanko's validator finds intact (and not after one byte
changes), Orthanc holds a second Encapsulated PDF that references the one it replaces and
passes dciodvfy, and nothing is charged again."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from pydicom import dcmread
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from connector.demo import demo_order, demo_photo
from connector.hl7.client import send_message
from tests.support.dciodvfy import dciodvfy_errors
from tests.support.inbound import mdm, order, oru
from tests.support.wait import wait_until

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
SPECIALIST = {"id": "810001234567", "name": "LEROY^Claire"}


def _ready_case(running, api, placer: str) -> dict:
    ack = send_message("127.0.0.1", running.hl7_port, demo_order(f"O-{placer}", placer))
    assert ack.code == "AA"
    [case] = api.get("/api/cases", params={"placer_order_number": placer}).json()
    r = api.post(f"/api/cases/{case['accession']}/images",
                 files={"file": ("p.jpg", demo_photo(False), "image/jpeg")})
    assert r.status_code == 201, r.text
    wait_until(lambda: api.get(f"/api/cases/{case['accession']}").json()["status"] == "READY",
               60, "the case to be READY")
    return case


def _drained(api):
    wait_until(lambda: api.get("/api/stats").json()["outbox"]["pending"] == 0, 60,
               "outbox drained")


def _pades(pdf: bytes, cert):
    (sig,) = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
    return validate_pdf_signature(sig, ValidationContext(trust_roots=[cert],
                                                         allow_fetching=False))


def test_correction_over_the_api_reaches_ehr_and_orthanc_signed_and_not_billed(env):
    running, api, ehr, accounting, work = env
    case = _ready_case(running, api, "PL-COR-1")
    accession, study_uid = case["accession"], case["study_instance_uid"]
    r = api.post(f"/api/cases/{accession}/report", json={
        "text": "Naevus bénin.", "conduct": "no_visit", "specialist": SPECIALIST})
    assert r.status_code == 201, r.text
    _drained(api)
    assert len(accounting.messages) == 1

    r = api.post(f"/api/cases/{accession}/report/correct", json={
        "text": "Naevus dysplasique.\nExérèse conseillée.", "conduct": "no_visit",
        "specialist": SPECIALIST, "reason": "Relecture des images dermoscopiques"})
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["version"], got["status"], got["dft_control_id"]) == (2, "AMENDED", None)
    wait_until(lambda: len(ehr.messages) == 2, 60, "the corrected ORU")
    _drained(api)

    # The EHR: final then corrected, the corrected one with its own signed PDF.
    first, corrected = ehr.parsed()
    obx = list(corrected.segments("OBX"))
    assert {str(s[11]) for s in obx} == {"C"}
    assert [str(s[5]) for s in obx if str(s[2]) == "TX"] == ["Naevus dysplasique.",
                                                            "Exérèse conseillée."]
    (ed,) = [s for s in obx if str(s[2]) == "ED"]
    pdf = base64.b64decode(str(ed[5][0][4]))
    cert = load_cert_from_pemder(str(running.services.config.reports.signing_cert))
    status = _pades(pdf, cert)
    assert status.intact and status.valid and status.trusted and status.bottom_line
    i = len(pdf) // 4  # in the rendered document, which the signature covers
    broken = _pades(pdf[:i] + bytes([pdf[i] ^ 0x01]) + pdf[i + 1:], cert)
    assert not broken.intact and not broken.bottom_line

    pdfs = _archived_reports(running, study_uid, work)
    stored = bytes(pdfs[2].EncapsulatedDocument)[:int(pdfs[2].EncapsulatedDocumentLength)]
    assert stored == pdf  # the archive holds the very PDF the EHR got

    # No new charge: still the one DFT of the final report.
    assert len(accounting.messages) == 1


def _archived_reports(running, study_uid: str, work) -> dict:
    """The study's Encapsulated PDFs in Orthanc by version, each passing dciodvfy; version 2
    names version 1 as the report it replaces."""
    config = running.services.config
    pdfs = {}
    for inst in running.services.archive.study_instances(study_uid):
        if inst["SOPClassUID"] != ENCAPSULATED_PDF:
            continue
        blob = httpx.get(f"{config.orthanc.url}/instances/{inst['orthanc_id']}/file",
                         auth=(config.orthanc.username, config.orthanc.password)
                         ).raise_for_status().content
        path = work / f"{inst['SOPInstanceUID']}.dcm"
        path.write_bytes(blob)
        assert dciodvfy_errors(path) == []
        ds = dcmread(path)
        pdfs[int(ds.InstanceNumber)] = ds
    assert sorted(pdfs) == [1, 2]
    (ref,) = pdfs[2].ReferencedInstanceSequence
    assert ref.ReferencedSOPInstanceUID == pdfs[1].SOPInstanceUID
    assert ref.PurposeOfReferenceCodeSequence[0].CodeValue == "121360"
    assert "ReferencedInstanceSequence" not in pdfs[1]
    return pdfs


@pytest.mark.parametrize("way", ["ORU^R01 OBX-11 C", "MDM^T10"])
def test_correction_over_hl7_reaches_ehr_and_orthanc_signed_and_not_billed(env, way):
    running, api, ehr, accounting, work = env
    placer = f"PL-COR-{way[:3]}"
    assert send_message("127.0.0.1", running.hl7_port,
                        order(placer).decode()).code == "AA"
    [case] = api.get("/api/cases", params={"placer_order_number": placer}).json()
    accession = case["accession"]
    r = api.post(f"/api/cases/{accession}/images",
                 files={"file": ("p.jpg", demo_photo(False), "image/jpeg")})
    assert r.status_code == 201, r.text
    wait_until(lambda: api.get(f"/api/cases/{accession}").json()["status"] == "READY", 60,
               "the case to be READY")
    before_ehr, before_dft = len(ehr.messages), len(accounting.messages)
    if way == "MDM^T10":
        final, correction = mdm("T02", accession=accession), mdm(
            "T10", accession=accession, text="Naevus dysplasique.")
    else:
        final = oru(accession=accession)
        correction = oru(accession=accession, status="C", text=("Naevus dysplasique.",))
    assert send_message("127.0.0.1", running.hl7_port, final.decode()).code == "AA"
    assert send_message("127.0.0.1", running.hl7_port, correction.decode()).code == "AA"
    wait_until(lambda: len(ehr.messages) >= before_ehr + 2, 60, "the two ORUs")
    _drained(api)
    assert api.get(f"/api/cases/{accession}").json()["status"] == "AMENDED"

    corrected = ehr.parsed()[-1]
    assert str(corrected.segment("OBR")[3]) == accession
    obx = list(corrected.segments("OBX"))
    assert {str(s[11]) for s in obx} == {"C"}
    (ed,) = [s for s in obx if str(s[2]) == "ED"]
    pdf = base64.b64decode(str(ed[5][0][4]))
    cert = load_cert_from_pemder(str(running.services.config.reports.signing_cert))
    assert _pades(pdf, cert).bottom_line
    pdfs = _archived_reports(running, case["study_instance_uid"], work)
    assert bytes(pdfs[2].EncapsulatedDocument)[:len(pdf)] == pdf
    assert len(accounting.messages) == before_dft + 1  # the final report's DFT only


def test_correction_refused_before_an_answer_and_without_a_reason(env):
    running, api, *_ = env
    case = _ready_case(running, api, "PL-COR-2")
    body = {"text": "x", "conduct": "no_visit", "specialist": SPECIALIST, "reason": "relecture"}
    r = api.post(f"/api/cases/{case['accession']}/report/correct", json=body)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem")
    assert "no answer to correct" in r.text
    r = api.post(f"/api/cases/{case['accession']}/report/correct",
                 json={k: v for k, v in body.items() if k != "reason"})
    assert r.status_code == 422
    assert api.post("/api/cases/TD99999999/report/correct", json=body).status_code == 404
