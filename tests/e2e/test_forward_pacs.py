"""Each case's study forwarded to the hospital PACS (`[[dicom.forward]]`), in a running
connector (in-process `RunningConnector`, its managed Orthanc, real sockets, real SQLite), to
DCMTK `storescp` as the PACS.

What the PACS gets is compared with what Orthanc holds: every object of the study, with its
SOP Class UID, Transfer Syntax and dataset bytes unchanged, exactly once (storescp keeps a file
per object received, so a repeat would show), the report's PDF after the images. The PACS goes
down while the case moves on and comes back on the same port: what was waiting arrives once.
A PACS answering a failure status for one object makes the item dead, naming that object;
an operator's retry then sends that object only.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import (DermoscopicPhotographyImageStorage, EncapsulatedPDFStorage,
                         JPEGBaseline8Bit, VLPhotographicImageStorage)
from pynetdicom import AE, evt

from connector.ports import free_port
from tests.support.cli import write_serve_config
from connector.config import load_config
from tests.support.wait import wait_until
from connector.hl7.client import send_message
from connector.runtime.server import RunningConnector
from tests.support.reliability import Peer, db_rows, order, photo, report_body, telederm
from tests.support.storescp import StoreScp, dataset_bytes
from tests.support.cli import EXAMPLE_DEVICES

DEADLINE = 90  # any one wait (the back-off after an outage is a few seconds here)


def forward_table(name: str, ae_title: str, port: int, when: str) -> str:
    return (f'[[dicom.forward]]\nname = "{name}"\nae_title = "{ae_title}"\n'
            f'host = "127.0.0.1"\nport = {port}\nwhen = "{when}"\n')


@dataclass
class Env:
    running: RunningConnector
    api: httpx.Client
    config_path: Path
    db: Path

    def new_case(self, n: int) -> dict:
        """An order over MLLP, a photo and a dermoscopy image; returns the case."""
        ack = send_message("127.0.0.1", self.running.hl7_port,
                           order(f"FWD{n:03d}", f"PL-FWD-{n:03d}", 300000 + n))
        assert ack.code == "AA", ack.text
        (case,) = self.api.get("/api/cases", params={"placer_order_number": f"PL-FWD-{n:03d}"}).json()
        for kind, extra in (("photo", {"site": "66643007", "laterality": "R"}),
                            ("dermoscopy", {"device": "dermlite-dl5", "tracking_id": "d-1"})):
            r = self.api.post(f"/api/cases/{case['accession']}/images",
                              files={"file": ("i.jpg", photo(n * 10 + len(kind)), "image/jpeg")},
                              data={"kind": kind, **extra})
            assert r.status_code == 201, r.text
        return case

    def status(self, accession: str) -> str:
        return self.api.get(f"/api/cases/{accession}").json()["status"]

    def line(self, name: str) -> dict:
        """What `/api/health` shows of the outbox line of a PACS."""
        return self.api.get("/api/health").json()["destinations"].get(f"dicom:{name}") or {}

    def drained(self) -> bool:
        return self.api.get("/api/stats").json()["outbox"]["pending"] == 0

    def archived(self, study_uid: str) -> dict[str, bytes]:
        """SOP Instance UID -> the Part-10 file Orthanc holds, for each object of the study."""
        archive = self.running.services.archive
        return {i["SOPInstanceUID"]: archive.instance_file(i["orthanc_id"])
                for i in archive.study_instances(study_uid)}


@pytest.fixture
def connector(tmp_path):
    """Call with the `[[dicom.forward]]` tables: starts the connector (with an EHR and an
    accounting peer answering AA); everything is stopped when the test ends."""
    started: list = []

    def start(tables: str) -> Env:
        ehr, accounting = Peer("ehr").start(), Peer("accounting").start()
        started.extend([ehr, accounting])
        ports: list[int] = []
        for _ in range(4):
            ports.append(free_port(tuple(ports + [ehr.port, accounting.port])))
        http_port, hl7_port, orthanc_port, dicom_port = ports
        token = secrets.token_urlsafe(16)
        config_path = write_serve_config(
            tmp_path / "telederm.toml", data_dir=tmp_path / "data", http_port=http_port,
            hl7_port=hl7_port, orthanc_port=orthanc_port, dicom_port=dicom_port,
            password=secrets.token_urlsafe(12), ehr_port=ehr.port,
            accounting_port=accounting.port, token=token,
            extra="[worker]\npoll_seconds = 0.2\n" + tables)
        running = RunningConnector(load_config(config_path, environ=EXAMPLE_DEVICES)).start()
        started.append(running)
        api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                           headers={"Authorization": f"Bearer {token}"}, timeout=60)
        started.append(api)
        return Env(running, api, config_path, tmp_path / "data" / "telederm.db")

    yield start
    for part in reversed(started):
        (part.close if isinstance(part, httpx.Client) else part.stop)()


def meta(data: bytes) -> tuple[str, str]:
    """SOP Class UID and Transfer Syntax UID of a Part-10 file, from its bytes."""
    found = dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
    return str(found.MediaStorageSOPClassUID), str(found.TransferSyntaxUID)


def assert_unchanged(pacs: StoreScp, archived: dict[str, bytes], uids: list[str]) -> None:
    """The PACS's copy of each object has Orthanc's SOP Class, Transfer Syntax and dataset."""
    received = pacs.received()
    for uid in uids:
        got = received[uid].read_bytes()
        assert meta(got) == meta(archived[uid]), uid
        assert dataset_bytes(got) == dataset_bytes(archived[uid]), uid


def test_study_reaches_each_pacs_once_unchanged_and_after_an_outage_of_the_pacs(tmp_path,
                                                                                connector):
    ready_pacs = StoreScp(tmp_path / "ready-pacs", "READYPACS").start()
    answered_pacs = StoreScp(tmp_path / "answered-pacs", "ANSWEREDPACS").start()
    try:
        env = connector(forward_table("ready-pacs", "READYPACS", ready_pacs.port, "ready")
                        + forward_table("answered-pacs", "ANSWEREDPACS", answered_pacs.port,
                                        "answered"))
        case = env.new_case(1)
        accession, study_uid = case["accession"], case["study_instance_uid"]
        wait_until(lambda: env.status(accession) == "READY", DEADLINE, "the case to be READY")
        wait_until(lambda: len(ready_pacs.arrivals()) == 2, DEADLINE, "the images at the PACS")
        images = env.archived(study_uid)
        assert sorted(ready_pacs.arrivals()) == sorted(images)
        assert_unchanged(ready_pacs, images, list(images))
        assert {meta(data) for data in images.values()} == {
            (VLPhotographicImageStorage, JPEGBaseline8Bit),
            (DermoscopicPhotographyImageStorage, JPEGBaseline8Bit)}
        wait_until(env.drained, DEADLINE, "the outbox to drain")
        assert answered_pacs.arrivals() == []  # its moment has not come

        # Both PACS go down; the case is answered meanwhile.
        ready_pacs.stop()
        answered_pacs.stop()
        r = env.api.post(f"/api/cases/{accession}/report", json=report_body())
        assert r.status_code == 201, r.text
        for name in ("ready-pacs", "answered-pacs"):
            wait_until(lambda: env.line(name).get("last_error"), DEADLINE,
                     f"a forward to {name} to fail")
            line = env.line(name)
            assert line["pending"] == 1 and line["dead"] == 0, line
            assert "PeerUnavailable" in line["last_error"]
        assert "dicom:answered-pacs" in telederm("queue", "list", "--config",
                                                 env.config_path).stdout

        ready_pacs.start()
        answered_pacs.start()
        wait_until(env.drained, DEADLINE, "the forwards to be retried")
        study = env.archived(study_uid)
        (pdf,) = set(study) - set(images)
        assert meta(study[pdf])[0] == EncapsulatedPDFStorage
        # The ready PACS got the report only; the answered one everything, the PDF last.
        arrivals = ready_pacs.arrivals()
        assert sorted(arrivals[:2]) == sorted(images) and arrivals[2:] == [pdf]
        arrivals = answered_pacs.arrivals()
        assert sorted(arrivals) == sorted(study) and arrivals[-1] == pdf
        assert_unchanged(ready_pacs, study, list(study))
        assert_unchanged(answered_pacs, study, list(study))
        assert env.line("answered-pacs")["last_error"] == ""
        recorded = db_rows(env.db, "SELECT destination, count(*) FROM forwarded "
                                   "GROUP BY destination ORDER BY destination")
        assert recorded == [("answered-pacs", 3), ("ready-pacs", 3)]
    finally:
        ready_pacs.stop()
        answered_pacs.stop()


def test_an_object_the_pacs_fails_is_a_dead_item_and_a_retry_sends_only_that_one(tmp_path,
                                                                                 connector):
    # A PACS that keeps photos and answers 0xA700 (out of resources) for dermoscopy.
    strict = AE(ae_title="PICKYPACS")
    strict.add_supported_context(VLPhotographicImageStorage, JPEGBaseline8Bit)
    strict.add_supported_context(DermoscopicPhotographyImageStorage, JPEGBaseline8Bit)
    kept = []

    def store(event):
        if event.request.AffectedSOPClassUID == DermoscopicPhotographyImageStorage:
            return 0xA700
        kept.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    port = free_port()
    strict.start_server(("127.0.0.1", port), block=False,
                        evt_handlers=[(evt.EVT_C_STORE, store)])
    pacs = StoreScp(tmp_path / "picky-pacs", "PICKYPACS", port=port)
    try:
        env = connector(forward_table("picky", "PICKYPACS", port, "ready"))
        case = env.new_case(2)
        wait_until(lambda: env.line("picky").get("dead"), DEADLINE, "the forward to die")
        line = env.line("picky")
        archived = env.archived(case["study_instance_uid"])
        dermoscopy = next(uid for uid, data in archived.items()
                          if meta(data)[0]
                          == DermoscopicPhotographyImageStorage)
        assert f"{dermoscopy} (status 0xA700" in line["last_error"], line
        assert "ForwardRefused" in line["last_error"] and line["pending"] == 0
        assert len(kept) == 1 and kept[0] != dermoscopy
        (item_id,) = [i for (i,) in db_rows(env.db, "SELECT id FROM outbox WHERE status = 'dead'"
                                                    " AND destination = 'dicom:picky'")]

        # The PACS is fixed (here: replaced by one that keeps everything), the item retried.
        strict.shutdown()
        pacs.start()
        retried = telederm("queue", "retry", item_id, "--config", env.config_path)
        assert retried.returncode == 0, retried.stderr
        wait_until(env.drained, DEADLINE, "the retried forward")
        assert pacs.arrivals() == [dermoscopy]
        assert_unchanged(pacs, archived, [dermoscopy])
        assert env.line("picky")["dead"] == 0
    finally:
        strict.shutdown()  # its servers, if still running
        pacs.stop()
