"""The care network (`mappings/routing.toml`) through a real `telederm serve` process: orders in
over MLLP, the specialist sides and the EHR as real MLLP peers in this process, the API over
HTTP, a SQLite store, and a restart of the connector while a timer is armed.

The routing file: two facilities (FINESS 750000001, 690000002) and three pools. `chu` (members
M1, absent today by the file, and M2; destination spec-chu; falls back on `astreinte`),
`ch-sud` (M3; spec-sud), `astreinte` (M4; spec-astreinte). Routine requests are due in an hour
(nothing fires while the test runs), stat ones in 2 s, with a reminder 1 s before and the
escalation 6 s after the deadline.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import shutil

import httpx
import pytest

from connector.config import default_mappings_dir
from connector.demo import demo_order
from connector.hl7.client import MllpConnection
from connector.ports import free_port
from tests.support.net import unused_url
from tests.support.peers import RecordingPeer
from tests.support.reliability import ServeProcess
from tests.support.wait import wait_until

M1, M2, M3, M4 = "810000000011", "810000000022", "810000000033", "810000000044"
F1, F2 = "750000001", "690000002"
WAIT = 60

ROUTING = f"""
default_pool = "chu"

[deadlines]
stat = "2s"
urgent = "1h"
routine = "1h"
reminder_before = "1s"
grace = "6s"

[[pool]]
id = "chu"
members = ["{M1}", "{M2}"]
fallback = "astreinte"
destination = "spec-chu"

[[pool]]
id = "ch-sud"
members = ["{M3}"]
destination = "spec-sud"

[[pool]]
id = "astreinte"
members = ["{M4}"]
destination = "spec-astreinte"

[[rule]]
pool = "ch-sud"
facility = ["{F2}"]

[[rule]]
pool = "chu"
facility = ["{F1}"]

[[absence]]
member = "{M1}"
start = 2000-01-01
end = 2999-12-31
"""


def order(control_id: str, placer: str, finess: str, priority: str = "R") -> str:
    """The demo order from `finess` (ORC-21, XON type FINEG) with OBR-5 `priority`."""
    lines = demo_order(control_id, placer).split("\r")
    out = []
    for line in lines:
        if line.startswith("ORC|"):
            fields = line.split("|")
            fields += [""] * (22 - len(fields))
            fields[21] = f"HOPITAL {finess}^^^^^^FINEG^^^{finess}"
            line = "|".join(fields)
        if line.startswith("OBR|"):
            fields = line.split("|")
            fields[5] = priority
            line = "|".join(fields)
        out.append(line)
    return "\r".join(out)


class Network:
    def __init__(self, work: Path):
        self.peers = {name: RecordingPeer(name).start()
                      for name in ("ehr", "spec-chu", "spec-sud", "spec-astreinte")}
        self.http_port, self.hl7_port = free_port(), free_port()
        mappings = work / "mappings"
        shutil.copytree(default_mappings_dir(), mappings)
        (mappings / "routing.toml").write_text(ROUTING, encoding="utf-8")
        destinations = "".join(
            f'[[destinations]]\nname = "{name}"\nrole = "{role}"\n'
            f'address = "127.0.0.1:{peer.port}"\n{extra}'
            for name, peer in self.peers.items()
            for role, extra in [("requester", 'order_status = "ORM^O01"\n')
                                if name == "ehr" else ("specialist", "")])
        config = work / "telederm.toml"
        config.write_text(f"""data_dir = "{work / 'var'}"
mappings_dir = "{mappings}"
[http]
listen = "127.0.0.1:{self.http_port}"
[hl7]
listen = "127.0.0.1:{self.hl7_port}"
[orthanc]
managed = false
url = "{unused_url()}"
[worker]
poll_seconds = 0.2
{destinations}
[[api.tokens]]
name = "it-admin"
role = "admin"
token = "admin-secret"
[[api.tokens]]
name = "dr-m2"
role = "specialist"
token = "m2-secret"
practitioner_id = "{M2}"
[[api.tokens]]
name = "dr-m4"
role = "specialist"
token = "m4-secret"
practitioner_id = "{M4}"
""", encoding="utf-8")
        self.db = work / "var" / "telederm.db"
        self.serve = ServeProcess(config, self.http_port, work)

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def send(self, message: str) -> None:
        with MllpConnection("127.0.0.1", self.hl7_port) as conn:
            ack = conn.send(message)
        assert ack.code == "AA", ack

    def case(self, placer: str) -> dict:
        with self.client("admin-secret") as api:
            (found,) = api.get("/api/cases", params={"placer_order_number": placer}).json()
            return api.get(f"/api/cases/{found['accession']}").json()

    def received(self, peer: str, accession: str) -> list[tuple[str, str]]:
        """(MSH-10, ORC-1) of each distinct message `peer` got about `accession`."""
        seen = {}
        for message in self.peers[peer].messages:
            segments = {s.split("|")[0]: s.split("|") for s in message.split("\r") if s}
            if segments.get("ORC", [""] * 4)[3] == accession:
                seen[segments["MSH"][9]] = segments["ORC"][1]
        return list(seen.items())

    def rows(self, sql: str, *args) -> list[tuple]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    net = Network(tmp_path_factory.mktemp("network"))
    net.serve.start()
    yield net
    net.serve.terminate()
    for peer in net.peers.values():
        peer.stop()


def test_a_request_from_each_facility_lands_in_its_pool_and_the_absent_member_gets_nothing(
        network):
    network.send(order("RT1", "PL-RT-1", F1))
    network.send(order("RT2", "PL-RT-2", F2))
    first, second = network.case("PL-RT-1"), network.case("PL-RT-2")
    assert (first["pool"], first["assigned_to"]) == ("chu", M2)  # M1 is absent
    assert (second["pool"], second["assigned_to"]) == ("ch-sud", M3)
    assert first["due_at"] > first["created_at"] and first["overdue"] is False
    wait_until(lambda: network.received("spec-chu", first["accession"]), WAIT, "NW at spec-chu")
    wait_until(lambda: network.received("spec-sud", second["accession"]), WAIT, "NW at spec-sud")
    assert [c for _, c in network.received("spec-chu", first["accession"])] == ["NW"]
    assert network.received("spec-sud", first["accession"]) == []
    assert network.rows("SELECT count(*) FROM cases WHERE assigned_to = ?", M1) == [(0,)]


def test_take_and_release_move_the_case_and_are_audited(network):
    network.send(order("RT3", "PL-RT-3", F1))
    accession = network.case("PL-RT-3")["accession"]
    with network.client("admin-secret") as admin:
        # an admin hands it back for M2: nobody else of the pool is present, it waits unassigned
        released = admin.post(f"/api/cases/{accession}/release")
        assert released.status_code == 200, released.text
        assert released.json()["assigned_to"] is None
    with network.client("m4-secret") as m4:
        refused = m4.post(f"/api/cases/{accession}/assign")
        assert refused.status_code == 404  # M4 does not read pool chu: not theirs to know of
        assert refused.headers["content-type"].startswith("application/problem+json")
    with network.client("m2-secret") as m2:
        taken = m2.post(f"/api/cases/{accession}/assign")
        assert taken.status_code == 200, taken.text
        assert network.case("PL-RT-3")["assigned_to"] == M2
        assert m2.post(f"/api/cases/{accession}/assign",
                       json={"specialist": M1}).status_code == 403
    wait_until(lambda: len(network.received("spec-chu", accession)) == 3, WAIT,
               "NW, XO (released), XO (taken) at spec-chu")
    assert [c for _, c in network.received("spec-chu", accession)] == ["NW", "XO", "XO"]
    actions = [a for (a,) in network.rows(
        "SELECT action FROM audit WHERE accession = ? AND action LIKE 'case.%' ORDER BY id",
        accession)]
    assert [a for a in actions if a != "case.read"][-3:] == ["case.assigned", "case.released",
                                                          "case.taken"]
    # the requester hears that the work started (SC/IP) once the specialist took it
    wait_until(lambda: any(f"ST{accession}IP" in m for m in network.peers["ehr"].messages),
               WAIT, "SC/IP at the EHR")


def test_a_late_case_is_flagged_reminded_and_escalated_once_across_a_restart(network):
    network.send(order("RT4", "PL-RT-4", F1, priority="S"))
    accession = network.case("PL-RT-4")["accession"]
    with network.client("admin-secret") as admin:
        wait_until(lambda: accession in [c["accession"] for c in admin.get(
            "/api/cases", params={"overdue": "true"}).json()], WAIT, "the case flagged overdue")
        digest = admin.get("/api/digest/overdue").json()
    assert accession in [c["accession"] for p in digest["pools"] if p["pool"] == "chu"
                         for c in p["cases"]]
    network.serve.terminate()
    # stopped before the escalation was due: it is still a pending row in the store
    assert network.rows("SELECT status FROM timers WHERE accession = ? AND kind = 'escalation'",
                        accession) == [("pending",)]
    network.serve.start()
    wait_until(lambda: network.received("spec-astreinte", accession), WAIT,
               "the order at the fallback pool's specialist side")
    case = network.case("PL-RT-4")
    assert (case["pool"], case["assigned_to"], case["overdue"]) == ("astreinte", M4, True)
    assert [c for _, c in network.received("spec-astreinte", accession)] == ["NW"]
    wait_until(lambda: "CA" in [c for _, c in network.received("spec-chu", accession)], WAIT,
               "CA at the old pool's side")
    assert [c for _, c in network.received("spec-chu", accession)] == ["NW", "SC", "CA"]
    assert network.rows("SELECT kind, status FROM timers WHERE accession = ? ORDER BY id",
                        accession) == [("reminder", "fired"), ("escalation", "fired")]
    assert network.rows("SELECT count(*) FROM audit WHERE accession = ? AND action = "
                        "'case.escalated'", accession) == [(1,)]
    with network.client("admin-secret") as admin:
        stats = admin.get("/api/stats").json()
    assert set(stats["deadlines"]) == {"stat", "urgent", "routine"}
