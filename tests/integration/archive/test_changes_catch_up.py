"""A stable study whose plugin notification was lost still makes its case READY, through the
Changes Log catch-up; the cursor is saved so nothing is processed twice."""

import threading

from connector.archive.client import ArchiveClient
from connector.config import load_config
from connector.demo import demo_photo
from connector.domain.model import Order, Patient, PersonName, Practitioner
from connector.runtime import catch_up, worker
from connector.store import cases
from connector.workflow import attach_image, open_case
from connector.workflow.commands import AttachImage, OpenCase
from connector.bootstrap import build
from tests.support.net import unused_url
from tests.support.wait import wait_until
from tests.support.cli import EXAMPLE_DEVICES


def test_catch_up_marks_the_case_ready_when_the_notification_was_lost(orthanc, tmp_path):
    config = load_config(None, environ={**EXAMPLE_DEVICES, "TELEDERM_DATA_DIR": str(tmp_path),
                                        "TELEDERM_ORTHANC_URL": orthanc.url})
    services = build(config)
    services.archive = ArchiveClient(orthanc.url, orthanc.username, orthanc.password)
    order = Order(sender="EHR|CHU", placer_order_number="CATCH-1",
                  patient=Patient("IPP-CATCH", PersonName("MARTIN", "Luc")),
                  requester=Practitioner("801234567897", PersonName("DOC", "Jean")),
                  question="Lésion ?")
    with services.unit() as uow:
        case = open_case.handle(OpenCase(order, "test"), uow)
    attach_image.attach(services, [AttachImage(case.accession, demo_photo(False), "test")])
    wait_until(lambda: worker.run_once(services) == 0, 30, "the image to be stored")
    assert orthanc.client.find_study(case.study_uid) is not None

    # The plugin's notification went to a URL where nothing listens; the Changes Log has it.
    wait_until(lambda: catch_up.run_once(services) > 0, 30, "a StableStudy change")
    with services.store.engine.connect() as conn:
        assert cases.load(conn, case.accession).status.value == "READY"
    assert catch_up.run_once(services) == 0  # the cursor moved past it
    services.store.close()


def test_an_unreachable_orthanc_is_logged_once_per_outage_not_every_sweep(tmp_path, caplog,
                                                                         monkeypatch):
    config = load_config(None, environ={**EXAMPLE_DEVICES, "TELEDERM_DATA_DIR": str(tmp_path),
                                        "TELEDERM_ORTHANC_URL": unused_url()})
    services = build(config)
    monkeypatch.setattr(worker, "CATCH_UP_SECONDS", 0.01)
    caplog.set_level("DEBUG", logger="connector.worker")
    stop = threading.Event()
    runner = threading.Thread(target=worker.run_forever, args=(services, stop))
    runner.start()
    wait_until(lambda: len([r for r in caplog.records if "catch-up failed" in r.getMessage()]) >= 3,
               60, "three catch-up sweeps")
    stop.set()
    runner.join(30)
    services.store.close()
    failed = [r for r in caplog.records if "catch-up failed" in r.getMessage()]
    assert [r.levelname for r in failed[:3]] == ["WARNING", "DEBUG", "DEBUG"]
