"""The managed Orthanc, its TeleDerm plugin and the archive client, against a real Orthanc 1.10."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from connector.archive.errors import ArchiveError, ArchiveRejected, ArchiveUnavailable
from connector.archive.managed import PLUGIN_SCRIPT, ManagedOrthanc
from connector.ports import free_port
from tests.support.dicom_samples import secondary_capture
from tests.support.wait import wait_until

REPO_ROOT = Path(__file__).resolve().parents[3]


class ConnectorStandIn:
    """A real HTTP server on a free loopback port that records what the plugin POSTs to it."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def connector_stand_in():
    stand_in = ConnectorStandIn()
    yield stand_in
    stand_in.close()


def plugin_status(orthanc) -> dict:
    response = httpx.get(f"{orthanc.url}/telederm/status", auth=(orthanc.username, orthanc.password))
    response.raise_for_status()
    return response.json()


def test_lifecycle_over_a_stale_pid_file_then_stop_from_another_process(orthanc_factory, tmp_path):
    exited = subprocess.Popen(["true"])
    exited.wait()
    (tmp_path / "orthanc.pid").write_text(f"{exited.pid}\n")

    running = orthanc_factory(folder=tmp_path)
    managed = running.managed

    config = json.loads(managed.config_path.read_text())
    assert config["RemoteAccessAllowed"] is False and config["AuthenticationEnabled"] is True
    assert config["StorageDirectory"] == config["IndexDirectory"] == "db"
    assert config["PythonScript"] == str(PLUGIN_SCRIPT) and PLUGIN_SCRIPT.is_file()
    assert all(Path(plugin).is_absolute() and Path(plugin).is_file() for plugin in config["Plugins"])
    assert config["TeleDerm"]["SitePackages"]
    assert (managed.folder / "db").is_dir()

    status = managed.status()
    assert status["running"] and status["version"] and status["url"] == running.url
    assert int(managed.pid_path.read_text()) == status["pid"] != exited.pid

    # `telederm orthanc stop` is a separate process that only knows the folder.
    stopper = (
        "from pathlib import Path; from connector.archive.managed import ManagedOrthanc; "
        f"print(ManagedOrthanc(Path({str(managed.folder)!r}), http_port={managed.http_port}, "
        f"dicom_port={managed.dicom_port}, username='x', password='y').stop())"
    )
    result = subprocess.run(
        [sys.executable, "-c", stopper], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "True", result.stderr
    assert "Orthanc has stopped" in managed.log_path.read_text()  # clean, not killed

    assert not managed.pid_path.exists()
    assert managed.status()["running"] is False
    assert managed.stop() is False
    # What the outbox sees while the archive is down: a retryable error.
    assert running.client.is_alive() is False
    with pytest.raises(ArchiveUnavailable):
        running.client.store(secondary_capture()[1])


def test_start_refuses_when_the_pid_file_names_a_live_orthanc(orthanc):
    pid = orthanc.managed.status()["pid"]
    twin = ManagedOrthanc(
        orthanc.managed.folder,
        http_port=orthanc.managed.http_port,
        dicom_port=orthanc.dicom_port,
        username=orthanc.username,
        password=orthanc.password,
    )
    with pytest.raises(ArchiveError, match="already running"):
        twin.start()
    assert orthanc.managed.status()["pid"] == pid and orthanc.client.is_alive()


def test_an_orthanc_whose_serve_is_gone_is_orphaned_and_one_without_owner_is_not(
        orthanc_factory):
    managed = orthanc_factory().managed
    assert managed.orphaned() is False  # `telederm orthanc start`: the operator's to stop
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    managed.claim(gone.pid)  # a serve killed before it could stop its Orthanc
    assert managed.orphaned() is True
    managed.claim(os.getpid())  # adopted by a live serve
    assert managed.orphaned() is False
    assert managed.stop() is True and not managed.owner_path.exists()


def test_start_refuses_when_a_port_is_taken(orthanc, tmp_path):
    other = ManagedOrthanc(
        tmp_path, http_port=orthanc.managed.http_port, dicom_port=orthanc.dicom_port + 1, username="u", password="p"
    )
    with pytest.raises(ArchiveError, match="already in use") as refused:
        other.start()
    assert refused.value.hint
    assert not other.pid_path.exists()


def test_start_failure_reports_the_log_gist_and_a_hint(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "index").write_text("not an SQLite database")
    managed = ManagedOrthanc(tmp_path, http_port=free_port(), dicom_port=free_port(), username="u", password="p")

    with pytest.raises(ArchiveError, match="SQLite") as failed:
        managed.start()

    assert "database" in failed.value.hint
    assert failed.value.where == str(managed.log_path)
    assert not managed.pid_path.exists()


def test_rest_api_requires_credentials(orthanc):
    assert httpx.get(f"{orthanc.url}/system").status_code == 401
    assert httpx.get(f"{orthanc.url}/system", auth=(orthanc.username, "wrong")).status_code == 401
    assert httpx.get(f"{orthanc.url}/system", auth=(orthanc.username, orthanc.password)).status_code == 200


def test_plugin_and_dicomweb_are_loaded(orthanc):
    status = plugin_status(orthanc)
    assert status["plugin_version"] and status["worker_alive"] is True
    assert status["pid"] == orthanc.managed.status()["pid"]

    studies = httpx.get(f"{orthanc.url}/dicom-web/studies", auth=(orthanc.username, orthanc.password))
    assert studies.status_code == 200
    assert isinstance(studies.json(), list)


def test_store_twice_keeps_one_instance_with_its_transfer_syntax(orthanc):
    ds, data = secondary_capture(accession="ACC-TWICE")

    first = orthanc.client.store(data)
    second = orthanc.client.store(data)

    assert first == second
    study_id = orthanc.client.find_study(ds.StudyInstanceUID)
    assert study_id and orthanc.client.study_uid(study_id) == ds.StudyInstanceUID
    assert orthanc.client.study_instances(ds.StudyInstanceUID) == [
        {
            "SOPClassUID": SecondaryCaptureImageStorage,
            "SOPInstanceUID": ds.SOPInstanceUID,
            "TransferSyntaxUID": ExplicitVRLittleEndian,
            "AccessionNumber": "ACC-TWICE",
            "Modality": "OT",
            "orthanc_id": first,
        }
    ]
    assert orthanc.client.explorer_url(ds.StudyInstanceUID) == (
        f"{orthanc.url}/app/explorer.html#study?uuid={study_id}"
    )


def test_find_study_returns_none_for_an_unknown_uid(orthanc):
    assert orthanc.client.find_study(generate_uid()) is None


def test_store_rejects_a_file_that_is_not_dicom(orthanc):
    with pytest.raises(ArchiveRejected):
        orthanc.client.store(b"this is not a DICOM file")


def test_stable_study_reaches_the_connector_with_the_bearer_token(orthanc_factory, connector_stand_in):
    running = orthanc_factory(connector_url=connector_stand_in.url, connector_token="s3cret")
    ds, data = secondary_capture()
    running.client.store(data)
    study_id = running.client.find_study(ds.StudyInstanceUID)

    notification = wait_until(lambda: connector_stand_in.received and connector_stand_in.received[0],
                              20, "the plugin's notification")

    assert notification["path"] == "/api/internal/orthanc/stable-study"
    assert notification["headers"]["Authorization"] == "Bearer s3cret"
    assert notification["json"] == {
        "change": "StableStudy",
        "orthanc_id": study_id,
        "study_uid": ds.StudyInstanceUID,
    }
    assert wait_until(lambda: plugin_status(running)["last_ok"], 20, "the plugin's last success")


def test_stable_study_is_dropped_without_blocking_when_the_connector_is_down(orthanc):
    dropped_before = plugin_status(orthanc)["dropped"]
    orthanc.client.store(secondary_capture()[1])

    status = wait_until(lambda: (s := plugin_status(orthanc))["dropped"] > dropped_before and s,
                        20, "the plugin to drop the notification")

    assert status["last_error_text"] and status["queue_length"] == 0
    assert orthanc.client.is_alive()
