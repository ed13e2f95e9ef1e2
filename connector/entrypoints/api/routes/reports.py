"""The dermatologist's answer: `POST /api/cases/{accession}/report`, `.../report/correct` and
`.../report/withdraw`;
the signed PDF of a version: `GET /api/cases/{accession}/report.pdf?version=N`, where a report
message sent by reference (OBX RP) points the requester."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from ....bootstrap import Services
from ....domain.errors import NotFound, NotPermitted
from ....domain.model import MAX_REASON, PersonName, practitioner_by_id, reason_text
from ....workflow import assign_case, record_report, withdraw_report
from ....workflow.commands import RecordReport, WithdrawReport
from ..auth import Principal, on_case
from ..deps import services

router = APIRouter()


class SpecialistIn(BaseModel):
    id: str = Field(min_length=1, max_length=64, description="IdNatPS (France) or local id")
    name: str = Field(min_length=1, max_length=200, description="FAMILY^GIVEN")


class ReportIn(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)
    conduct: str = Field(min_length=1, max_length=40, description="code from mappings/conducts.toml")
    specialist: SpecialistIn


class CorrectionIn(ReportIn):
    reason: str = Field(min_length=1, max_length=MAX_REASON,
                        description="why the answer is corrected (kept in the audit trail, "
                                    "sent in MDM^T10)")


class WithdrawIn(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_REASON,
                        description="why the report is withdrawn (kept in the audit trail)")


@router.post("/api/cases/{accession}/report", status_code=201)
def post_report(accession: str, body: ReportIn, who: Principal = Depends(on_case("specialist")),
                svc: Services = Depends(services)):
    with svc.unit() as uow:
        _answerer(uow, accession, who, body)
        got = record_report.handle(RecordReport(accession, body.text, body.conduct,
                                                _specialist(body, who, svc), who.actor), uow)
    return _recorded(got)


@router.post("/api/cases/{accession}/report/correct", status_code=201)
def correct(accession: str, body: CorrectionIn, who: Principal = Depends(on_case("specialist")),
            svc: Services = Depends(services)):
    """Correct an answered case: a new version (status C) with a new signed PDF, a new
    Encapsulated PDF referencing the one it replaces, an ORU with OBX-11 C (or MDM^T10), and
    no new charge. A case not answered yet is 409: it takes a report first."""
    reason = reason_text(body.reason, hint="say why the answer is corrected")
    with svc.unit() as uow:
        _answerer(uow, accession, who, body)
        got = record_report.handle(RecordReport(accession, body.text, body.conduct,
                                                _specialist(body, who, svc), who.actor,
                                                correction=True, reason=reason), uow)
    return _recorded(got)


def _answerer(uow, accession: str, who: Principal, body: ReportIn | None) -> None:
    """A specialist answers only a case not assigned to another member (409 otherwise): they
    are the token's practitioner, else the one the body names. Admins answer any."""
    if who.role == "specialist":
        acting = who.practitioner_id or (body.specialist.id if body is not None else "")
        assign_case.ensure_answerer(uow, accession, acting)


def _specialist(body: ReportIn, who: Principal, svc: Services):
    """Who signs: the practitioner the body names, which must be the one a specialist's token
    is bound to (`practitioner_id`): a token cannot sign as another dermatologist."""
    bound = who.practitioner_id if who.role == "specialist" else ""
    if bound and body.specialist.id != bound:
        raise NotPermitted(f"this token signs as practitioner {bound}, not as the one "
                           "specialist.id names", where="specialist.id",
                           hint="send the token's own practitioner id, or answer with the "
                                "named practitioner's own token")
    return practitioner_by_id(body.specialist.id, PersonName.parse(body.specialist.name),
                              idnatps_authority=svc.mappings.orm.identity.idnatps_authority)


def _recorded(got) -> dict:
    return {"accession": got.accession, "status": got.status, "version": got.version,
            "digest": got.digest, "oru_control_id": got.oru_control_id,
            "dft_control_id": got.dft_control_id}


@router.post("/api/cases/{accession}/report/withdraw")
def withdraw(accession: str, body: WithdrawIn, who: Principal = Depends(on_case("specialist")),
             svc: Services = Depends(services)):
    """Withdraw the final answer: the case goes back to IN_REVIEW, the requester gets an ORU
    with OBX-11 D, and what the act charged is credited (CD) to the accounting feed."""
    with svc.unit() as uow:
        _answerer(uow, accession, who, None)
        got = withdraw_report.handle(WithdrawReport(accession, body.reason, who.actor), uow)
    return {"accession": got.accession, "status": got.status, "version": got.version,
            "oru_control_id": got.oru_control_id, "dft_control_id": got.dft_control_id,
            "credits": got.credits}


@router.get("/api/cases/{accession}/report.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def report_pdf(accession: str, version: int | None = Query(None, ge=1, description=(
                   "the report version (the number the report message carries); default: "
                   "the latest")),
               who: Principal = Depends(on_case("requester", "specialist")),
               svc: Services = Depends(services)):
    """The report version's PDF exactly as signed (the bytes an embedded ED would carry). Each
    fetch is audited: it discloses a patient's medical document."""
    with svc.unit() as uow:
        found = uow.reports.pdf(accession, version)
        if found is None:
            raise NotFound(f"case {accession} has no report version {version or ''}".rstrip(),
                           where="version" if version else "accession",
                           hint="the version is the one the report message named")
        uow.audit.append(at=uow.moment.iso, actor=who.actor, action="report.pdf_read",
                         accession=accession, detail={"version": found[0]})
    return Response(found[1], media_type="application/pdf",
                    headers={"Content-Disposition":
                             f'inline; filename="{accession}-v{found[0]}.pdf"'})
