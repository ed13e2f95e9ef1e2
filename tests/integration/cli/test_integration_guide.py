"""docs/integration-guide.md followed step by step, so the guide cannot drift from the code.

The configuration is the guide's own: every ```toml block of the page (not the ones marked
`toml alternative`) put together, with the documented addresses of the hospital systems
pointed at stand-ins running here (the EHR, the reporting system and accounting as real MLLP
peers, the PACS as DCMTK's storescp) and the ports of this machine given through the
environment, as a site would override them. On a fresh data folder: `config check`, `serve`,
`doctor`, then the guide's sample order with `telederm hl7 send`, a photo uploaded with the
guide's requester token, the guide's report from the reporting system, and the ORU, the DFT
and the forwarded study arriving where the guide says.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from connector.config import load_config
from connector.demo import demo_photo
from connector.ports import free_port
from connector.runtime.server import managed_orthanc
from tests.support.cli import clean_env, telederm
from tests.support.peers import RecordingPeer
from tests.support.storescp import StoreScp
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "integration-guide.md"
START_DEADLINE = 120
CASE_DEADLINE = 90
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.M | re.S)


def blocks(info: str) -> list[str]:
    """The guide's fenced blocks whose info string is exactly `info`, in page order."""
    return [body for kind, body in FENCE.findall(GUIDE.read_text(encoding="utf-8"))
            if kind.strip() == info]


def guide_config(addresses: dict[str, str]) -> str:
    """The guide's configuration with each documented address replaced by a stand-in's; every
    documented address must be there (a new system in the guide needs a stand-in here)."""
    text = "\n".join(blocks("toml"))
    for documented, here in addresses.items():
        assert documented in text, f"the guide no longer configures {documented}"
        text = text.replace(documented, here)
    return text


def guide_command(start: str) -> list[str]:
    """The words of the guide's shell command that starts with `start`."""
    for body in blocks("sh"):
        for line in body.splitlines():
            if line.startswith(start):
                return line.split("#", 1)[0].split()
    raise AssertionError(f"the guide has no command starting {start!r}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    work = tmp_path_factory.mktemp("guide")
    ehr, ris, accounting = (RecordingPeer(n).start() for n in ("ehr", "ris", "accounting"))
    pacs = StoreScp(work / "pacs", "PACS_CHU").start()
    ports: list[int] = []
    for _ in range(4):
        ports.append(free_port(tuple(ports + [ehr.port, ris.port, accounting.port, pacs.port])))
    http_port, hl7_port, orthanc_port, dicom_port = ports
    config_path = work / "telederm.toml"
    config_path.write_text(guide_config({
        "dpi.chu.local:6661": f"127.0.0.1:{ehr.port}",
        "ris.cabinet.local:6663": f"127.0.0.1:{ris.port}",
        "compta.chu.local:6662": f"127.0.0.1:{accounting.port}",
        'host = "pacs.chu.local"\nport = 104': f'host = "127.0.0.1"\nport = {pacs.port}',
    }), encoding="utf-8")
    token = secrets.token_urlsafe(16)
    env = clean_env(
        TELEDERM_DATA_DIR=str(work / "data"), TELEDERM_HTTP_LISTEN=f"127.0.0.1:{http_port}",
        TELEDERM_HL7_LISTEN=f"127.0.0.1:{hl7_port}",
        TELEDERM_ORTHANC_URL=f"http://127.0.0.1:{orthanc_port}",
        TELEDERM_ORTHANC_DICOM_PORT=str(dicom_port), TELEDERM_ORTHANC_STABLE_AGE="1",
        TELEDERM_ORTHANC_PASSWORD=secrets.token_urlsafe(12),
        TELEDERM_BOOTSTRAP_TOKEN=secrets.token_urlsafe(16),
        TELEDERM_TOKEN_EHR_PORTAL=token, TCP_NODELAY="1")
    checked = telederm("config", "check", "--config", config_path, env=env)
    out, err = open(work / "serve.out", "wb"), open(work / "serve.err", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "connector.entrypoints.cli", "serve",
                             "--config", str(config_path)], stdout=out, stderr=err, cwd=work,
                            env=env)
    api = httpx.Client(base_url=f"http://127.0.0.1:{http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def logs() -> str:
        return (work / "serve.out").read_text() + (work / "serve.err").read_text()

    def up() -> bool:
        try:
            return api.get("/api/health").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(lambda: proc.poll() is not None or up(), START_DEADLINE, "serve to answer")
        assert proc.poll() is None, logs()
        yield {"work": work, "config": config_path, "env": env, "api": api, "logs": logs,
               "hl7": f"127.0.0.1:{hl7_port}", "ehr": ehr, "ris": ris,
               "accounting": accounting, "pacs": pacs, "checked": checked}
    finally:
        api.close()
        proc.terminate()
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
        err.close()
        managed_orthanc(load_config(config_path, environ=env)).stop()
        for peer in (ehr, ris, accounting):
            peer.stop()
        pacs.stop()


def types(peer: RecordingPeer) -> list[str]:
    return [m.split("\r", 1)[0].split("|")[8] for m in peer.messages]


@pytest.fixture(scope="module")
def case_through(site):
    """Steps 1 to 4 of the guide with one case: order, photo, the reporting system's answer."""
    api, facts = site["api"], {}
    words = guide_command("telederm hl7 send")
    order = ROOT / words[3]
    sent = telederm("hl7", "send", order, "--to", site["hl7"], env=site["env"])
    assert sent.returncode == 0, sent.stdout + sent.stderr
    facts["order_ack"] = sent.stdout
    (case,) = api.get("/api/cases", params={"placer_order_number": "CMD-2026-0042"}).json()
    accession = case["accession"]
    r = api.post(f"/api/cases/{accession}/images",
                 files={"file": ("lesion.jpg", demo_photo(False), "image/jpeg")},
                 data={"kind": "photo", "site": "66643007", "laterality": "L"})
    assert r.status_code == 201, r.text
    wait_until(lambda: api.get(f"/api/cases/{accession}").json()["status"] == "READY",
               CASE_DEADLINE, "the case to be READY")
    wait_until(lambda: "ORM^O01^ORM_O01" in types(site["ris"]), CASE_DEADLINE,
               "the order at the reporting system")
    (report_text,) = blocks("hl7")
    report = site["work"] / "report.hl7"
    report.write_text(report_text, encoding="utf-8")
    answered = telederm("hl7", "send", report, "--to", site["hl7"], env=site["env"])
    assert answered.returncode == 0, answered.stdout + answered.stderr
    facts["report_ack"] = answered.stdout
    try:
        wait_until(lambda: "ORU^R01^ORU_R01" in types(site["ehr"])
                   and site["accounting"].messages and len(site["pacs"].arrivals()) >= 2,
                   CASE_DEADLINE, "the ORU at the EHR, the DFT at accounting, the study at "
                   "the PACS")
    except TimeoutError:
        queue = telederm("queue", "list", "--config", site["config"], env=site["env"])
        pytest.fail(f"{types(site['ehr'])} {types(site['accounting'])} "
                    f"{site['pacs'].arrivals()}\n{queue.stdout}\n{site['logs']()[-3000:]}")
    facts["case"] = api.get(f"/api/cases/{accession}").json()
    return facts


def test_the_guides_configuration_passes_config_check(site):
    assert site["checked"].returncode == 0, site["checked"].stderr
    assert "config ok" in site["checked"].stdout


def test_doctor_finds_every_system_of_the_guide_reachable(site):
    result = telederm("doctor", "--config", site["config"], env=site["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("destination ehr", "destination ris", "destination accounting",
                 "forward pacs", "orthanc"):
        assert any(line.startswith(f"ok      {name}: ") for line in result.stdout.splitlines()), \
            (name, result.stdout)


def test_the_guides_sample_order_opens_a_case(case_through):
    assert " AA MSG-20261115-0001" in case_through["order_ack"]


def test_the_reporting_system_gets_the_order_and_its_report_is_accepted(site, case_through):
    (nw,) = [m for m in site["ris"].messages if "|ORM^O01^ORM_O01|" in m]
    assert "\rORC|NW|" in nw
    assert " AA RIS-20261115-0007" in case_through["report_ack"]
    assert case_through["case"]["status"] == "ANSWERED"


def test_the_ehr_gets_the_report_and_accounting_the_charges(site, case_through):
    accession = case_through["case"]["accession"]
    (oru,) = [m for m in site["ehr"].messages if "|ORU^R01^ORU_R01|" in m]
    assert re.search(rf"\rOBR\|1\|CMD-2026-0042[^|]*\|{accession}\|", oru)
    assert "Naevus bénin, sans signe de malignité." in oru
    assert "ORM^O01^ORM_O01" in types(site["ehr"])  # the order status the guide turns on
    assert {t for t in types(site["accounting"])} == {"DFT^P03^DFT_P03"}
    assert any("\rFT1|" in m for m in site["accounting"].messages)


def test_the_pacs_gets_the_photo_and_the_report_pdf(site, case_through):
    from pydicom import dcmread
    classes = sorted(dcmread(p).SOPClassUID.name for p in site["pacs"].received().values())
    assert classes == ["Encapsulated PDF Storage", "VL Photographic Image Storage"], classes
