"""Data at rest: a whole case (order with its question and NTE, photos, report, ORU and DFT) run
with the database and storage keys set leaves the patient's name, identifier and the order's
text nowhere in clear under data_dir (Orthanc's own storage aside) nor in the logs."""

from __future__ import annotations

import logging
import secrets
import sqlite3

import httpx
import pytest

from connector.config import DatabaseSection, StorageSection
from connector.demo import demo_order, demo_photo, local_config
from connector.hl7.client import send_message
from connector.runtime.server import RunningConnector
from tests.support.peers import RecordingPeer
from tests.support.wait import wait_until

FAMILY, GIVEN, IPP = "QUIVERLANDE", "Ysoldine", "IPP7Q4K9Z2"
QUESTION = "Tache kératosique du flanc gauche, saignement récent"
NOTE = "Antécédent de carcinome basocellulaire opéré"
SECRETS = (FAMILY, GIVEN, IPP, QUESTION, NOTE, "kératosique", "basocellulaire")


def order(control_id: str, placer: str) -> str:
    text = demo_order(control_id, placer)
    for old, new in (("DUPONT^Hélène", f"{FAMILY}^{GIVEN}"), ("IPP123456", IPP),
                     ("Lésion pigmentée du dos apparue il y a 6 mois, évolutive. Mélanome ?",
                      QUESTION),
                     ("Patiente phototype II, antécédent familial de mélanome.", NOTE)):
        assert old in text
        text = text.replace(old, new)
    return text


class Lines(logging.Handler):
    """Every log record the connector emits while the test runs, formatted with its args."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("atrest")
    keys = tmp_path_factory.mktemp("atrest-keys")
    token = secrets.token_urlsafe(16)
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    base = local_config(work, ehr_port=ehr.port, accounting_port=accounting.port, token=token,
                        stable_age=1)
    config = base.model_copy(update={
        "database": DatabaseSection(key_file=keys / "database.key"),
        "storage": StorageSection(key_file=keys / "storage.keys")})
    lines = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(lines)
    root.setLevel(logging.INFO)  # what `telederm serve` logs by default ([log] level)
    running = RunningConnector(config).start()
    api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    yield running, api, work, lines
    api.close()
    running.stop()
    root.removeHandler(lines)
    root.setLevel(level)
    ehr.stop()
    accounting.stop()


def test_a_full_case_leaves_no_patient_data_in_clear_under_data_dir_nor_in_the_logs(env):
    running, api, work, lines = env
    ack = send_message("127.0.0.1", running.hl7_port, order("REST-1", "PL-REST-1"))
    assert ack.code == "AA", ack
    [case] = api.get("/api/cases", params={"placer_order_number": "PL-REST-1"}).json()
    accession = case["accession"]
    assert case["patient"]["name"] == f"{FAMILY}^{GIVEN}"
    assert QUESTION in api.get(f"/api/cases/{accession}").text  # stored, and readable by us
    for data in (demo_photo(False), demo_photo(True)):
        r = api.post(f"/api/cases/{accession}/images",
                     files={"file": ("p.jpg", data, "image/jpeg")},
                     data={"site": "66643007", "laterality": "U"})
        assert r.status_code == 201, r.text
    wait_until(lambda: api.get(f"/api/cases/{accession}").json()["status"] == "READY", 60,
               "the case to be READY")
    r = api.post(f"/api/cases/{accession}/report", json={
        "text": "Kératose séborrhéique.\nPas de suivi.", "conduct": "no_visit",
        "specialist": {"id": "810001234567", "name": "LEROY^Claire"}})
    assert r.status_code == 201, r.text
    wait_until(lambda: api.get("/api/stats").json()["outbox"]["pending"] == 0, 60,
               "the outbox drained")
    worklists = running.services.config.worklist_folder
    wait_until(lambda: not any(worklists.glob("*")), 30, "the answered case's worklist entry "
               "withdrawn")
    # what Orthanc was sent is the patient's, in clear over there: the spool sealed it here
    study = running.services.archive.study_patient_tags(case["study_instance_uid"])
    assert len(study) == 3 and {s["PatientID"] for s in study} == {IPP}

    spooled = [p for p in (work / "images" / accession).iterdir()]
    assert len(spooled) == 2 and all(p.read_bytes().startswith(b"TDENC1") for p in spooled)
    orthanc_storage = work / "orthanc" / "db"
    files = [p for p in work.rglob("*") if p.is_file() and orthanc_storage not in p.parents]
    assert any(p.name == "telederm.db" for p in files)
    found = [(str(p.relative_to(work)), s) for p in files for s in SECRETS
             if any(form in p.read_bytes() for form in _forms(s))]
    assert found == []
    assert not any(s in line for line in lines.lines for s in SECRETS), \
        [line for line in lines.lines if any(s in line for s in SECRETS)]
    orthanc_log = (work / "orthanc" / "orthanc.log").read_text(errors="replace")
    assert not any(s in orthanc_log for s in SECRETS)

    ours = [p for p in files if work / "orthanc" not in p.parents
            and p.name != "signing-cert.pem"]  # a certificate is public
    assert [p for p in ours if p.stat().st_mode & 0o077] == []
    for folder in (work / "images", work / "images" / accession, work / "reports"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder


def test_the_store_is_not_a_database_to_plain_sqlite_without_the_key(env):
    _, _, work, _ = env
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite3.connect(work / "telederm.db").execute("SELECT * FROM sqlite_master").fetchall()


def _forms(text: str) -> tuple[bytes, ...]:
    """`text` as the store, DICOM and HL7 would hold it: UTF-8, Latin-1, UTF-16."""
    out = [text.encode("utf-8"), text.encode("utf-16-le")]
    try:
        out.append(text.encode("latin-1"))
    except UnicodeEncodeError:
        pass
    return tuple(out)
