"""Routes for the managed Orthanc's plugin (device token): the stable-study notification and
the case context its panel shows (the plugin never reads our database)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ....bootstrap import Services
from ....domain.errors import NotFound
from ....workflow import mark_ready
from ....workflow.commands import MarkReady
from ..auth import Principal, require
from ..deps import services

router = APIRouter()


# Orthanc's resource ids: the SHA-1 of the DICOM UIDs, as five groups of eight hex digits.
ORTHANC_ID = r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$"
DICOM_UID = r"^[0-9]+(\.[0-9]+)*$"


class StableStudyIn(BaseModel):
    """The plugin's notification. The ids are checked (422 otherwise): the Orthanc id goes
    into a URL that the connector fetches with its own credentials, so a path such as
    `../system` must never reach it."""

    change: str = Field(max_length=64)
    orthanc_id: str = Field(pattern=ORTHANC_ID)
    study_uid: str | None = Field(None, max_length=64, pattern=DICOM_UID)


@router.post("/api/internal/orthanc/stable-study")
def stable_study(body: StableStudyIn, who: Principal = Depends(require("device")),
                 svc: Services = Depends(services)):
    try:
        study_uid = body.study_uid or svc.archive.study_uid(body.orthanc_id)
    except NotFound:  # Orthanc's own 404; its URL stays out of the answer
        raise NotFound(f"no study {body.orthanc_id} in the archive", where="orthanc_id",
                       hint="the study was deleted from Orthanc after it became stable"
                       ) from None
    with svc.unit() as uow:
        status = mark_ready.handle(MarkReady(study_uid, who.actor), uow)
    return {"study_uid": study_uid, "case_status": status}


@router.get("/api/internal/orthanc/studies/{study_uid}/context")
def study_context(study_uid: str, _: Principal = Depends(require("device")),
                  svc: Services = Depends(services)):
    """The case of a study, for the Orthanc plugin's panel and its JSON route: see
    `queries.study_context`."""
    with svc.reading() as uow:
        context = uow.queries.study_context(study_uid, svc.mappings.sites)
    if context is None:
        raise NotFound(f"no case has study {study_uid}", where="study_uid",
                       hint="the study was not made by a tele-expertise request")
    return context
