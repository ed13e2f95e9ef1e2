"""Reading cases: `GET /api/cases`, `GET /api/cases/{accession}`; and what a dermatologist
or an operator decides on one: decline (specialist), cancel (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from ....bootstrap import Services
from ....domain.errors import NotFound
from ....domain.model import MAX_REASON
from ....workflow import assign_case, record_listing, record_read, refuse_order
from ....workflow.commands import CancelCase, DeclineCase, RecordListing, RecordRead
from ..auth import Principal, on_case, reach, require
from ..deps import services

router = APIRouter()
READERS = ("requester", "specialist", "device")
reader = require(*READERS)


class RefuseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_REASON,
                        description="why the request is declined or cancelled: the requester "
                                    "reads it (ORC-16 of the OC order status)")


_PAGE_HEADERS = {
    "X-Total-Count": {"description": "cases matching the filters, all pages together",
                      "schema": {"type": "integer"}},
    "Link": {"description": 'the next page, `<URL>; rel="next"`, absent on the last page',
             "schema": {"type": "string"}},
}


@router.get("/api/cases", responses={200: {"headers": _PAGE_HEADERS}})
def list_cases(request: Request, response: Response, status: str | None = None,
               priority: str | None = None, placer_order_number: str | None = None,
               patient_id: str | None = Query(None, description="any identifier of the patient "
                                                "(IPP, INS, other PID-3 identifiers)"),
               overdue: bool | None = Query(None, description="true: only the cases past "
                                            "their deadline and still waiting for an answer; "
                                            "false: only the others"),
               pool: str | None = None, assigned_to: str | None = None,
               limit: int = Query(100, ge=1, le=1000, description="cases per page"),
               sort: str = Query("created", pattern="^(created|triage)$",
                                 description="created: newest first; triage: most "
                                             "urgent first (level, score, priority, "
                                             "oldest)"),
               cursor: str | None = Query(None, max_length=512,
                                          description="where the page starts: the cursor of "
                                                      "the previous page's Link rel=next"),
               who: Principal = Depends(reader), svc: Services = Depends(services)):
    """One page of the cases within the caller's reach (a JSON list): a requester's scopes, a
    specialist's pools, every case for an admin. `X-Total-Count` says how many match in all; while more
    remain, `Link: <...>; rel="next"` gives the URL of the next page (same filters, its cursor).
    Paging is by key, so cases opened meanwhile neither repeat nor hide the remaining pages."""
    with svc.reading() as uow:
        page = uow.queries.list_cases(status=status, priority=priority,
                                      placer_order_number=placer_order_number,
                                      patient_id=patient_id, limit=limit, sort=sort,
                                      cursor=cursor, overdue=overdue, pool=pool,
                                      assigned_to=assigned_to, now=svc.moment().iso,
                                      reach=reach(request, who))
    filters = {"status": status, "priority": priority, "placer_order_number": placer_order_number,
               "patient_id": patient_id, "overdue": overdue, "pool": pool,
               "assigned_to": assigned_to}
    with svc.unit() as uow:  # in the trail before the list leaves
        record_listing.handle(RecordListing(
            who.actor, "api", len(page.items),
            tuple(name for name, value in filters.items() if value is not None),
            request.client.host if request.client else ""), uow)
    response.headers["X-Total-Count"] = str(page.total)
    if page.next_cursor:
        url = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'
    return page.items


@router.get("/api/cases/{accession}")
def get_case(accession: str, request: Request, who: Principal = Depends(on_case(*READERS)),
             svc: Services = Depends(services)):
    """One case, patient included; the read is in the audit trail before it is answered."""
    with svc.reading() as uow:
        case = uow.queries.case_detail(accession, svc.moment().iso)
    if case is None:
        raise NotFound(f"no case with accession {accession}", where="accession",
                       hint="list cases with GET /api/cases")
    with svc.unit() as uow:
        record_read.handle(RecordRead(case["accession"], who.actor, "api",
                                      request.client.host if request.client else ""), uow)
    return case


@router.post("/api/cases/{accession}/decline")
def decline(accession: str, body: RefuseIn, who: Principal = Depends(on_case("specialist")),
            svc: Services = Depends(services)):
    """The dermatologist declines the request (out of scope, unusable photos, needs a
    consultation): the case is REJECTED, nothing is billed, and the requester is told why
    (ORC-1 OC) when its destination takes order status messages."""
    with svc.unit() as uow:
        if who.role == "specialist":
            assign_case.ensure_answerer(uow, accession, who.practitioner_id)
        got = refuse_order.decline(DeclineCase(accession, body.reason, who.actor), uow)
    return _refusal(got)


@router.post("/api/cases/{accession}/cancel")
def cancel(accession: str, body: RefuseIn, who: Principal = Depends(on_case("admin")),
           svc: Services = Depends(services)):
    """An operator cancels the case (duplicate request, wrong patient): CANCELLED, what an
    answered case charged is credited, and the requester is told why (ORC-1 OC)."""
    with svc.unit() as uow:
        got = refuse_order.cancel(CancelCase(accession, body.reason, who.actor), uow)
    return _refusal(got)


def _refusal(got: refuse_order.RefusedOrder) -> dict:
    return {"accession": got.accession, "status": got.status,
            "status_control_id": got.status_control_id, "dft_control_id": got.dft_control_id}
