"""The connector's services built in-process on a real SQLite file in a test's folder, and
what their absent archive would say about a case (`archive_holds`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from connector.config import Destination, load_config
from connector.bootstrap import Services, build
from connector.domain.moment import iso
from connector.domain.states import CaseEvent, CaseStatus
from connector.store import cases
from connector.store.schema import images
from connector.workflow import mark_ready
from connector.workflow.commands import MarkReady
from tests.support.net import unused_url
from tests.support.cli import EXAMPLE_DEVICES


def make_services(data: Path, destinations: tuple[Destination, ...]) -> Services:
    """Services with their data folder in `data`, sending to `destinations`; the archive URL
    is one where nothing listens, so archive jobs stay queued."""
    base = load_config(None, environ={**EXAMPLE_DEVICES, 
        "TELEDERM_DATA_DIR": str(data), "TELEDERM_ORTHANC_URL": unused_url(),
        "TELEDERM_FACILITY_NAME": "TELEDERM_TEST"})
    return build(base.model_copy(update={"destinations": destinations}))


def archive_holds(services: Services, accession: str) -> str:
    """Bring an open case to READY, as the archive would once it holds its images, for tests
    whose archive is not there: each image is marked stored, and the study's stable event runs
    the real step (`mark_ready`). A case without images is first given one in its status, as
    an upload would. Returns the case's new status."""
    with services.store.engine.begin() as conn:
        case = cases.load(conn, accession)
        if case.status is CaseStatus.OPEN:
            case.apply(CaseEvent.IMAGE_RECEIVED)
            cases.save_status(conn, case, iso(services.now()))
        conn.execute(update(images).where(images.c.accession == accession,
                                          images.c.archived_at.is_(None))
                     .values(archived_at=iso(services.now())))
    with services.unit() as uow:
        return mark_ready.handle(MarkReady(case.study_uid, "test"), uow)
