"""Routes for the managed Orthanc's plugin (device token): the stable-study notification and
the case context its panel shows (the plugin never reads our database)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from ....bootstrap import Services
from ....domain.errors import NotFound
from ....workflow import mark_ready
from ....workflow.commands import MarkReady
from ..auth import Principal, require
from ..deps import services

router = APIRouter()


class StableStudyIn(BaseModel):
    change: str
    orthanc_id: str
    study_uid: str | None = None


@router.post("/api/internal/orthanc/stable-study")
def stable_study(body: StableStudyIn, who: Principal = Depends(require("device")),
                 svc: Services = Depends(services)):
    study_uid = body.study_uid or svc.archive.study_uid(body.orthanc_id)
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
