"""Three `telederm serve` processes on one PostgreSQL store and one Orthanc, one of them
SIGKILLed in the middle of the traffic (issue 19).

Each process has its own MLLP and HTTP ports (three nodes behind a load balancer, seen from
the clients); they share the data folder (the audit key, the Orthanc password) as processes of
one machine do. Orders are acknowledged once stored (`ack_mode = "storage"`), so the inbox
applier's claim is exercised: a message applied by one process must never be applied, or
failed, by another. Three HL7 senders each push their orders to "their" listener, three HTTP
clients upload each case's photo to "their" API, post every third case's report to the next
process's API and correct every sixth one on process 1 or 2. When half the orders are acknowledged, process 0 (the first started: it
holds the timers' and the Changes Log's leases) is SIGKILLed; its clients move to process 1
and resend what got no answer (same MSH-10, same file), as real clients do.

Then: every order opened one case and was applied once (inbox `done`, none `failed`); Orthanc
holds each photo and report PDF once; each ORU and each DFT charge line is carried by one
MSH-10 and none is missing (at most the head in flight when process 0 died arrives twice);
per destination, a case's messages (its report's ORU, then its correction's) first arrived in
the order they were queued, whichever processes queued and delivered them; the outbox is drained
(the items process 0 had leased were taken by the others once `[worker] lease_seconds`
expired) and its leases are held by a live process.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from connector.hl7.client import MllpConnection
from connector.hl7.errors import DeliveryError
from connector.ports import free_port
from tests.support.cli import clean_env, one_error_line, process_alive, telederm
from tests.support.reliability import (Peer, ServeProcess, first_arrivals, logical_effects,
                                       order, orthanc_sop_uids, photo, redelivered,
                                       report_body)
from tests.support.wait import wait_until

PROCESSES = 3
PER_PROCESS = 30        # orders sent to each listener: 90 cases
REPORT_EVERY = 3        # 30 reports: 30 ORU, 30 DFT, 30 PDFs
CORRECT_EVERY = 6       # 15 of them corrected: an ORU (OBX-11 C) and a PDF more each
KILL_AFTER = 45         # orders acknowledged when process 0 is killed
LEASE_SECONDS = 3       # how long process 0's claims outlive it
DEADLINE = 120          # for any one wait on a loaded machine; the test takes ~30 s here


def _config(path: Path, *, data_dir: Path, db_url: str, orthanc, http_port: int,
            hl7_port: int, ehr: int, accounting: int, token: str) -> Path:
    path.write_text(f"""data_dir = "{data_dir}"
[http]
listen = "127.0.0.1:{http_port}"
[hl7]
listen = "127.0.0.1:{hl7_port}"
ack_mode = "storage"
[database]
url = "{db_url}"
[orthanc]
managed = false
url = "{orthanc.url}"
username = "{orthanc.username}"
password = "{orthanc.password}"
[worker]
lease_seconds = {LEASE_SECONDS}
[[destinations]]
name = "ehr"
role = "requester"
transport = "mllp"
address = "127.0.0.1:{ehr}"
[[destinations]]
name = "accounting"
role = "accounting"
transport = "mllp"
address = "127.0.0.1:{accounting}"
[[api.tokens]]
name = "it-admin"
role = "admin"
token = "{token}"
""", encoding="utf-8")
    return path


class Clients:
    """The senders and uploaders, one thread each; a client whose process stopped answering
    goes on with the next process (a load balancer's failover, seen from the client)."""

    def __init__(self, hl7_ports: list[int], http_ports: list[int], token: str):
        self.hl7_ports, self.http_ports, self.token = hl7_ports, http_ports, token
        self.down: set[int] = set()
        self.acked: dict[int, bool] = {}
        self.accessions: dict[int, str] = {}
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._guard, args=(body, p), daemon=True)
                        for p in range(PROCESSES) for body in (self._hl7, self._http)]

    def cases_of(self, process: int) -> range:
        return range(process * PER_PROCESS, (process + 1) * PER_PROCESS)

    def _live(self, process: int) -> int:
        while process in self.down:
            process = (process + 1) % PROCESSES
        return process

    def _guard(self, body, process: int) -> None:
        try:
            body(process)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(f"{body.__name__}[{process}]: {type(exc).__name__}: {exc}")

    def _hl7(self, process: int) -> None:
        target = self._live(process)
        connection = MllpConnection("127.0.0.1", self.hl7_ports[target])
        for case in self.cases_of(process):
            while True:
                if self._live(process) != target:
                    connection.close()
                    target = self._live(process)
                    connection = MllpConnection("127.0.0.1", self.hl7_ports[target])
                try:
                    ack = connection.send(order(f"SO{case:04d}", f"PL-SO-{case:04d}",
                                                200000 + case), timeout=30)
                except DeliveryError:  # no answer: the same message again, on a live process
                    time.sleep(0.05)
                    continue
                assert (ack.code, ack.control_id_acked) == ("AA", f"SO{case:04d}"), ack.text
                break
            with self.lock:
                self.acked[case] = True
        connection.close()

    def _call(self, process: int, method: str, url: str, **kwargs) -> httpx.Response:
        """One request to `process` (or the next live one), repeated until it is answered."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            port = self.http_ports[self._live(process)]
            try:
                response = httpx.request(method, f"http://127.0.0.1:{port}{url}", timeout=30,
                                         headers={"Authorization": f"Bearer {self.token}"},
                                         **kwargs)
                if response.status_code != 503:
                    return response
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{method} {url}: no answer")

    def _http(self, process: int) -> None:
        for case in self.cases_of(process):
            wait_until(lambda: self.acked.get(case), DEADLINE, f"order {case} acknowledged")

            def opened():  # applied after its ACK (storage mode), by whichever process
                found = self._call(process, "GET", "/api/cases",
                                   params={"placer_order_number": f"PL-SO-{case:04d}"})
                assert found.status_code == 200, found.text
                return found.json()
            [found] = wait_until(opened, DEADLINE, f"case {case} opened")
            accession = self.accessions[case] = found["accession"]
            got = self._call(process, "POST", f"/api/cases/{accession}/images",
                             files={"file": (f"c{case}.jpg", photo(case), "image/jpeg")},
                             data={"kind": "photo", "site": "66643007", "laterality": "L"})
            assert got.status_code in (200, 201), got.text
        # Reports once every photo is up: each waits for its stable study (found by the
        # Changes Log catch-up), and those waits overlap instead of adding up.
        for case in self.cases_of(process):
            accession = self.accessions[case]
            if case % REPORT_EVERY == 0:  # to the next process: reports go to any node
                def stable():
                    got = self._call(process, "GET", f"/api/cases/{accession}")
                    return got.status_code == 200 and got.json()["status"] not in (
                        "OPEN", "IMAGES_PENDING")
                wait_until(stable, DEADLINE, f"case {case} READY")
                got = self._call((process + 1) % PROCESSES, "POST",
                                 f"/api/cases/{accession}/report", json=report_body())
                # 409: a first try recorded by process 0 just before it was killed
                assert got.status_code in (201, 409), got.text
            if case % CORRECT_EVERY == 0:
                # never to process 0: a correction repeated after its answer was lost with
                # the process would be a second correction
                got = self._call(2 if process == 0 else 1, "POST",
                                 f"/api/cases/{accession}/report/correct",
                                 json={**report_body("Naevus bénin, corrigé."),
                                       "reason": "latéralité"})
                assert got.status_code == 201, got.text


@pytest.fixture
def nodes(tmp_path, postgres_server, orthanc):
    ehr, accounting = Peer("ehr").start(), Peer("accounting").start()
    db_url = postgres_server.fresh_url()
    token = secrets.token_urlsafe(16)
    taken = [ehr.port, accounting.port]
    for _ in range(2 * PROCESSES):
        taken.append(free_port(tuple(taken)))
    hl7_ports, http_ports = taken[2:2 + PROCESSES], taken[2 + PROCESSES:]
    procs = []
    for n in range(PROCESSES):
        work = tmp_path / f"node{n}"
        work.mkdir()
        config = _config(work / "telederm.toml", data_dir=tmp_path / "data", db_url=db_url,
                         orthanc=orthanc, http_port=http_ports[n], hl7_port=hl7_ports[n],
                         ehr=ehr.port, accounting=accounting.port, token=token)
        procs.append(ServeProcess(config, http_ports[n], work))
    engine = create_engine(db_url)
    try:
        procs[0].start(DEADLINE)  # first: it takes the leases
        for proc in procs[1:]:
            proc.start(DEADLINE)
        yield procs, hl7_ports, http_ports, token, ehr, accounting, engine
    finally:
        for proc in procs:
            proc.terminate()
        engine.dispose()
        ehr.stop()
        accounting.stop()


def _rows(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def _pid_of(owner: str) -> int:
    return int(owner.split(":")[1])  # "<host>:<pid>:<nonce>", runtime/worker.py


@pytest.mark.postgres
def test_three_processes_do_each_thing_once_when_one_is_killed_mid_stream(nodes, orthanc):
    procs, hl7_ports, http_ports, token, ehr, accounting, engine = nodes
    wait_until(lambda: len(_rows(engine, "SELECT name FROM leases")) == 2, DEADLINE,
               "the timers' and the Changes Log's leases taken")
    assert {_pid_of(owner) for (owner,) in _rows(engine, "SELECT owner FROM leases")} == {
        procs[0].proc.pid}
    clients = Clients(hl7_ports, http_ports, token)
    for thread in clients.threads:
        thread.start()
    wait_until(lambda: len(clients.acked) >= KILL_AFTER or clients.errors, DEADLINE,
               f"{KILL_AFTER} orders acknowledged")
    clients.down.add(0)
    procs[0].kill()
    for thread in clients.threads:
        thread.join(DEADLINE)
    assert not clients.errors, clients.errors
    assert not any(thread.is_alive() for thread in clients.threads)

    cases = PROCESSES * PER_PROCESS
    reports = len(range(0, cases, REPORT_EVERY))
    corrections = len(range(0, cases, CORRECT_EVERY))
    wait_until(lambda: _rows(engine, "SELECT count(*) FROM outbox WHERE status <> 'done'")
               == [(0,)] and len(ehr.accepted()) >= reports + corrections, DEADLINE,
               "the outbox drained")
    logs = "\n".join(proc.logs() for proc in procs)

    # inbound: one case per order, every stored message applied once, none failed
    per_placer = Counter(p for (p,) in _rows(engine, "SELECT placer_order_number FROM cases"))
    assert len(per_placer) == cases and set(per_placer.values()) == {1}
    assert _rows(engine, "SELECT state, count(*) FROM inbox GROUP BY state") == [
        ("done", cases)], logs
    assert _rows(engine, "SELECT status, count(*) FROM cases WHERE status IN "
                 "('ANSWERED', 'AMENDED') GROUP BY status ORDER BY status") == [
        ("AMENDED", corrections), ("ANSWERED", reports - corrections)]

    # archive: each photo and each report PDF (and corrected PDF) once
    sop_uids = orthanc_sop_uids(orthanc.url, (orthanc.username, orthanc.password))
    stored = [uid for (uid,) in _rows(engine, "SELECT sop_uid FROM images")]
    assert len(stored) == cases
    assert Counter(sop_uids)[stored[0]] == 1 and len(set(sop_uids)) == len(sop_uids)
    assert set(stored) <= set(sop_uids) and len(sop_uids) == cases + reports + corrections

    # outbound: each logical effect carried by one MSH-10, none missing; a case's messages
    # in the order they were queued (a report's ORU before its correction's), whichever
    # processes queued and delivered them
    for peer, kind, messages in ((ehr, "ORU", reports + corrections),
                                 (accounting, "FT1", reports)):  # a DFT: an FT1 per act
        effects = {k: v for k, v in logical_effects(peer.messages).items() if k[0] == kind}
        assert all(len(v) == 1 for v in effects.values()), peer.name
        assert len(set().union(*effects.values())) == messages, peer.name
        assert sum(redelivered(peer.messages).values()) <= 1, redelivered(peer.messages)
        queued: dict[str, list[str]] = {}
        for accession, payload in _rows(engine, "SELECT accession, payload FROM outbox "
                                        "WHERE destination = :d ORDER BY id", d=peer.name):
            queued.setdefault(accession, []).append(json.loads(bytes(payload))["control_id"])
        arrived = first_arrivals(peer.messages)
        assert sorted(arrived) == sorted(sum(queued.values(), [])), peer.name
        for ids in queued.values():
            assert [cid for cid in arrived if cid in ids] == ids, peer.name

    # process 0's leases are held by a live process now
    owners = {_pid_of(owner) for (owner,) in _rows(engine, "SELECT owner FROM leases")}
    assert owners and owners <= {procs[1].proc.pid, procs[2].proc.pid}


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _listening(port: int) -> set[int]:
    """Pids of the processes listening on `port` (ss -ltnp)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


@pytest.mark.postgres
def test_serve_workers_listen_on_one_address_and_a_killed_worker_is_started_again(
        tmp_path, postgres_server, orthanc):
    ehr, accounting = Peer("ehr").start(), Peer("accounting").start()
    hl7_port = free_port((ehr.port, accounting.port))
    http_port = free_port((ehr.port, accounting.port, hl7_port))
    config = _config(tmp_path / "telederm.toml", data_dir=tmp_path / "data",
                     db_url=postgres_server.fresh_url(), orthanc=orthanc, http_port=http_port,
                     hl7_port=hl7_port, ehr=ehr.port, accounting=accounting.port,
                     token=secrets.token_urlsafe(16))
    out = tmp_path / "serve.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "connector.entrypoints.cli", "serve",
                                 "--config", str(config), "--workers", "2"], stdout=sink,
                                stderr=subprocess.STDOUT, env=clean_env())
    try:
        wait_until(lambda: proc.poll() is not None or "2 workers serving" in out.read_text(),
                   DEADLINE, "serve --workers 2 to announce itself")
        assert proc.poll() is None, out.read_text()
        workers = _children(proc.pid)
        assert len(workers) == 2
        assert _listening(hl7_port) == _listening(http_port) == set(workers)
        for n in range(4):  # a connection each: whichever worker the kernel picks answers
            connection = MllpConnection("127.0.0.1", hl7_port)
            assert connection.send(order(f"WK{n}", f"PL-WK-{n}", 300000 + n),
                                   timeout=30).code == "AA"
            connection.close()

        subprocess.run(["kill", "-KILL", str(workers[0])], check=True)
        wait_until(lambda: len(set(_children(proc.pid)) - {workers[0]}) == 2, DEADLINE,
                   "the killed worker started again")
        restarted = (set(_children(proc.pid)) - set(workers)).pop()
        wait_until(lambda: restarted in _listening(hl7_port), DEADLINE,
                   "the new worker listening")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(DEADLINE)
        ehr.stop()
        accounting.stop()
    assert code == 0, out.read_text()
    assert not any(process_alive(pid) for pid in (*workers, restarted))


def test_serve_workers_refuses_a_sqlite_store_in_one_line(tmp_path):
    config = tmp_path / "telederm.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n', encoding="utf-8")
    line = one_error_line(telederm("serve", "--config", config, "--workers", "3"), 2)
    assert "several workers need a PostgreSQL store (database.url)" in line
