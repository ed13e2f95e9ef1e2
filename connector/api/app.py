"""Routes. Each builds a workflow call from the request and renders its result."""

from __future__ import annotations

from fastapi import Depends, FastAPI, File, Form, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from starlette.exceptions import HTTPException

from .. import __version__
from ..dicom.limits import TOO_LARGE
from ..domain.errors import ConnectorError, ImageError, NotFound, StateConflict
from ..domain.model import MAX_REASON, PersonName, Practitioner
from ..domain.states import CaseEvent, next_status
from ..store import cases, queries
from ..store.schema import images
from ..workflow import attach_image, mark_ready, record_report, refuse_order, withdraw_report
from ..workflow.bootstrap import Services
from . import errors
from .auth import Principal, require, token_table
from .guard import MIB, HttpLimits, RequestGuard

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


class RefuseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_REASON,
                        description="why the request is declined or cancelled: the requester "
                                    "reads it (ORC-16 of the OC order status)")


class StableStudyIn(BaseModel):
    change: str
    orthanc_id: str
    study_uid: str | None = None


def create_app(services: Services, *, limits: HttpLimits | None = None) -> FastAPI:
    limits = limits or HttpLimits()
    app = FastAPI(title="TeleDerm Connector", version=__version__)
    app.state.services = services
    app.state.tokens = token_table(services)
    app.add_middleware(RequestGuard, limits=limits,
                       upload_limit=services.config.images_max_mb * MIB
                       + limits.upload_overhead_bytes)
    app.add_exception_handler(ConnectorError, errors.connector_error)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(HTTPException, errors.http_error)
    reader = require("requester", "specialist", "device")

    @app.get("/api/health")
    def health():
        """`status` "ok" while the service answers; for monitoring: queue depths and the
        oldest pending item, dead letters, each destination's last success and last failure,
        the inbox backlog, Orthanc reachability, and `problems` (what needs an operator; empty
        when all is well)."""
        reachable = services.archive.is_alive()
        with services.engine.connect() as conn:
            report = queries.health(conn, reachable)
        return {"status": "ok", "version": __version__, **report}

    @app.get("/api/stats")
    def stats(_: Principal = Depends(reader)):
        with services.engine.connect() as conn:
            return queries.stats(conn)

    @app.get("/api/cases")
    def list_cases(status: str | None = None, priority: str | None = None,
                   placer_order_number: str | None = None, patient_id: str | None = None,
                   limit: int = Query(100, ge=1, le=1000),
                   sort: str = Query("created", pattern="^(created|triage)$",
                                     description="created: newest first; triage: most "
                                                 "urgent first (level, score, priority, "
                                                 "oldest)"),
                   _: Principal = Depends(reader)):
        with services.engine.connect() as conn:
            return queries.list_cases(conn, status=status, priority=priority,
                                      placer_order_number=placer_order_number,
                                      patient_id=patient_id, limit=limit, sort=sort)

    @app.get("/api/cases/{accession}")
    def get_case(accession: str, _: Principal = Depends(reader)):
        with services.engine.connect() as conn:
            case = queries.case_detail(conn, accession)
        if case is None:
            raise NotFound(f"no case with accession {accession}", where="accession",
                           hint="list cases with GET /api/cases")
        return case

    @app.post("/api/cases/{accession}/images", status_code=201)
    def post_images(accession: str, file: list[UploadFile] = File(...),
                    kind: str = Form("photo"), site: str = Form(""), laterality: str = Form(""),
                    description: str = Form(""), device: str = Form(""),
                    tracking_id: str = Form(""),
                    who: Principal = Depends(require("requester", "device", "specialist"))):
        """All the files or none: each is read and checked, then all are recorded in one
        transaction, so a refusal (which names the file) leaves nothing stored."""
        max_mb = services.config.images_max_mb
        with services.engine.connect() as conn:
            case = cases.load(conn, accession)
            number = conn.execute(select(func.count()).select_from(images).where(
                images.c.accession == accession)).scalar()
        files = []
        for index, upload in enumerate(file):
            data = upload.file.read(max_mb * MIB + 1)  # never more than the limit in memory
            if len(data) > max_mb * MIB:
                raise _for_file(ImageError(
                    f"the image file is larger than the {max_mb} MiB limit", where="image",
                    code=TOO_LARGE, hint="send a smaller export of the photo "
                                         "(phones: 'most compatible')"), index, len(file))
            files.append(data)
        try:
            next_status(case.status, CaseEvent.IMAGE_RECEIVED)
        except StateConflict:  # closed, unless this repeats an upload whose answer was lost
            with services.engine.connect() as conn:
                known = [attach_image.attached(conn, case, data, kind) for data in files]
            if not all(known):
                raise
            return {"accession": accession, "images": _image_results(known)}
        prepared = []
        for index, data in enumerate(files):
            try:
                prepared.append(attach_image.prepare(
                    services, case, data, number=number + index + 1, kind=kind, site=site,
                    laterality=laterality, description=description, device=device,
                    tracking_id=tracking_id))
            except ImageError as exc:
                raise _for_file(exc, index, len(files)) from None
        with services.engine.begin() as conn:
            got = [attach_image.record(conn, services, p, actor=who.actor) for p in prepared]
        return {"accession": accession, "images": _image_results(got)}

    @app.post("/api/cases/{accession}/report", status_code=201)
    def post_report(accession: str, body: ReportIn,
                    who: Principal = Depends(require("specialist"))):
        specialist = Practitioner(body.specialist.id, PersonName.parse(body.specialist.name))
        got = record_report.handle(services, accession, text=body.text, conduct=body.conduct,
                                   specialist=specialist, actor=who.actor)
        return {"accession": got.accession, "status": got.status, "version": got.version,
                "digest": got.digest, "oru_control_id": got.oru_control_id,
                "dft_control_id": got.dft_control_id}

    @app.post("/api/cases/{accession}/report/withdraw")
    def withdraw(accession: str, body: WithdrawIn,
                 who: Principal = Depends(require("specialist"))):
        """Withdraw the final answer: the case goes back to IN_REVIEW, the requester gets an ORU
        with OBX-11 D, and what the act charged is credited (CD) to the accounting feed."""
        got = withdraw_report.handle(services, accession, reason=body.reason, actor=who.actor)
        return {"accession": got.accession, "status": got.status, "version": got.version,
                "oru_control_id": got.oru_control_id, "dft_control_id": got.dft_control_id,
                "credits": got.credits}

    @app.post("/api/cases/{accession}/decline")
    def decline(accession: str, body: RefuseIn,
                who: Principal = Depends(require("specialist"))):
        """The dermatologist declines the request (out of scope, unusable photos, needs a
        consultation): the case is REJECTED, nothing is billed, and the requester is told why
        (ORC-1 OC) when its destination takes order status messages."""
        got = refuse_order.decline(services, accession, reason=body.reason, actor=who.actor)
        return _refusal(got)

    @app.post("/api/cases/{accession}/cancel")
    def cancel(accession: str, body: RefuseIn, who: Principal = Depends(require("admin"))):
        """An operator cancels the case (duplicate request, wrong patient): CANCELLED, what an
        answered case charged is credited, and the requester is told why (ORC-1 OC)."""
        got = refuse_order.cancel(services, accession, reason=body.reason, actor=who.actor)
        return _refusal(got)

    @app.post("/api/internal/orthanc/stable-study")
    def stable_study(body: StableStudyIn, who: Principal = Depends(require("device"))):
        study_uid = body.study_uid or services.archive.study_uid(body.orthanc_id)
        status = mark_ready.handle(services, study_uid, actor=who.actor)
        return {"study_uid": study_uid, "case_status": status}

    return app


def _refusal(got: refuse_order.RefusedOrder) -> dict:
    return {"accession": got.accession, "status": got.status,
            "status_control_id": got.status_control_id, "dft_control_id": got.dft_control_id}


def _image_results(got: list[attach_image.AttachedImage]) -> list[dict]:
    return [{"sop_instance_uid": g.sop_instance_uid, "kind": g.kind, "created": g.created,
             "quality": list(g.quality)} for g in got]


def _for_file(exc: ImageError, index: int, count: int) -> ImageError:
    """The refusal of one file of several, saying which (by position: names may carry patient
    data) and that none of them was stored."""
    if count == 1 or exc.where != "image":
        return exc
    return type(exc)(f"file {index + 1} of {count}: {exc.text}; none of the {count} files was "
                      "stored", where=f"file.{index}", hint=exc.hint, code=exc.code)
