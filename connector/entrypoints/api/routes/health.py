"""Monitoring and figures: `GET /api/health`, `GET /api/stats`."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from .... import __version__
from ....bootstrap import Services
from ..auth import Principal, require
from ..deps import services

router = APIRouter()
reader = require("requester", "specialist", "device")


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


@router.get("/api/stats")
def stats(_: Principal = Depends(reader), svc: Services = Depends(services)):
    """Counts of cases, images, reports, charges and the outbox; `deadlines`: per priority,
    the share of answered cases answered by their deadline (mappings/routing.toml)."""
    with svc.reading() as uow:
        return uow.queries.stats()
