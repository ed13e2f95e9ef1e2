"""The /ui/ pages: login, the specialist's worklist, the case page with its photos, and the
answer, decline, take and hand-back forms, which go through the same steps as the API
(`record_report.handle`, `refuse_order.decline`, `assign_case.handle` and `.release`).

Every page needs a session (else a redirect to /ui/login) and a role: the worklist, the case
and its photos are for specialists and admins; answering, declining and taking for
specialists, who sign with their own RPPS-based id and name (never typed in the form); handing
back for the case's assignee or an admin. A specialist sees the cases of the pools they read
(`Pool.admits`, `mappings/routing.toml`; `domain/roles.Reach`), an admin every case; a case
out of reach is "not found", on its page, its photos and its forms alike. A specialist may not
answer or decline a case assigned to another member (409, the page says why). Pages with
patient data are sent with `Cache-Control: no-store`. A form carries the case's status and report version
as it was shown: when they changed before the form came back (someone else answered, the case
was cancelled), nothing is recorded and the page says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...archive.errors import ArchiveError
from ...archive.client import viewer_url
from ...domain.errors import DomainError, NotFound, StateConflict
from ...domain.model import PersonName, Practitioner, reason_text
from ...domain.moment import Moment, iso
from ...domain.roles import Reach, reach_of
from ...domain.states import AWAITING_ANSWER, IMAGES_NOT_STABLE, CaseStatus
from ...workflow import assign_case, record_listing, record_read, record_report, refuse_order
from ...workflow.commands import (AssignCase, DeclineCase, RecordListing, RecordRead,
                                 RecordReport, ReleaseCase)
from . import i18n, passwords, session
from .session import PageDenied, Person

router = APIRouter(include_in_schema=False)
READERS = ("specialist", "admin")
MANAGERS = ("manager", "admin")
WAITING = tuple(s.value for s in AWAITING_ANSWER)
CORRECTABLE = (CaseStatus.ANSWERED.value, CaseStatus.AMENDED.value)
THUMB_HEIGHT = 240
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The pages load nothing from elsewhere and run no script; nobody may frame them (the other
# security headers are every response's: entrypoints/api/headers.py).
SECURITY = {"Content-Security-Policy": "default-src 'none'; img-src 'self'; "
                                       "style-src 'unsafe-inline'; form-action 'self'; "
                                       "frame-ancestors 'none'; base-uri 'none'"}
MAX_LOGIN = 64

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _person_name(text: str) -> str:
    """FAMILY^GIVEN as people write it: FAMILY Given."""
    family, _, given = (text or "").partition("^")
    return f"{family} {given.split('^')[0]}".strip()


def _day(text: str, lang: str) -> str:
    """YYYYMMDD[HHMMSS] as a date in the page's language."""
    if len(text or "") < 8 or not text[:8].isdigit():
        return text or ""
    y, m, d = text[:4], text[4:6], text[6:8]
    return f"{d}/{m}/{y}" if lang == "fr" else f"{y}-{m}-{d}"


def _when(text: str, lang: str) -> str:
    """A stored instant (ISO UTC) as the site's local date and time, to the minute."""
    if not text:
        return ""
    local = Moment.from_iso(text).local
    return local.strftime("%d/%m/%Y %H:%M" if lang == "fr" else "%Y-%m-%d %H:%M")


_templates.filters["person_name"] = _person_name


def render(request: Request, template: str, *, who: Person | None = None, status: int = 200,
           csrf: str = "", **context) -> HTMLResponse:
    services = request.app.state.services
    lang = i18n.choose(request.headers.get("accept-language", ""),
                       services.config.reports.language)
    labels = i18n.labels()[lang]
    html = _templates.get_template(template).render(
        t=labels, lang=lang, who=who, csrf=csrf or (who.csrf if who else ""),
        day=lambda text: _day(text, lang), when=lambda text: _when(text, lang), **context)
    return HTMLResponse(html, status_code=status, headers={**NO_STORE, **SECURITY})


def _message(request: Request, who: Person | None, status: int, title: str, text: str, *,
             back: str = "") -> HTMLResponse:
    return render(request, "message.html", who=who, status=status, title_key=title, text=text,
                  back=back)


async def denied(request: Request, exc: PageDenied) -> Response:
    """PageDenied as the browser should see it: the login page, or the 403 page."""
    if exc.reason == "login":
        query = f"?{request.url.query}" if request.url.query else ""  # e.g. a period
        target = request.url.path + query if request.method == "GET" else "/ui/"
        return RedirectResponse(f"/ui/login?next={quote(target, safe='/')}", status_code=303,
                                headers=NO_STORE)
    labels = i18n.labels()[i18n.choose(request.headers.get("accept-language", ""),
                                       request.app.state.services.config.reports.language)]
    text = (labels["csrf_failed"] if exc.reason == "csrf" else
            labels["forbidden"].format(role=labels["role"].get(exc.role, exc.role)))
    return _message(request, session.current(request), 403, "forbidden_title", text,
                    back="/ui/")


def _safe_next(target: str) -> str:
    """Where to go after login: a page of ours only (no open redirect)."""
    return target if target.startswith("/ui/") and not target.startswith("//") else "/ui/"


@router.get("/ui/login")
def login_page(request: Request, next: str = "/ui/"):
    if session.current(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, next=_safe_next(next))


def _login_form(request: Request, *, next: str, failed: bool = False) -> HTMLResponse:
    token = session.new_token()
    response = render(request, "login.html", status=401 if failed else 200, csrf=token,
                      next=next, failed=failed)
    session.set_cookie(request, response, session.LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/ui/login")
async def login(request: Request):
    form = await request.form()
    login_name = str(form.get("login", "")).strip()[:MAX_LOGIN]
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/ui/")))
    if not session.same(str(form.get("csrf", "")),
                        request.cookies.get(session.LOGIN_CSRF_COOKIE, "")):
        raise PageDenied("csrf")
    services = request.app.state.services
    throttle = request.app.state.login_throttle
    keys = (f"login:{login_name}", f"client:{_client(request)}")
    delay = throttle.delay(*keys)
    if delay:  # before the check: a right guess is not told apart by a quick answer
        await asyncio.sleep(delay)
    with services.reading() as uow:
        found = uow.users.credentials(login_name) if login_name else None
    user, record = found if found is not None else (None, None)
    ok = passwords.verify(password, record)
    if not ok:
        throttle.failed(*keys)
    detail = {"login": login_name, "client": _client(request)}
    if not ok:
        detail.update(failures=throttle.failures(*keys), slowed_seconds=delay)
    with services.unit() as uow:  # the audit names the login tried, never the password
        uow.audit.append(at=uow.moment.iso, actor=f"ui:{login_name or '-'}",
                         action="ui.login" if ok else "ui.login_failed", detail=detail)
    if not ok:
        return _login_form(request, next=target, failed=True)
    response = RedirectResponse(target, status_code=303)
    session.start(request, response, user)
    return response


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


@router.post("/ui/logout")
def logout(request: Request,
           who: Person = Depends(session.poster("requester", "specialist", "manager",
                                                "admin"))):
    response = RedirectResponse("/ui/login", status_code=303)
    session.end(request, response)
    return response


def _age(created_at: str, now: dt.datetime, labels: dict) -> str:
    minutes = max(0, int((now - Moment.from_iso(created_at).utc).total_seconds() // 60))
    if minutes < 120:
        return labels["age_minutes"].format(n=minutes)
    if minutes < 48 * 60:
        return labels["age_hours"].format(n=minutes // 60)
    return labels["age_days"].format(n=minutes // (24 * 60))


def _reach(request: Request, who: Person) -> Reach:
    """The cases `who` sees: a specialist their pools', an admin every one."""
    routing = request.app.state.services.mappings.routing
    return reach_of(who.role, who.practitioner_id, who.scopes, routing.pools_of)


def _ensure_reach(uow, request: Request, who: Person, accession: str) -> None:
    """NotFound for a case that is absent or out of `who`'s reach alike."""
    if not uow.queries.in_reach(accession, _reach(request, who)):
        raise NotFound(f"no case with accession {accession}", where="accession")


def _practitioners(uow) -> dict[str, str]:
    """IdNatPS -> FAMILY^GIVEN of the users who have one (to name assignees)."""
    return {u["practitioner_id"]: u["name"] for u in uow.users.listing() if u["practitioner_id"]}


def _pool_labels(request: Request) -> dict[str, str]:
    return {p.id: p.label for p in request.app.state.services.mappings.routing.pools.values()}


@router.get("/ui/")
def worklist(request: Request, status: str = "", who: Person = Depends(session.person(*READERS))):
    services = request.app.state.services
    now = services.now()
    with services.reading() as uow:
        cases = uow.queries.worklist(status=status or None, now=iso(now),
                                     reach=_reach(request, who))
        names = _practitioners(uow)
    with services.unit() as uow:
        record_listing.handle(RecordListing(who.actor, "ui", len(cases),
                                            ("status",) if status else (),
                                            request.client.host if request.client else ""), uow)
    return render(request, "worklist.html", who=who, cases=cases, statuses=WAITING,
                  selected=status if status in WAITING else "", names=names,
                  pools=_pool_labels(request),
                  age=lambda created: _age(created, now, i18n.labels()[_lang(request)]))


def _lang(request: Request) -> str:
    return i18n.choose(request.headers.get("accept-language", ""),
                       request.app.state.services.config.reports.language)


def _case(request: Request, who: Person, accession: str) -> tuple[dict, dict[str, str]]:
    """The case as its page shows it, and the names of the practitioners; NotFound also for a
    case of a pool `who` does not read (its existence is not theirs to know)."""
    services = request.app.state.services
    with services.reading() as uow:
        _ensure_reach(uow, request, who, accession)
        case = uow.queries.case_with_context(accession, services.mappings.sites,
                                             iso(services.now()))
        names = _practitioners(uow)
    return case, names


def _record_read(request: Request, who: Person, accession: str, what: str = "case") -> None:
    """The audit row of a page showing a case's data, committed before the page is sent."""
    services = request.app.state.services
    with services.unit() as uow:
        record_read.handle(RecordRead(accession, who.actor, "ui",
                                      request.client.host if request.client else "", what), uow)


def _case_page(request: Request, who: Person, accession: str, *, status: int = 200,
               notice: str = "", error: str = "", text: str = "", conduct: str = "",
               reason: str = "") -> HTMLResponse:
    try:
        case, names = _case(request, who, accession)
    except NotFound:
        labels = i18n.labels()[_lang(request)]
        return _message(request, who, 404, "not_found_title",
                        labels["not_found"].format(accession=accession), back="/ui/")
    services = request.app.state.services
    _record_read(request, who, accession)
    pool = services.mappings.routing.pools.get(case["pool"] or "")
    images = [{**shown, "n": n, "archived": stored["archived"]} for n, (shown, stored)
              in enumerate(zip(case["context"]["images"], case["images"]), start=1)]
    return render(
        request, "case.html", who=who, status=status, case=case, images=images,
        viewer=viewer_url(services.config.orthanc.url, case["patient"]["id"],
                          case["study_instance_uid"]),
        conducts=list(services.mappings.conducts.values()),
        answerable=case["status"] in WAITING, names=names,
        images_stable=case["status"] not in IMAGES_NOT_STABLE,
        pool_label=pool.label if pool is not None else (case["pool"] or ""),
        may_take=(who.role == "specialist" and bool(who.practitioner_id) and pool is not None
                  and pool.admits(who.practitioner_id)
                  and case["assigned_to"] != who.practitioner_id),
        may_release=bool(case["assigned_to"]) and (
            who.role == "admin" or case["assigned_to"] == who.practitioner_id),
        correctable=case["status"] in CORRECTABLE and bool(case["reports"]),
        version=len(case["reports"]), notice=notice, error=error, text=text,
        conduct=conduct or (case["reports"][-1]["conduct"] if case["reports"] else ""),
        reason=reason)


@router.get("/ui/cases/{accession}")
def case_page(request: Request, accession: str, done: str = "",
              who: Person = Depends(session.person(*READERS))):
    labels = i18n.labels()[_lang(request)]
    notice = {"answered": labels["answered_ok"], "declined": labels["declined_ok"],
              "taken": labels["taken_ok"], "released": labels["released_ok"],
              "corrected": labels["corrected_ok"]}.get(done, "")
    return _case_page(request, who, accession, notice=notice)


@router.get("/ui/cases/{accession}/images/{number}/thumb")
def thumbnail(request: Request, accession: str, number: int,
              who: Person = Depends(session.person(*READERS))):
    """The case's photo number `number` (1, 2 ... as on the case page), drawn by Orthanc and
    fetched with the connector's own credentials; nothing else of the archive is reachable."""
    services = request.app.state.services
    with services.reading() as uow:
        reached = uow.queries.in_reach(accession, _reach(request, who))
        case = uow.queries.case_detail(accession) if reached else None
    images = case["images"] if case is not None else []
    if not 1 <= number <= len(images):
        return Response(status_code=404, headers=NO_STORE)
    _record_read(request, who, accession, what=f"image {number}")
    try:
        png = services.archive.rendered(images[number - 1]["sop_instance_uid"],
                                        height=THUMB_HEIGHT)
    except NotFound:
        return Response(status_code=404, headers=NO_STORE)
    except ArchiveError:
        return Response(status_code=503, headers={**NO_STORE, "Retry-After": "30"})
    return Response(png, media_type="image/png", headers={**NO_STORE, **SECURITY})


class _Stale(Exception):
    """The form was made for a state of the case that is gone."""


def _check_fresh(uow, accession: str, form) -> None:
    """Refuse a form whose case has changed since it was shown: another report version, or a
    status where an answer no longer belongs (answered, declined, cancelled, closed)."""
    shown_version, shown_status = str(form.get("version", "")), str(form.get("status", ""))
    status = uow.cases.statuses([accession]).get(accession)
    if status is None:
        raise NotFound(f"no case with accession {accession}", where="accession")
    if (str(uow.reports.count(accession)) != shown_version
            or (status != shown_status and status not in WAITING)):
        raise _Stale(status)


def _may_answer(uow, request: Request, who: Person, accession: str, form) -> None:
    """The case is within `who`'s reach (else NotFound), the form still shows it as it is
    (else _Stale: a case answered meanwhile says so, rather than who holds it) and it is not
    assigned to another member (else StateConflict, `assign_case.ensure_answerer`)."""
    _ensure_reach(uow, request, who, accession)
    _check_fresh(uow, accession, form)
    assign_case.ensure_answerer(uow, accession, who.practitioner_id)


def _specialist(who: Person) -> Practitioner | None:
    if not who.practitioner_id:
        return None
    return Practitioner(who.practitioner_id, PersonName.parse(who.name))


@router.post("/ui/cases/{accession}/report")
async def answer(request: Request, accession: str,
                 who: Person = Depends(session.poster("specialist"))):
    form = await request.form()
    text, conduct = str(form.get("text", "")).strip(), str(form.get("conduct", ""))
    labels = i18n.labels()[_lang(request)]
    specialist = _specialist(who)
    if specialist is None:
        return _case_page(request, who, accession, status=403, text=text, conduct=conduct,
                          error=labels["no_practitioner_id"])
    services = request.app.state.services
    try:
        with services.unit() as uow:
            _may_answer(uow, request, who, accession, form)
            if not text:
                raise DomainError("the opinion is empty", where="text")
            record_report.handle(RecordReport(accession, text, conduct, specialist, who.actor),
                                 uow)
    except StateConflict as exc:
        if exc.code != "images-not-stable":
            return _stale(request, who, accession, exc)
        return _case_page(request, who, accession, status=409, text=text, conduct=conduct,
                          error=labels["images_not_stable_posted"])
    except _Stale as exc:
        return _stale(request, who, accession, exc)
    except NotFound:
        return _case_page(request, who, accession)
    except DomainError as err:
        return _case_page(request, who, accession, status=422, text=text, conduct=conduct,
                          error=err.one_line())
    return RedirectResponse(f"/ui/cases/{accession}?done=answered", status_code=303)


@router.post("/ui/cases/{accession}/report/correct")
async def correct(request: Request, accession: str,
                  who: Person = Depends(session.poster("specialist"))):
    """The answered case's correction: the path of POST /api/cases/{accession}/report/correct."""
    form = await request.form()
    text, conduct = str(form.get("text", "")).strip(), str(form.get("conduct", ""))
    reason = str(form.get("reason", ""))
    labels = i18n.labels()[_lang(request)]
    specialist = _specialist(who)
    if specialist is None:
        return _case_page(request, who, accession, status=403, text=text, conduct=conduct,
                          reason=reason, error=labels["no_practitioner_id"])
    try:
        with request.app.state.services.unit() as uow:
            _may_answer(uow, request, who, accession, form)
            if not text:
                raise DomainError("the opinion is empty", where="text")
            record_report.handle(RecordReport(
                accession, text, conduct, specialist, who.actor, correction=True,
                reason=reason_text(reason, hint="say why the answer is corrected")), uow)
    except (_Stale, StateConflict) as exc:
        return _stale(request, who, accession, exc)
    except NotFound:
        return _case_page(request, who, accession)
    except DomainError as err:
        return _case_page(request, who, accession, status=422, text=text, conduct=conduct,
                          reason=reason, error=err.one_line())
    return RedirectResponse(f"/ui/cases/{accession}?done=corrected", status_code=303)


@router.post("/ui/cases/{accession}/decline")
async def decline(request: Request, accession: str,
                  who: Person = Depends(session.poster("specialist"))):
    form = await request.form()
    reason = str(form.get("reason", ""))
    services = request.app.state.services
    try:
        with services.unit() as uow:
            _may_answer(uow, request, who, accession, form)
            refuse_order.decline(DeclineCase(accession, reason, who.actor,
                                             specialist=_specialist(who)), uow)
    except (_Stale, StateConflict) as exc:
        return _stale(request, who, accession, exc)
    except NotFound:
        return _case_page(request, who, accession)
    except DomainError as err:
        return _case_page(request, who, accession, status=422, reason=reason,
                          error=err.one_line())
    return RedirectResponse(f"/ui/cases/{accession}?done=declined", status_code=303)


@router.post("/ui/cases/{accession}/take")
def take(request: Request, accession: str, who: Person = Depends(session.poster("specialist"))):
    """The specialist takes the case, as `POST /api/cases/{acc}/assign` with their own id."""
    labels = i18n.labels()[_lang(request)]
    if not who.practitioner_id:
        return _case_page(request, who, accession, status=403,
                          error=labels["no_practitioner_id"])
    return _assignment(request, who, accession, "taken", lambda uow: assign_case.handle(
        AssignCase(accession, who.practitioner_id, who.actor), uow))


@router.post("/ui/cases/{accession}/release")
def hand_back(request: Request, accession: str,
              who: Person = Depends(session.poster("specialist", "admin"))):
    """The assignee (or an admin, for whoever holds it) hands the case back, as
    `POST /api/cases/{acc}/release`."""
    specialist = "" if who.role == "admin" else who.practitioner_id
    if who.role != "admin" and not specialist:
        labels = i18n.labels()[_lang(request)]
        return _case_page(request, who, accession, status=403,
                          error=labels["no_practitioner_id"])
    return _assignment(request, who, accession, "released", lambda uow: assign_case.release(
        ReleaseCase(accession, specialist, who.actor), uow))


def _assignment(request: Request, who: Person, accession: str, done: str, step) -> Response:
    """Run a take or hand-back step on a case within `who`'s reach (else the not-found page);
    its refusal is shown on the case page (409 for a case whose state moved on, 403 for a
    member the step refuses)."""
    try:
        with request.app.state.services.unit() as uow:
            _ensure_reach(uow, request, who, accession)
            step(uow)
    except NotFound:
        return _case_page(request, who, accession)
    except StateConflict as err:
        return _case_page(request, who, accession, status=409, error=err.one_line())
    except DomainError as err:
        return _case_page(request, who, accession, status=403, error=err.one_line())
    return RedirectResponse(f"/ui/cases/{accession}?done={done}", status_code=303)


def _stale(request: Request, who: Person, accession: str, exc: Exception) -> HTMLResponse:
    labels = i18n.labels()[_lang(request)]
    if isinstance(exc, StateConflict) and exc.code == "assigned-elsewhere":
        return _case_page(request, who, accession, status=409,
                          error=labels["assigned_elsewhere"])
    with request.app.state.services.reading() as uow:
        status = uow.cases.statuses([accession]).get(accession, "")
    text = labels["stale"].format(status=labels["status"].get(status, status))
    return _message(request, who, 409, "stale_title", text, back=f"/ui/cases/{accession}")


@router.get("/ui/dashboard")
def dashboard(request: Request, who: Person = Depends(session.person(*MANAGERS))):
    """The figures of `telederm stats` for a period (the last 12 weeks by default), with
    plots drawn on the server (`plots.py`); a bad date shows the error and all time."""
    from ...statistics import figures, period
    from .plots import dashboard_plots
    services = request.app.state.services
    labels = i18n.labels()[_lang(request)]
    given = {k: request.query_params.get(k, "") for k in ("from", "to")}
    if not any(given.values()):
        today = services.now().date()
        given = {"from": (today - dt.timedelta(weeks=12)).isoformat(), "to": today.isoformat()}
    error = ""
    try:
        start, end = period(given["from"] or None, given["to"] or None)
    except DomainError as err:
        error, start, end = err.one_line(), *period(None, None)
    with services.reading() as uow:
        data = figures(uow, start, end)
    return render(request, "dashboard.html", who=who, f=data, error=error,
                  date_from=given["from"], date_to=given["to"],
                  plots=dashboard_plots(data, labels) if data["cases"]["opened"] else {},
                  pct=lambda share: "—" if share is None else f"{share * 100:.0f} %")
