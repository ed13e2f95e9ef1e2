"""Monitoring and figures: `GET /api/health`, `GET /api/stats`."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from .... import __version__
from ....bootstrap import Services
from ....statistics import figures, period, render
from ..auth import Principal, require
from ..deps import services

router = APIRouter()


@router.get("/api/health")
def health(svc: Services = Depends(services)):
    """`status` "ok" while the service answers; for monitoring: queue depths and the
    oldest pending item, dead letters, each destination's last success and last failure,
    the inbox backlog, Orthanc reachability, and `problems` (what needs an operator; empty
    when all is well)."""
    reachable = svc.archive.is_alive()
    with svc.reading() as uow:
        report = uow.queries.health(reachable)
    return {"status": "ok", "version": __version__, **report}


@router.get("/api/stats", responses={200: {"content": {"text/csv": {}}}})
def stats(date_from: str | None = Query(None, alias="from", description="YYYY-MM-DD (UTC)"),
          date_to: str | None = Query(None, alias="to", description="YYYY-MM-DD, included"),
          format: Literal["json", "csv"] = "json",
          _: Principal = Depends(require("manager")), svc: Services = Depends(services)):
    """The figures of `telederm stats` for the cases opened in the period (all time by
    default): turnaround per priority, outcomes, volumes, photo quality, billing per code,
    incidents, the share answered by the deadline per priority, and the queue now. For medical managers and admins."""
    start, end = period(date_from, date_to)
    with svc.reading() as uow:
        data = figures(uow, start, end)
    if format == "csv":
        return Response(render(data, "csv"), media_type="text/csv; charset=utf-8")
    return data
