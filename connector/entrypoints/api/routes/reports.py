"""The dermatologist's answer: `POST /api/cases/{accession}/report` and `.../report/withdraw`."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ....bootstrap import Services
from ....domain.model import MAX_REASON, PersonName, Practitioner
from ....workflow import record_report, withdraw_report
from ....workflow.commands import RecordReport, WithdrawReport
from ..auth import Principal, require
from ..deps import services

router = APIRouter()


class SpecialistIn(BaseModel):
    id: str = Field(min_length=1, max_length=64, description="IdNatPS (France) or local id")
    name: str = Field(min_length=1, max_length=200, description="FAMILY^GIVEN")


class ReportIn(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)
    conduct: str = Field(min_length=1, max_length=40, description="code from mappings/conducts.toml")
    specialist: SpecialistIn


class WithdrawIn(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_REASON,
                        description="why the report is withdrawn (kept in the audit trail)")


@router.post("/api/cases/{accession}/report", status_code=201)
def post_report(accession: str, body: ReportIn, who: Principal = Depends(require("specialist")),
                svc: Services = Depends(services)):
    specialist = Practitioner(body.specialist.id, PersonName.parse(body.specialist.name))
    with svc.unit() as uow:
        got = record_report.handle(RecordReport(accession, body.text, body.conduct, specialist,
                                                who.actor), uow)
    return {"accession": got.accession, "status": got.status, "version": got.version,
            "digest": got.digest, "oru_control_id": got.oru_control_id,
            "dft_control_id": got.dft_control_id}


@router.post("/api/cases/{accession}/report/withdraw")
def withdraw(accession: str, body: WithdrawIn, who: Principal = Depends(require("specialist")),
             svc: Services = Depends(services)):
    """Withdraw the final answer: the case goes back to IN_REVIEW, the requester gets an ORU
    with OBX-11 D, and what the act charged is credited (CD) to the accounting feed."""
    with svc.unit() as uow:
        got = withdraw_report.handle(WithdrawReport(accession, body.reason, who.actor), uow)
    return {"accession": got.accession, "status": got.status, "version": got.version,
            "oru_control_id": got.oru_control_id, "dft_control_id": got.dft_control_id,
            "credits": got.credits}
