"""Routes. Each builds a workflow call from the request and renders its result."""

from __future__ import annotations

from fastapi import Depends, FastAPI, File, Form, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.exceptions import HTTPException

from .. import __version__
from ..domain.errors import ConnectorError, NotFound
from ..domain.model import PersonName, Practitioner
from ..store import outbox, queries
from ..workflow import attach_image, mark_ready, record_report, withdraw_report
from ..workflow.bootstrap import Services
from . import errors
from .auth import Principal, require, token_table

class SpecialistIn(BaseModel):
    id: str = Field(min_length=1, max_length=64, description="IdNatPS (France) or local id")
    name: str = Field(min_length=1, max_length=200, description="FAMILY^GIVEN")


class ReportIn(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)
    conduct: str = Field(min_length=1, max_length=40, description="code from mappings/conducts.toml")
    specialist: SpecialistIn


class WithdrawIn(BaseModel):
    reason: str = Field(min_length=1, max_length=withdraw_report.MAX_REASON,
                        description="why the report is withdrawn (kept in the audit trail)")


class StableStudyIn(BaseModel):
    change: str
    orthanc_id: str
    study_uid: str | None = None


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="TeleDerm Connector", version=__version__)
    app.state.services = services
    app.state.tokens = token_table(services)
    app.add_exception_handler(ConnectorError, errors.connector_error)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(HTTPException, errors.http_error)
    reader = require("requester", "specialist", "device")

    @app.get("/api/health")
    def health():
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            depth = queries.stats(conn)["outbox"]
            peers = outbox.destinations(conn)
        return {"status": "ok", "version": __version__, "outbox": depth, "destinations": peers,
                "orthanc": {"reachable": services.archive.is_alive()}}

    @app.get("/api/stats")
    def stats(_: Principal = Depends(reader)):
        with services.engine.connect() as conn:
            return queries.stats(conn)

    @app.get("/api/cases")
    def list_cases(status: str | None = None, priority: str | None = None,
                   placer_order_number: str | None = None, patient_id: str | None = None,
                   limit: int = Query(100, ge=1, le=1000), _: Principal = Depends(reader)):
        with services.engine.connect() as conn:
            return queries.list_cases(conn, status=status, priority=priority,
                                      placer_order_number=placer_order_number,
                                      patient_id=patient_id, limit=limit)

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
        limit = services.config.images_max_mb * 1024 * 1024
        results = []
        for upload in file:
            data = upload.file.read(limit + 1)  # never more than the limit in memory
            got = attach_image.handle(services, accession, data, kind=kind, site=site,
                                      laterality=laterality, description=description,
                                      device=device, tracking_id=tracking_id, actor=who.actor)
            results.append({"sop_instance_uid": got.sop_instance_uid, "kind": got.kind,
                            "created": got.created, "quality": list(got.quality)})
        return {"accession": accession, "images": results}

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

    @app.post("/api/internal/orthanc/stable-study")
    def stable_study(body: StableStudyIn, who: Principal = Depends(require("device"))):
        study_uid = body.study_uid or services.archive.study_uid(body.orthanc_id)
        status = mark_ready.handle(services, study_uid, actor=who.actor)
        return {"study_uid": study_uid, "case_status": status}

    return app
