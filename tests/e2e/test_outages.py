"""Outages while the connector runs (in-process `RunningConnector`, real Orthanc, real sockets,
real SQLite): Orthanc stopped and started again, the accounting system down and back on the
same port, a peer answering AR, a peer that never answers, a peer answering AE.

Each time the work waits in the outbox and is delivered once the other side is back, per
destination in the order it was queued, nothing lost and nothing doubled (a message may reach
a peer more than once only with the same MSH-10, which HL7 receivers drop as a repeat); AE
parks the message in dead letters, where an operator re-queues it with `telederm queue retry`.
What the operator sees meanwhile (`GET /api/health`, `telederm status`) is checked on the way.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from connector.config import load_config
from connector.hl7.client import send_message
from connector.runtime.server import RunningConnector
from connector.ports import free_port
from tests.support.cli import write_serve_config
from tests.support.reliability import (Peer, SilentPeer, by_control_id, db_rows, first_arrivals,
                                       logical_effects, order, orthanc_sop_uids, photo,
                                       report_body, telederm)
from tests.support.wait import wait_until
from tests.support.cli import EXAMPLE_DEVICES

DEADLINE = 90  # any one wait (back-off after an outage is at most a few seconds here)


@dataclass
class Env:
    running: RunningConnector
    api: httpx.Client
    ehr: Peer
    accounting: Peer | SilentPeer
    accounting_port: int
    config_path: Path
    db: Path
    orthanc_auth: tuple[str, str]
    count: int = 0

    # --- traffic ---------------------------------------------------------------------------
    def new_case(self, *, photos: int = 1) -> str:
        """An order over MLLP (AA), then `photos` uploads; returns the accession."""
        self.count += 1
        n = self.count
        ack = send_message("127.0.0.1", self.running.hl7_port,
                           order(f"OUT{n:03d}", f"PL-OUT-{n:03d}", 200000 + n))
        assert (ack.code, ack.control_id_acked) == ("AA", f"OUT{n:03d}"), ack.text
        (case,) = self.api.get("/api/cases", params={"placer_order_number": f"PL-OUT-{n:03d}"}).json()
        for k in range(photos):
            self.upload(case["accession"], n * 10 + k)
        return case["accession"]

    def upload(self, accession: str, seed: int) -> str:
        r = self.api.post(f"/api/cases/{accession}/images",
                          files={"file": ("p.jpg", photo(seed), "image/jpeg")},
                          data={"kind": "photo", "site": "66643007", "laterality": "R"})
        assert r.status_code == 201, r.text
        return r.json()["images"][0]["sop_instance_uid"]

    def wait_ready(self, accession: str) -> None:
        wait_until(lambda: self.api.get(f"/api/cases/{accession}").json()["status"] == "READY",
                   DEADLINE, f"case {accession} to be READY")

    def report(self, accession: str) -> dict:
        """The specialist's report, once the case's images are stable (as it must be)."""
        self.wait_ready(accession)
        r = self.api.post(f"/api/cases/{accession}/report", json=report_body())
        assert r.status_code == 201, r.text
        return r.json()

    # --- what the operator and the store see ----------------------------------------------
    def health(self) -> dict:
        r = self.api.get("/api/health")
        assert r.status_code == 200, r.text
        return r.json()

    def destination(self, name: str) -> dict:
        return self.health()["destinations"].get(name) or {"pending": 0, "last_error": "",
                                                            "dead": 0, "last_success": None,
                                                            "last_failure": None}

    def drained(self) -> bool:
        return self.api.get("/api/stats").json()["outbox"]["pending"] == 0

    def queued(self, destination: str) -> list[str]:
        """MSH-10 of what was queued to `destination`, in queue order."""
        return [json.loads(p)["control_id"] for (p,) in db_rows(
            self.db, "SELECT payload FROM outbox WHERE destination = ? ORDER BY id", destination)]

    def item(self, destination: str, control_id: str) -> dict:
        (row,) = db_rows(self.db, "SELECT id, status, attempts, last_error FROM outbox "
                                  "WHERE destination = ? AND key = ?", destination,
                         f"hl7:{destination}:{control_id}")
        return dict(zip(("id", "status", "attempts", "last_error"), row))

    def assert_done_in_queue_order(self) -> None:
        """Per destination, items were completed one after the other in the order queued."""
        for (name,) in db_rows(self.db, "SELECT DISTINCT destination FROM outbox"):
            done = [d for (d,) in db_rows(self.db, "SELECT done_at FROM outbox WHERE destination"
                                                   " = ? AND status = 'done' ORDER BY id", name)]
            assert done == sorted(done), name

    def cli(self, *args: str):
        return telederm(*args, "--config", self.config_path)


@pytest.fixture
def env(tmp_path):
    """A connector with its managed Orthanc, the EHR peer (AA) and an accounting port on
    which each test puts the peer it needs (`env.accounting`, stopped at the end)."""
    ehr = Peer("ehr").start()
    ports: list[int] = []
    for _ in range(5):
        ports.append(free_port(tuple(ports + [ehr.port])))
    http_port, hl7_port, orthanc_port, dicom_port, accounting_port = ports
    token, password = secrets.token_urlsafe(16), secrets.token_urlsafe(12)
    config_path = tmp_path / "telederm.toml"
    write_serve_config(config_path, data_dir=tmp_path / "data", http_port=http_port,
                       hl7_port=hl7_port, orthanc_port=orthanc_port, dicom_port=dicom_port,
                       password=password, ehr_port=ehr.port, accounting_port=accounting_port,
                       token=token, extra="[worker]\npoll_seconds = 0.2")
    running = RunningConnector(load_config(config_path, environ=EXAMPLE_DEVICES)).start()
    api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=60)
    state = Env(running, api, ehr, None, accounting_port, config_path,
                tmp_path / "data" / "telederm.db", ("telederm", password))
    try:
        yield state
    finally:
        api.close()
        running.stop()
        ehr.stop()
        if state.accounting is not None:
            state.accounting.stop()


def test_orthanc_stopped_then_started_again_gets_every_image_once(env):
    env.accounting = Peer("accounting", env.accounting_port).start()
    first = env.new_case()
    wait_until(env.drained, DEADLINE, "the first image to be archived")
    env.wait_ready(first)
    assert env.health()["orthanc"]["reachable"] is True

    env.running.orthanc.stop()
    wait_until(lambda: env.health()["orthanc"]["reachable"] is False, DEADLINE,
               "health to see Orthanc gone")
    # Orders and photos keep coming; the report of the case that was ready goes out to the
    # peers meanwhile.
    during = [env.new_case(photos=2) for _ in range(3)]
    answered = env.report(first)
    wait_until(lambda: f"ORU{first}V1" in by_control_id(env.ehr.messages), DEADLINE,
               "the ORU to reach the EHR while Orthanc is down")
    wait_until(lambda: env.destination("archive")["last_error"], DEADLINE,
               "an archive store to fail")
    health = env.health()
    archive = health["destinations"]["archive"]
    assert archive["pending"] >= 7  # six photos and the report's PDF
    assert archive["last_failure"]["at"] and archive["last_failure"]["error"]
    assert "orthanc is unreachable" in health["problems"]
    assert any(p.startswith("destination archive: ") for p in health["problems"])
    assert health["outbox"]["oldest_pending_item"]["destination"] == "archive"
    assert health["outbox"]["dead"] == 0
    status = env.cli("status")  # problems: exit 1, one line each, the report still printed
    assert status.returncode == 1 and "orthanc is unreachable" in status.stderr, status.stderr
    report = json.loads(status.stdout)
    assert report["orthanc"]["reachable"] is False and report["outbox"]["pending"] >= 7
    assert report["destinations"]["archive"]["last_error"]

    env.running.orthanc.start()
    wait_until(env.drained, DEADLINE, "the archive stores to be retried")
    images = {uid for (uid,) in db_rows(env.db, "SELECT sop_uid FROM images")}
    pdfs = {uid for (uid,) in db_rows(env.db, "SELECT sop_uid FROM reports")}
    assert len(images) == 7 and len(pdfs) == 1
    held = orthanc_sop_uids(env.running.orthanc.url, env.orthanc_auth)
    assert len(held) == len(set(held)) and set(held) == images | pdfs
    assert db_rows(env.db, "SELECT count(*) FROM images WHERE archived_at IS NULL") == [(0,)]
    env.assert_done_in_queue_order()
    health = env.health()
    assert health["problems"] == [] and health["orthanc"]["reachable"] is True
    assert health["destinations"]["archive"]["last_error"] == ""
    assert health["destinations"]["archive"]["last_failure"]["error"]  # still remembered
    assert first and answered["status"] == "ANSWERED"


def test_accounting_down_then_back_on_the_same_port_gets_each_dft_once_in_order(env):
    env.accounting = Peer("accounting", env.accounting_port).start()
    cases = [env.new_case() for _ in range(4)]
    env.report(cases[0])
    wait_until(lambda: f"DFT{cases[0]}N1" in env.accounting.accepted(), DEADLINE,
               "the first DFT")
    before = env.accounting
    before.stop()  # the accounting system goes down
    for accession in cases[1:]:
        env.report(accession)
    wait_until(lambda: all(f"ORU{a}V1" in env.ehr.accepted() for a in cases), DEADLINE,
               "the ORUs, which do not wait for accounting")
    wait_until(lambda: "refused" in env.destination("accounting")["last_error"], DEADLINE,
               "a DFT to find accounting down")
    accounting = env.destination("accounting")
    assert accounting["pending"] == 3 and accounting["dead"] == 0
    assert accounting["last_success"] is not None and accounting["last_failure"]["at"]

    env.accounting = Peer("accounting", env.accounting_port).start()  # back, same port
    wait_until(env.drained, DEADLINE, "the DFTs to be delivered")
    received = before.messages + env.accounting.messages
    assert first_arrivals(received) == env.queued("accounting") == [f"DFT{a}N1" for a in cases]
    assert before.accepted() + env.accounting.accepted() == env.queued("accounting")
    assert all(len(ids) == 1 for ids in logical_effects(received).values())
    assert db_rows(env.db, "SELECT DISTINCT status FROM charges") == [("acknowledged",)]
    env.assert_done_in_queue_order()
    assert env.health()["problems"] == []


def test_a_peer_answering_ar_gets_the_same_message_until_it_accepts(env):
    env.accounting = Peer("accounting", env.accounting_port, script=["AR", "AR"]).start()
    cases = [env.new_case() for _ in range(3)]
    for accession in cases:
        env.report(accession)
    wait_until(env.drained, DEADLINE, "the DFTs to be delivered after the ARs")
    expected = [f"DFT{a}N1" for a in cases]
    assert env.accounting.answers[:3] == [(expected[0], "AR"), (expected[0], "AR"),
                                          (expected[0], "AA")]
    assert env.accounting.accepted() == expected == env.queued("accounting")
    copies = by_control_id(env.accounting.messages)
    assert len(copies[expected[0]]) == 3 and len(set(copies[expected[0]])) == 1
    assert all(len(copies[cid]) == 1 for cid in expected[1:])
    assert env.item("accounting", expected[0])["attempts"] == 3
    assert db_rows(env.db, "SELECT DISTINCT status FROM charges") == [("acknowledged",)]
    health = env.health()
    assert health["problems"] == [] and health["outbox"]["dead"] == 0
    assert "AR" in health["destinations"]["accounting"]["last_failure"]["error"]


def test_a_peer_that_never_answers_holds_only_its_own_line(env):
    silent = env.accounting = SilentPeer(env.accounting_port)
    first = env.new_case()
    env.report(first)
    wait_until(lambda: silent.control_ids(), DEADLINE, "the DFT to reach the silent peer")
    # The accounting line waits for an ACK that does not come; the others go on.
    second = env.new_case(photos=2)
    env.report(second)
    wait_until(lambda: f"ORU{second}V1" in env.ehr.accepted(), DEADLINE,
               "the second ORU while the accounting peer is silent")
    wait_until(lambda: all(i["archived"] for i in env.api.get(f"/api/cases/{second}").json()["images"]),
               DEADLINE, "the second case's photos to be archived")
    assert env.item("accounting", f"DFT{first}N1")["status"] == "pending"
    assert env.destination("accounting")["pending"] == 2

    silent.stop()  # its connections close: the worker stops waiting and tries again
    env.accounting = Peer("accounting", env.accounting_port).start()
    wait_until(env.drained, DEADLINE, "the DFTs to be delivered to the peer that answers")
    expected = [f"DFT{first}N1", f"DFT{second}N1"]
    assert env.accounting.accepted() == expected == env.queued("accounting")
    assert set(silent.control_ids()) == {expected[0]}  # the same MSH-10, never another
    assert all(len(ids) == 1 for ids in logical_effects(env.accounting.messages).values())
    assert env.item("accounting", expected[0])["attempts"] >= 2
    env.assert_done_in_queue_order()
    assert env.health()["problems"] == []


def test_ae_parks_the_message_for_an_operator_who_queues_it_again(env):
    env.accounting = Peer("accounting", env.accounting_port, script=["AE"]).start()
    refused, accepted = env.new_case(), env.new_case()
    env.report(refused)
    env.report(accepted)
    dft = f"DFT{refused}N1"
    # AE is final: the item is dead at once, and the line goes on with the next message.
    wait_until(env.drained, DEADLINE, "the second DFT to be delivered past the dead one")
    assert env.accounting.answers == [(dft, "AE"), (f"DFT{accepted}N1", "AA")]
    item = env.item("accounting", dft)
    assert item["status"] == "dead" and item["attempts"] == 1 and "AE" in item["last_error"]
    assert {s for (s,) in db_rows(env.db, "SELECT status FROM charges WHERE accession = ?",
                                  refused)} == {"refused"}
    health = env.health()
    assert health["outbox"]["dead"] == 1 and health["destinations"]["accounting"]["dead"] == 1
    assert any("dead letter" in p for p in health["problems"])
    assert "AE" in health["destinations"]["accounting"]["last_failure"]["error"]

    listed = env.cli("queue", "list", "--status", "dead")
    assert listed.returncode == 0, listed.stderr
    (line,) = [x for x in listed.stdout.splitlines() if x.split()[0] == str(item["id"])]
    assert "dead" in line and "accounting" in line and refused in line
    status = json.loads(env.cli("status").stdout)
    assert status["outbox"]["dead"] == 1 and any("dead letter" in p for p in status["problems"])

    retried = env.cli("queue", "retry", str(item["id"]))
    assert retried.returncode == 0, retried.stderr
    wait_until(env.drained, DEADLINE, "the re-queued DFT to be delivered")
    assert env.accounting.answers[-1] == (dft, "AA")
    assert env.accounting.accepted() == [f"DFT{accepted}N1", dft]
    assert db_rows(env.db, "SELECT DISTINCT status FROM charges") == [("acknowledged",)]
    health = env.health()
    assert health["outbox"]["dead"] == 0 and health["problems"] == []
