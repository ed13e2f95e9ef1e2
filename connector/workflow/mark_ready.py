"""Step 3: the archive reports the study stable; once all our images are archived the case is
READY for the dermatologist, and requesters that take order status messages are told the work
has started (SC/IP, `notify_status`)."""

from __future__ import annotations

from sqlalchemy import func, select

from ..domain.errors import StateConflict
from ..domain.states import CaseEvent, CaseStatus
from ..store import audit, cases
from ..domain.moment import iso
from ..store.schema import images
from . import notify_status
from ..bootstrap import Services


def handle(services: Services, study_uid: str, *, actor: str) -> str | None:
    """Returns the case's new status, or None when the study is not one of ours."""
    now = iso(services.now())
    with services.engine.begin() as conn:
        accession = cases.accession_for_study(conn, study_uid)
        if accession is None:
            return None
        case = cases.load(conn, accession)
        waiting = conn.execute(select(func.count()).select_from(images).where(
            images.c.accession == accession, images.c.archived_at.is_(None))).scalar()
        if waiting:
            return case.status.value
        try:
            case.apply(CaseEvent.IMAGES_STABLE)
        except StateConflict:
            return case.status.value  # e.g. cancelled meanwhile: nothing to do
        cases.save_status(conn, case, now)
        audit.append(conn, at=now, actor=actor, action="case.images_stable", accession=accession)
        if case.status is CaseStatus.READY:  # not an answered case getting late images
            notify_status.in_progress(conn, services, case, now=now)  # SC/IP, once per case
        return case.status.value
