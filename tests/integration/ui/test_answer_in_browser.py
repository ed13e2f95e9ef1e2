"""A dermatologist answers a case in the /ui/ pages, in headless Chromium.

A real connector (RunningConnector: HTTP API and pages, HL7 listener, outbox worker) with its
managed Orthanc, and the requester's EHR as a real MLLP peer (RecordingPeer). The conformance
order with a questionnaire opens the case; a photo with a known pattern is uploaded and
archived. Two specialists are made with `telederm users add`. The first logs in, sees the
case in the worklist, opens it (question, questionnaire, thumbnail drawn by Orthanc and
served by the connector) and answers; the EHR receives the ORU signed with that
specialist's own id. The second had the same form open: their answer gets the stale-form
message and no second report exists.

Screenshots of the worklist and the case page go to tests/artifacts/ui/ (git-ignored).
"""

from __future__ import annotations

import base64
import io
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from connector.demo import local_config
from connector.entrypoints.cli import main as telederm
from connector.hl7.client import send_message
from connector.runtime.server import RunningConnector
from tests.support.orthanc import throwaway
from tests.support.peers import RecordingPeer
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[3]
ORDER = REPO / "conformance" / "samples" / "orm_o01_nw_questionnaire.hl7"
QUESTION = "Naevus du dos modifié depuis l'été"
ARTIFACTS = REPO / "tests" / "artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download is never used
PAGE_TIMEOUT_MS = 30_000
PASSWORD = "a long enough passphrase"
FIRST = ("jdupont", "DUPONT^Jean", "810001234567")
SECOND = ("amoreau", "MOREAU^Alice", "810007654321")
CELL, COLOUR_TOLERANCE, MEAN_TOLERANCE = 8, 40, 8  # as tests/integration/viewer


@dataclass
class Env:
    base: str  # the connector's http://127.0.0.1:PORT
    api: httpx.Client  # admin bearer token
    orthanc: httpx.Client  # logged into the managed Orthanc
    orthanc_password: str
    ehr: RecordingPeer
    accession: str
    photo: Image.Image  # the upright original of the case's one photo
    services: object  # the running connector's (to read its audit trail)


def _pattern() -> Image.Image:
    """Four colours no two alike and a dark lesion top left: any turn or swap shows."""
    img = Image.new("RGB", (160, 128))
    draw = ImageDraw.Draw(img)
    for box, colour in zip([(0, 0, 79, 63), (80, 0, 159, 63), (0, 64, 79, 127),
                            (80, 64, 159, 127)],
                           [(230, 60, 50), (60, 200, 70), (50, 80, 220), (240, 220, 60)]):
        draw.rectangle(box, fill=colour)
    draw.ellipse((24, 16, 56, 48), fill=(90, 50, 30))
    return img


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=95)
    return out.getvalue()


def _add_user(config_file: Path, login: str, name: str, rpps: str) -> None:
    stdin = sys.stdin
    sys.stdin = io.StringIO(PASSWORD + "\n")
    try:
        assert telederm(["users", "add", login, "--role", "specialist", "--name", name,
                         "--id", rpps, "--password-stdin", "--config", str(config_file)]) == 0
    finally:
        sys.stdin = stdin


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("ui")
    token = secrets.token_urlsafe(16)
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    config = throwaway(local_config(work, ehr_port=ehr.port, accounting_port=accounting.port,
                                    token=token, stable_age=1))
    running = RunningConnector(config).start()
    base = f"http://127.0.0.1:{running.http_port}"
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    orthanc = httpx.Client(base_url=config.orthanc.url,
                           auth=(config.orthanc.username, config.orthanc.password), timeout=30)
    try:
        config_file = work / "telederm.toml"
        config_file.write_text(f'data_dir = "{work}"\n[images]\nexample_devices = true\n',
                               encoding="utf-8")  # the same store and mappings
        for user in (FIRST, SECOND):
            _add_user(config_file, *user)
        ack = send_message("127.0.0.1", running.hl7_port, ORDER.read_text(encoding="utf-8"))
        assert ack.code == "AA", [e.text for e in ack.errors]
        (case,) = api.get("/api/cases", params={"placer_order_number": "CMD-2026-0044"}).json()
        photo = _pattern()
        r = api.post(f"/api/cases/{case['accession']}/images",
                     files={"file": ("back.jpg", _jpeg(photo), "image/jpeg")},
                     data={"site": "66643007", "laterality": "L"})
        assert r.status_code == 201, r.text
        wait_until(lambda: all(i["archived"] for i in
                             api.get(f"/api/cases/{case['accession']}").json()["images"]),
                 60, "the photo archived in Orthanc")
        yield Env(base, api, orthanc, config.orthanc.password, ehr, case["accession"], photo,
                  running.services)
    finally:
        api.close()
        orthanc.close()
        running.stop()
        ehr.stop()
        accounting.stop()


@pytest.fixture(scope="module")
def chromium(env):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def _logged_in_page(chromium, env, login: str):
    """A page of a browser context of its own (own cookies), logged in as `login`."""
    context = chromium.new_context(viewport={"width": 1200, "height": 900}, locale="fr-FR")
    page = context.new_page()
    page.goto(f"{env.base}/ui/")
    page.wait_for_url("**/ui/login?next=/ui/", timeout=PAGE_TIMEOUT_MS)
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{env.base}/ui/", timeout=PAGE_TIMEOUT_MS)
    return page


def _differences(got: Image.Image, want: Image.Image) -> tuple[int, float]:
    """(largest, mean) per-channel difference on a grid of CELL x CELL means."""
    grid = (want.width // CELL, want.height // CELL)
    a = got.convert("RGB").resize(grid, Image.Resampling.BOX)
    b = want.convert("RGB").resize(grid, Image.Resampling.BOX)
    diff = ImageChops.difference(a, b)
    return max(high for _, high in diff.getextrema()), sum(ImageStat.Stat(diff).mean) / 3


def test_specialist_answers_a_case_and_a_second_one_gets_the_stale_form_message(env, chromium):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    first = _logged_in_page(chromium, env, FIRST[0])
    row = first.locator(f"#worklist tr[data-accession='{env.accession}']")
    assert QUESTION in row.inner_text() and "LEFÈVRE Hélène" in row.inner_text()
    first.screenshot(path=str(ARTIFACTS / "worklist.png"), full_page=True)

    second = _logged_in_page(chromium, env, SECOND[0])  # opens the same form first
    second.goto(f"{env.base}/ui/cases/{env.accession}")
    second.wait_for_selector("#answer-form", timeout=PAGE_TIMEOUT_MS)

    row.locator("a").click()
    first.wait_for_url(f"**/ui/cases/{env.accession}", timeout=PAGE_TIMEOUT_MS)
    assert first.locator("#question").inner_text() == QUESTION
    questionnaire = first.locator("#questionnaire").inner_text()
    assert "Ancienneté de la lésion" in questionnaire and "1 à 6 mois" in questionnaire
    assert "15/11/2026" in first.locator("#consent").inner_text()
    assert "MARTIN François" in first.locator("#requester").inner_text()
    viewer = first.locator("#viewer-link").get_attribute("href")
    prefix = f"{str(env.orthanc.base_url).rstrip('/')}/app/explorer.html#study?uuid="
    assert viewer.startswith(prefix), viewer
    study = env.orthanc.get(f"/studies/{viewer[len(prefix):]}").json()  # the case's study
    assert study["MainDicomTags"]["AccessionNumber"] == env.accession
    page_text = first.content()
    assert env.orthanc_password not in page_text  # Orthanc's credentials stay server-side
    thumb = first.locator("figure.photo img")
    thumb.wait_for(timeout=PAGE_TIMEOUT_MS)
    first.wait_for_function("img => img.complete && img.naturalWidth > 0",
                            arg=thumb.element_handle(), timeout=PAGE_TIMEOUT_MS)
    data_url = thumb.evaluate("""img => { const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL('image/png'); }""")
    drawn = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
    assert drawn.height == 240 and drawn.width == 300  # Orthanc scaled it, same aspect
    largest, mean = _differences(drawn.resize(env.photo.size, Image.Resampling.BILINEAR),
                                 env.photo)
    assert largest <= COLOUR_TOLERANCE and mean <= MEAN_TOLERANCE, (largest, mean)
    with env.services.reading() as uow:
        reads = [(row["actor"], row["detail"]["what"]) for row in
                 uow.audit.listing(accession=env.accession) if row["action"] == "case.read"
                 and row["detail"]["via"] == "ui"]
    actor = f"specialist:{FIRST[0]}"
    assert (actor, "case") in reads and (actor, "image 1") in reads, reads
    first.screenshot(path=str(ARTIFACTS / "case.png"), full_page=True)
    print(f"screenshots: {ARTIFACTS / 'worklist.png'}, {ARTIFACTS / 'case.png'}")

    # the shipped routing.toml's pool lists no members: the case waits there, anyone takes it
    assert "personne" in first.locator("#assignee").inner_text()
    first.click("#take")
    first.wait_for_url("**/ui/cases/*?done=taken", timeout=PAGE_TIMEOUT_MS)
    assert "Demande prise" in first.locator("#notice").inner_text()
    assert first.locator("#assignee").inner_text() == "DUPONT Jean (vous)"

    first.fill("#text", "Naevus atypique : exérèse conseillée.")
    first.select_option("#conduct", "biopsy")
    first.click("#sign-send")
    first.wait_for_url("**/ui/cases/*?done=answered", timeout=PAGE_TIMEOUT_MS)
    assert "Réponse signée et envoyée" in first.locator("#notice").inner_text()
    assert first.locator("#case-status").inner_text() == "Répondue"

    oru = wait_until(lambda: next((m for m in env.ehr.messages if "ORU^R01" in m
                                 and env.accession in m), None), 60, "the ORU at the EHR")
    assert "Naevus atypique" in oru
    assert f"{FIRST[2]}&DUPONT&Jean" in oru  # OBR-32: the logged-in specialist's own id, name

    second.fill("#text", "Lésion bénigne.")
    second.click("#sign-send")
    second.wait_for_selector("#message", timeout=PAGE_TIMEOUT_MS)
    assert "a changé depuis l’ouverture du formulaire" in second.locator("#message").inner_text()
    assert "Répondue" in second.locator("#message").inner_text()
    case = env.api.get(f"/api/cases/{env.accession}").json()
    assert [r["specialist"] for r in case["reports"]] == [FIRST[2]]
    assert sum("ORU^R01" in m and env.accession in m for m in env.ehr.messages) == 1
