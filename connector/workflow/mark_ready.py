"""Step 3: the archive reports the study stable; once all our images are archived the case is
READY for the dermatologist, requesters that take order status messages are told the work
has started (SC/IP, `notify_status`), and the study is queued for the hospital PACS that take
it at this moment (`[[dicom.forward]] when = "ready"`, `forward_study`)."""

from __future__ import annotations

from ..domain.errors import StateConflict
from ..domain.states import CaseEvent, CaseStatus
from ..store.uow import UnitOfWork
from . import forward_study, notify_status
from .commands import MarkReady


def handle(cmd: MarkReady, uow: UnitOfWork) -> str | None:
    """Returns the case's new status, or None when the study is not one of ours."""
    now = uow.moment.iso
    accession = uow.cases.accession_for_study(cmd.study_uid)
    if accession is None:
        return None
    case = uow.cases.load(accession)
    if uow.images.waiting(accession):
        return case.status.value
    try:
        case.apply(CaseEvent.IMAGES_STABLE)
    except StateConflict:
        return case.status.value  # e.g. cancelled meanwhile: nothing to do
    uow.cases.save_status(case, now)
    uow.audit.append(at=now, actor=cmd.actor, action="case.images_stable", accession=accession)
    if case.status is CaseStatus.READY:  # not an answered case getting late images
        notify_status.in_progress(uow, case)  # SC/IP, once per case
        forward_study.ready(uow, case)
    return case.status.value
