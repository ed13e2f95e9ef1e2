"""The care network over HTTP (`mappings/routing.toml`): a specialist takes or hands back a
case (`POST /api/cases/{acc}/assign`, `.../release`: themselves, with a token that names their
IdNatPS; an admin: anyone), the members' absences (admin), and the digest of overdue cases per
pool, as JSON for a site's own notification tooling."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, model_validator
from starlette.exceptions import HTTPException

from ....bootstrap import Services
from ....domain.errors import NotFound
from ....workflow import assign_case
from ....workflow.commands import AssignCase, ReleaseCase
from ..auth import Principal, on_case, reach, require
from ..deps import services

router = APIRouter()


class AssignIn(BaseModel):
    specialist: str = Field("", max_length=64,
                            description="IdNatPS of the member who takes the case; an admin "
                                        "must name one, a specialist may only name themselves")


class AbsenceIn(BaseModel):
    member: str = Field(min_length=1, max_length=64, description="IdNatPS of the pool member")
    start: dt.date
    end: dt.date
    note: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _in_order(self):
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


def _themselves(who: Principal, named: str) -> str:
    """The IdNatPS a request acts for: a specialist's own (the token's), an admin's choice."""
    if who.role == "admin":
        return named
    if not who.practitioner_id:
        raise HTTPException(403, "this specialist token names no practitioner_id: add it to "
                                 "its [[api.tokens]] entry")
    if named and named != who.practitioner_id:
        raise HTTPException(403, "a specialist may take or hand back cases for themselves only")
    return who.practitioner_id


def _shown(got) -> dict:
    return {"accession": got.accession, "status": got.status, "pool": got.pool,
            "assigned_to": got.assigned_to or None, "due_at": got.due_at or None}


@router.post("/api/cases/{accession}/assign")
def assign(accession: str, body: AssignIn | None = None,
           who: Principal = Depends(on_case("specialist")), svc: Services = Depends(services)):
    """The specialist takes the case (a member of its pool; the case still waits for an
    answer): audited, the specialist side gets ORC-1 XO, the requester SC/IP."""
    specialist = _themselves(who, body.specialist if body else "")
    if not specialist:
        raise HTTPException(422, "name the specialist who takes the case")
    with svc.unit() as uow:
        got = assign_case.handle(AssignCase(accession, specialist, who.actor), uow)
    return _shown(got)


@router.post("/api/cases/{accession}/release")
def release(accession: str, who: Principal = Depends(on_case("specialist")),
            svc: Services = Depends(services)):
    """The assignee hands the case back: it goes to another member present (fewest open
    cases), or waits in the pool. An admin may hand back anyone's."""
    specialist = _themselves(who, "")
    with svc.unit() as uow:
        got = assign_case.release(ReleaseCase(accession, specialist, who.actor), uow)
    return _shown(got)


@router.get("/api/absences")
def absences(_: Principal = Depends(require("admin")), svc: Services = Depends(services)):
    """The absences entered through the API (those of routing.toml are in the file)."""
    with svc.reading() as uow:
        return uow.routing.absence_rows()


@router.post("/api/absences", status_code=201)
def add_absence(body: AbsenceIn, who: Principal = Depends(require("admin")),
                svc: Services = Depends(services)):
    """A member is away from `start` to `end` (inclusive): no new case goes to them then."""
    with svc.unit() as uow:
        absence_id = uow.routing.add_absence(member=body.member, starts_on=body.start.isoformat(),
                                             ends_on=body.end.isoformat(), note=body.note,
                                             now=uow.moment.iso)
        uow.audit.append(at=uow.moment.iso, actor=who.actor, action="absence.added",
                         detail={"id": absence_id, "member": body.member,
                                 "start": body.start.isoformat(), "end": body.end.isoformat()})
    return {"id": absence_id, "member": body.member, "starts_on": body.start.isoformat(),
            "ends_on": body.end.isoformat(), "note": body.note}


@router.delete("/api/absences/{absence_id}", status_code=204)
def remove_absence(absence_id: int, who: Principal = Depends(require("admin")),
                   svc: Services = Depends(services)):
    with svc.unit() as uow:
        if not uow.routing.remove_absence(absence_id):
            raise NotFound(f"no absence {absence_id}", where="absence_id",
                           hint="list them with GET /api/absences")
        uow.audit.append(at=uow.moment.iso, actor=who.actor, action="absence.removed",
                         detail={"id": absence_id})


@router.get("/api/digest/overdue")
def overdue_digest(request: Request, who: Principal = Depends(require("specialist")),
                   svc: Services = Depends(services)):
    """The cases past their deadline and still waiting, per pool (no patient data): what a
    site's daily notification job reads (an admin token: every pool; a specialist's: the
    pools they read)."""
    with svc.reading() as uow:
        return uow.queries.overdue_digest(svc.moment().iso, reach(request, who))
