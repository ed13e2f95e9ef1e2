"""Routes for the managed Orthanc's plugin (device token): the stable-study notification."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from ....bootstrap import Services
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
