"""`telederm serve` as its own process, driven from outside like a hospital would: orders with
`telederm hl7 send`, photos and the report over HTTP, the ORU and DFT at real MLLP peers in this
process, then SIGTERM; afterwards `audit verify`, `stats` and `import` on the same data folder.

The module runs one serve process. Fixtures do the steps in the order a case lives
(`served` -> `answered` -> `import_cases` -> `stopped`); tests assert what each step left.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydicom import dcmread

from connector.config import load_config
from connector.demo import demo_order, demo_photo
from connector.ports import free_port
from connector.runtime.server import managed_orthanc
from tests.support.cli import (clean_env, one_error_line, process_alive, telederm, write_config,
                               write_serve_config)
from tests.support.peers import RecordingPeer
from tests.support.wait import wait_until
from tests.support.cli import EXAMPLE_DEVICES

START_DEADLINE = 120    # serve starts Orthanc, migrates the store, binds HL7 and HTTP
CASE_DEADLINE = 90      # photo archived + study stable; report -> ORU and DFT delivered
EXIT_DEADLINE = 90      # SIGTERM -> worker, listeners and Orthanc stopped


@dataclass
class Served:
    config_path: Path
    data_dir: Path
    http_port: int
    hl7_port: int
    proc: subprocess.Popen
    api: httpx.Client
    ehr: RecordingPeer
    accounting: RecordingPeer
    stdout_path: Path
    stderr_path: Path
    facts: dict = field(default_factory=dict)

    def logs(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def hl7_send(self, *files: Path) -> subprocess.CompletedProcess:
        return telederm("hl7", "send", *files, "--to", f"127.0.0.1:{self.hl7_port}")

    def case(self, placer: str) -> dict:
        (case,) = self.api.get("/api/cases", params={"placer_order_number": placer}).json()
        return case


def order_file(folder: Path, control_id: str, placer: str) -> Path:
    """An ORM^O01 from demo_order, written as an interface engineer would: LF line endings."""
    path = folder / f"{control_id}.hl7"
    path.write_bytes(demo_order(control_id, placer).replace("\r", "\n").encode("utf-8"))
    return path


def jpeg(shade: int) -> bytes:
    img = Image.new("RGB", (200, 150), (shade, 170, 140))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def health(served_http_port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{served_http_port}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def db_count(data_dir: Path, sql: str, *params) -> int:
    with sqlite3.connect(data_dir / "telederm.db") as conn:
        return conn.execute(sql, params).fetchone()[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("serve")
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    ports: list[int] = []
    for _ in range(4):
        ports.append(free_port(tuple(ports + [ehr.port, accounting.port])))
    http_port, hl7_port, orthanc_port, dicom_port = ports
    token = secrets.token_urlsafe(16)
    data_dir = work / "data"
    config_path = work / "telederm.toml"
    write_serve_config(config_path, data_dir=data_dir, http_port=http_port, hl7_port=hl7_port,
                       orthanc_port=orthanc_port, dicom_port=dicom_port,
                       password=secrets.token_urlsafe(12), ehr_port=ehr.port,
                       accounting_port=accounting.port, token=token)
    stdout_path, stderr_path = work / "serve.out", work / "serve.err"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "connector.entrypoints.cli", "serve", "--config",
                                 str(config_path)], stdout=out, stderr=err, cwd=work,
                                env=clean_env())
    api = httpx.Client(base_url=f"http://127.0.0.1:{http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    served = Served(config_path, data_dir, http_port, hl7_port, proc, api, ehr, accounting,
                    stdout_path, stderr_path)
    try:
        # serve prints its announcement once start() returns, which is just after the HTTP
        # server answers: wait for both, or a fast test reads an empty stdout.
        wait_until(lambda: proc.poll() is not None
                   or (health(http_port) and stdout_path.read_text().strip()),
                   START_DEADLINE, "GET /api/health to answer and serve to announce itself")
        assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{served.logs()}"
        yield served
    finally:
        api.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(EXIT_DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        managed_orthanc(load_config(config_path, environ=EXAMPLE_DEVICES)).stop()
        ehr.stop()
        accounting.stop()


@pytest.fixture(scope="module")
def answered(served):
    """One case through its life: order via `telederm hl7 send`, photo, READY, report, ORU+DFT."""
    folder = served.config_path.parent
    sent = served.hl7_send(order_file(folder, "SRV-ORD-1", "PL-SRV-1"))
    served.facts["hl7_send"] = sent
    assert sent.returncode == 0, sent.stderr
    case = served.case("PL-SRV-1")
    served.facts["opened"] = case
    accession = case["accession"]
    r = served.api.post(f"/api/cases/{accession}/images",
                        files={"file": ("lesion.jpg", demo_photo(True), "image/jpeg")},
                        data={"kind": "photo", "site": "66643007", "laterality": "L"})
    assert r.status_code == 201, r.text
    wait_until(lambda: served.api.get(f"/api/cases/{accession}").json()["status"] == "READY",
               CASE_DEADLINE, "the case to be READY")
    r = served.api.post(f"/api/cases/{accession}/report", json={
        "text": "Naevus bénin.\nSurveillance annuelle.", "conduct": "no_visit",
        "specialist": {"id": "810001234567", "name": "LEROY^Claire"}})
    assert r.status_code == 201, r.text
    wait_until(lambda: served.ehr.messages and served.accounting.messages, CASE_DEADLINE,
               "the ORU at the EHR and the DFT at accounting")
    wait_until(lambda: served.api.get("/api/stats").json()["outbox"]["pending"] == 0, CASE_DEADLINE,
               "the outbox to drain")
    served.facts["answered"] = served.api.get(f"/api/cases/{accession}").json()
    return accession


@pytest.fixture(scope="module")
def import_cases(served, answered):
    """Two more orders, sent in one `telederm hl7 send` call, left OPEN for `telederm import`."""
    folder = served.config_path.parent
    sent = served.hl7_send(order_file(folder, "SRV-ORD-2", "PL-IMP-1"),
                           order_file(folder, "SRV-ORD-3", "PL-IMP-2"))
    served.facts["hl7_send_two"] = sent
    assert sent.returncode == 0, sent.stderr
    return served.case("PL-IMP-1")["accession"], served.case("PL-IMP-2")["accession"]


@pytest.fixture(scope="module")
def stopped(served, answered, import_cases):
    """SIGTERM to the serve process; what it left behind: exit code, the Orthanc it ran."""
    pid_file = served.data_dir / "orthanc" / "orthanc.pid"
    orthanc_pid = int(pid_file.read_text().strip())
    assert process_alive(orthanc_pid)
    served.proc.send_signal(signal.SIGTERM)
    try:
        code = served.proc.wait(EXIT_DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve did not exit within {EXIT_DEADLINE} s of SIGTERM:\n{served.logs()}")
    return {"code": code, "orthanc_pid": orthanc_pid, "pid_file": pid_file}


# --- while serving --------------------------------------------------------------------------

def test_serve_announces_its_listeners_when_started(served):
    first = served.stdout_path.read_text().splitlines()[0]
    assert first.startswith("telederm: serving HL7 on ")
    assert f"127.0.0.1:{served.hl7_port}" in first and f"127.0.0.1:{served.http_port}" in first


def test_hl7_send_prints_an_aa_line_when_serve_accepts_the_order(served, answered):
    sent = served.facts["hl7_send"]
    (line,) = sent.stdout.splitlines()
    assert line.startswith(f"{served.config_path.parent / 'SRV-ORD-1.hl7'}: AA SRV-ORD-1")
    assert sent.stderr == ""


def test_hl7_send_prints_one_ack_per_file_when_given_two_orders(served, import_cases):
    lines = served.facts["hl7_send_two"].stdout.splitlines()
    assert [line.split(": ", 1)[1].split()[:2] for line in lines] == [["AA", "SRV-ORD-2"],
                                                                      ["AA", "SRV-ORD-3"]]


def test_cases_api_lists_the_order_when_hl7_send_delivered_it(served, answered):
    case = served.facts["opened"]
    assert case["status"] == "OPEN" and case["placer_order_number"] == "PL-SRV-1"
    assert case["patient"]["name"] == "DUPONT^Hélène"
    assert case["accession"] and case["study_instance_uid"]


def test_peers_receive_the_oru_and_the_dft_when_the_report_is_posted(served, answered):
    assert served.facts["answered"]["status"] == "ANSWERED"
    oru_types = [str(m.segment("MSH")[9]) for m in served.ehr.parsed()]
    dft_types = [str(m.segment("MSH")[9]) for m in served.accounting.parsed()]
    assert oru_types == ["ORU^R01^ORU_R01"]
    assert dft_types == ["DFT^P03^DFT_P03"]
    (oru,) = served.ehr.parsed()
    assert str(oru.segment("OBR")[3]) == answered


# --- after SIGTERM --------------------------------------------------------------------------

def test_serve_exits_0_and_stops_its_orthanc_when_sent_sigterm(served, stopped):
    assert stopped["code"] == 0, served.logs()
    wait_until(lambda: not process_alive(stopped["orthanc_pid"]), EXIT_DEADLINE,
               "the managed Orthanc to be gone")
    assert not stopped["pid_file"].exists()
    status = telederm("orthanc", "status", "--config", served.config_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["running"] is False
    assert "Traceback" not in served.stderr_path.read_text(), served.logs()


def test_audit_is_intact_and_stats_count_one_answered_case_when_serve_has_stopped(served, stopped):
    verify = telederm("audit", "verify", "--config", served.config_path)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("audit chain intact: ")
    assert int(verify.stdout.split(": ")[1].split()[0]) > 0
    result = telederm("stats", "--config", served.config_path)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["cases"]["by_status"]["ANSWERED"] == 1
    assert stats["cases"]["opened"] == 3  # the answered case and the two import cases
    assert stats["outbox"]["dead"] == 0


def test_import_attaches_every_jpeg_with_a_progress_bar_when_serve_has_stopped(
        served, stopped, import_cases, tmp_path):
    accession = import_cases[0]
    for i in range(3):
        (tmp_path / f"img{i}.jpg").write_bytes(jpeg(100 + 40 * i))
    # As on a terminal (rich's TTY_COMPATIBLE): the bar with counts and a rate, on stderr.
    result = telederm("import", tmp_path, "--accession", accession, "--config",
                      served.config_path, env=clean_env(TTY_COMPATIBLE="1"))
    assert result.returncode == 0, result.stderr
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stderr)
    bar = [line for line in drawn.splitlines() if line.startswith("import ")][-1]
    assert " 3/3 " in bar and "100%" in bar and "/s" in bar, bar
    assert result.stdout.rstrip().endswith(f"imported 3 of 3 file(s) into {accession}")
    assert db_count(served.data_dir, "SELECT count(*) FROM images WHERE accession = ?", accession) == 3
    assert len(list((served.data_dir / "images" / accession).glob("*.dcm"))) == 3
    # prepared ahead in threads, numbered in the folder's order all the same
    by_number = {}
    for stored in (served.data_dir / "images" / accession).glob("*.dcm"):
        ds = dcmread(stored)
        by_number[ds.InstanceNumber] = ds.private_block(0x0011, "TELEDERM 1.0")[0x01].value
    assert by_number == {i + 1: hashlib.sha256((tmp_path / f"img{i}.jpg").read_bytes()).hexdigest()
                         for i in range(3)}
    assert db_count(served.data_dir, "SELECT count(*) FROM outbox WHERE kind = 'archive.store' "
                    "AND accession = ?", accession) == 3
    verify = telederm("audit", "verify", "--config", served.config_path)
    assert verify.returncode == 0 and verify.stdout.startswith("audit chain intact"), verify.stderr


def test_import_adds_nothing_when_the_same_folder_is_imported_again(
        served, stopped, import_cases, tmp_path):
    accession = import_cases[0]
    (tmp_path / "again.jpg").write_bytes(jpeg(77))
    args = ("import", tmp_path, "--accession", accession, "--config", served.config_path)
    assert telederm(*args).returncode == 0
    before = db_count(served.data_dir, "SELECT count(*) FROM images WHERE accession = ?", accession)
    result = telederm(*args)
    assert result.returncode == 0, result.stderr
    assert db_count(served.data_dir, "SELECT count(*) FROM images WHERE accession = ?", accession) == before


def test_import_exits_1_naming_the_bad_file_when_the_folder_holds_a_non_jpeg(
        served, stopped, import_cases, tmp_path):
    accession = import_cases[1]
    (tmp_path / "good1.jpg").write_bytes(jpeg(60))
    (tmp_path / "good2.jpg").write_bytes(jpeg(90))
    (tmp_path / "scan.jpg").write_text("this is not an image\n")
    result = telederm("import", tmp_path, "--accession", accession, "--config", served.config_path)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line]
    assert len(errors) == 1 and errors[0].startswith("telederm: ") and "scan.jpg" in errors[0]
    assert result.stdout.rstrip().endswith(f"imported 2 of 3 file(s) into {accession}")
    assert db_count(served.data_dir, "SELECT count(*) FROM images WHERE accession = ?", accession) == 2


def test_import_exits_2_with_one_line_when_the_case_is_already_answered(
        served, stopped, answered, tmp_path):
    (tmp_path / "late.jpg").write_bytes(jpeg(33))
    result = telederm("import", tmp_path, "--accession", answered, "--config", served.config_path)
    assert "ANSWERED" in one_error_line(result, 2)


# --- a serve that cannot start ----------------------------------------------------------------

@pytest.fixture
def taken_port_config(tmp_path):
    """A config whose http or hl7 listen port is held by another socket; any Orthanc that a
    failing serve leaves behind is stopped at teardown."""
    config_path = write_config(tmp_path / "telederm.toml", tmp_path / "data")
    holders: list[socket.socket] = []

    def hold(key: str) -> int:
        config = load_config(config_path, environ=EXAMPLE_DEVICES)
        port = int((config.http.listen if key == "http" else config.hl7.listen).rsplit(":", 1)[1])
        holder = socket.socket()
        holder.bind(("127.0.0.1", port))
        holder.listen()
        holders.append(holder)
        return port

    yield config_path, hold
    for holder in holders:
        holder.close()
    managed_orthanc(load_config(config_path, environ=EXAMPLE_DEVICES)).stop()


@pytest.mark.parametrize("key", ["http", "hl7"])
def test_serve_exits_1_and_leaves_no_orthanc_running_when_a_listen_port_is_taken(
        taken_port_config, key):
    config_path, hold = taken_port_config
    hold(key)
    result = telederm("serve", "--config", config_path)
    assert result.returncode == 1, (result.stdout, result.stderr)
    status = telederm("orthanc", "status", "--config", config_path)
    assert json.loads(status.stdout)["running"] is False


@pytest.mark.parametrize("key", ["http", "hl7"])
def test_serve_says_which_port_is_taken_in_one_line_when_a_listen_port_is_taken(
        taken_port_config, key):
    config_path, hold = taken_port_config
    port = hold(key)
    line = one_error_line(telederm("serve", "--config", config_path), 1)
    assert str(port) in line and f"{key}.listen" in line
