"""The case inside Orthanc: the plugin's context route, Explorer panel and worklist page.

A real connector (RunningConnector: HTTP API, HL7 listener, outbox worker) and its managed
Orthanc with the TeleDerm plugin loaded. The Orthanc is started first, as `telederm orthanc
start` would, so that the last test can stop the connector and see what Orthanc shows then.
A case is opened by the conformance order with a questionnaire, and a photo is uploaded and
archived; a second study, made by `telederm wrap` and stored straight into Orthanc, is no case.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from connector.entrypoints.cli import main as telederm
from connector.demo import local_config
from connector.hl7.client import send_message
from connector.runtime.server import RunningConnector, managed_orthanc
from tests.support.orthanc import throwaway
from tests.support.peers import RecordingPeer
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[3]
ORDER = REPO / "conformance" / "samples" / "orm_o01_nw_questionnaire.hl7"
QUESTION = "Naevus du dos modifié depuis l'été"
ARTIFACTS = REPO / "tests" / "artifacts" / "viewer"
CHROMIUM = "/usr/bin/chromium"
PAGE_TIMEOUT_MS = 30_000


@dataclass
class Env:
    running: RunningConnector
    orthanc: httpx.Client  # logged into the managed Orthanc
    orthanc_url: str
    credentials: dict
    accession: str
    case_study: str  # Orthanc id of the case's study
    other_study: str  # Orthanc id of a study that is no case


def _photo() -> bytes:
    img = Image.new("RGB", (96, 64), (220, 170, 140))
    ImageDraw.Draw(img).ellipse((30, 16, 62, 48), fill=(90, 55, 35))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def _orthanc_study(client: httpx.Client, study_uid: str) -> str | None:
    found = client.post("/tools/lookup", content=study_uid).json()
    return next((f["ID"] for f in found if f["Type"] == "Study"), None)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("case-in-orthanc")
    token = secrets.token_urlsafe(16)
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    config = throwaway(local_config(work, ehr_port=ehr.port, accounting_port=accounting.port,
                                    token=token, stable_age=1))
    orthanc = managed_orthanc(config, secrets.token_urlsafe(32))  # as `telederm orthanc start`
    orthanc.start()
    running = RunningConnector(config).start()
    api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = httpx.Client(base_url=orthanc.url, auth=(orthanc.username, orthanc.password),
                          timeout=30)
    try:
        ack = send_message("127.0.0.1", running.hl7_port, ORDER.read_text(encoding="utf-8"))
        assert ack.code == "AA", [e.text for e in ack.errors]
        (case,) = api.get("/api/cases", params={"placer_order_number": "CMD-2026-0044"}).json()
        r = api.post(f"/api/cases/{case['accession']}/images",
                     files={"file": ("back.jpg", _photo(), "image/jpeg")},
                     data={"site": "66643007", "laterality": "L"})
        assert r.status_code == 201, r.text
        case_study = wait_until(lambda: _orthanc_study(client, case["study_instance_uid"]), 60,
                                "the case's photo in Orthanc")
        photo = work / "other.jpg"
        photo.write_bytes(_photo())
        assert telederm(["wrap", str(photo), "--out", str(work / "other"),
                         "--accession", "NOT-A-CASE"]) == 0
        stored = client.post("/instances", content=(work / "other" / "other.dcm").read_bytes())
        assert stored.status_code == 200, stored.text
        yield Env(running, client, orthanc.url,
                  {"username": orthanc.username, "password": orthanc.password},
                  case["accession"], case_study, stored.json()["ParentStudy"])
    finally:
        api.close()
        client.close()
        running.stop()
        orthanc.stop()
        ehr.stop()
        accounting.stop()


@pytest.fixture(scope="module")
def browser(env):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium.new_context(http_credentials=env.credentials,
                                   viewport={"width": 1200, "height": 900})
        chromium.close()


def test_context_route_answers_the_case_of_a_study(env):
    r = env.orthanc.get(f"/telederm/studies/{env.case_study}")
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["accession"] == env.accession and c["orthanc_study_id"] == env.case_study
    assert c["question"] == QUESTION
    assert c["status"] in ("IMAGES_PENDING", "READY")
    assert c["triage"]["level"] and "red_flags:ASYMMETRY" in c["triage"]["red_flags"]
    duration = next(a for a in c["questionnaire"]
                    if a["label"]["fr"] == "Ancienneté de la lésion")
    assert [(a["code"], a["label"]["fr"]) for a in duration["answers"]] == [("M1_6",
                                                                             "1 à 6 mois")]
    assert c["consent"] == {"source": "OBX", "given_at": "20261115"}
    assert c["requester"]["id"] == "801234567897"
    # the shipped routing.toml: a deadline per priority, a pool with no member yet
    assert c["assigned_specialist"] is None and c["deadline"] > c["created_at"]
    (image,) = c["images"]
    assert image["kind"] == "photo" and image["laterality"] == "L"
    assert image["site"]["code"] == "66643007" and image["site"]["label"]["fr"]
    assert isinstance(image["quality"], list)
    assert c["answer_url"] == f"http://127.0.0.1:{env.running.http_port}/ui/cases/{env.accession}"
    assert "patient" not in c  # Orthanc holds the identity; the context adds none


def test_context_route_answers_404_for_a_study_that_is_no_case(env):
    r = env.orthanc.get(f"/telederm/studies/{env.other_study}")
    assert r.status_code == 404
    assert r.json()["error"] == "not-a-case"
    r = env.orthanc.get("/telederm/studies/no-such-study")
    assert r.status_code == 404 and r.json()["error"] == "unknown-study"


def test_explorer_js_carries_the_extension(env):
    # Orthanc 1.10 serves the plugins' extensions as /plugins/explorer.js, which
    # /app/explorer.html loads after its own /app/explorer.js.
    assert "../plugins/explorer.js" in env.orthanc.get("/app/explorer.html").text
    r = env.orthanc.get("/plugins/explorer.js")
    assert r.status_code == 200
    assert "telederm-panel" in r.text and "../telederm/studies/" in r.text
    assert "../telederm/worklist" in r.text


def test_worklist_lists_the_open_case_with_a_link_to_its_study(env, browser):
    page = browser.new_page()
    page.goto(f"{env.orthanc_url}/app/explorer.html")
    page.click("#telederm-worklist-link", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_url("**/telederm/worklist", timeout=PAGE_TIMEOUT_MS)
    link = page.locator(f"a[href='../app/explorer.html#study?uuid={env.case_study}']")
    assert link.inner_text() == env.accession
    assert QUESTION in page.locator("table.telederm-worklist").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "orthanc-worklist.png"), full_page=True)
    link.click()
    page.wait_for_selector("#telederm-question", timeout=PAGE_TIMEOUT_MS)
    page.close()


def test_study_page_shows_the_question_in_the_panel(env, browser):
    page = browser.new_page()
    page.goto(f"{env.orthanc_url}/app/explorer.html#study?uuid={env.case_study}")
    question = page.locator("#telederm-question span")
    question.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert question.inner_text() == QUESTION
    answer = page.locator("#telederm-answer")
    assert answer.get_attribute("href").endswith(f"/ui/cases/{env.accession}")
    questionnaire = page.locator("#telederm-questionnaire").inner_text()
    assert "Ancienneté de la lésion : 1 à 6 mois" in questionnaire
    assert "Plus grand diamètre : 8" in questionnaire  # a number: its value, no label
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / "orthanc-study-panel.png"
    page.screenshot(path=str(target), full_page=True)
    print(f"screenshot: {target}")
    page.close()


def test_panel_says_the_connector_is_unreachable_when_it_is_stopped(env, browser):
    env.running.stop()  # the connector only: this Orthanc was started apart (see the fixture)
    r = env.orthanc.get(f"/telederm/studies/{env.case_study}")
    assert r.status_code == 503
    assert r.json()["error"] == "connector-unreachable"
    assert env.orthanc.get("/system").status_code == 200  # Orthanc itself goes on
    page = browser.new_page()
    page.goto(f"{env.orthanc_url}/app/explorer.html#study?uuid={env.case_study}")
    status = page.locator("#telederm-status.telederm-error")
    status.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert "unreachable" in status.inner_text()
    page.screenshot(path=str(ARTIFACTS / "orthanc-study-panel-connector-down.png"),
                    full_page=True)
    page.close()
    worklist = env.orthanc.get("/telederm/worklist")
    assert worklist.status_code == 503 and "unreachable" in worklist.text
