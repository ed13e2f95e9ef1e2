"""A stable study whose plugin notification was lost still makes its case READY, through the
Changes Log catch-up; the cursor is saved so nothing is processed twice."""

from dataclasses import replace

from conftest import orthanc  # noqa: F401  (fixture)

from connector.archive.client import ArchiveClient
from connector.config import load_config
from connector.demo import demo_photo, wait_for
from connector.domain.model import Order, Patient, PersonName, Practitioner
from connector.store import cases
from connector.store.clock import iso
from connector.workflow import attach_image, catch_up, open_case, worker
from connector.workflow.bootstrap import build


def test_catch_up_marks_the_case_ready_when_the_notification_was_lost(orthanc, tmp_path):
    config = replace(load_config(None, environ={"TELEDERM_DATA_DIR": str(tmp_path)}),
                     orthanc_url=orthanc.url)
    services = build(config)
    services.archive = ArchiveClient(orthanc.url, orthanc.username, orthanc.password)
    order = Order(sender="EHR|CHU", placer_order_number="CATCH-1",
                  patient=Patient("IPP-CATCH", PersonName("MARTIN", "Luc")),
                  requester=Practitioner("801234567897", PersonName("DOC", "Jean")),
                  question="Lésion ?")
    with services.engine.begin() as conn:
        case = open_case.handle(conn, order, now=iso(services.now()), actor="test")
    attach_image.handle(services, case.accession, demo_photo(False), actor="test")
    wait_for(lambda: worker.run_once(services) == 0, 30, "the image to be stored")
    assert orthanc.client.find_study(case.study_uid) is not None

    # The plugin's notification went to a URL where nothing listens; the Changes Log has it.
    wait_for(lambda: catch_up.run_once(services) > 0, 30, "a StableStudy change")
    with services.engine.connect() as conn:
        assert cases.load(conn, case.accession).status.value == "READY"
    assert catch_up.run_once(services) == 0  # the cursor moved past it
    services.engine.dispose()
