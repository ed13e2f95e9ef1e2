"""Every API route (listed from the OpenAPI schema) and every /ui/ page, for every role and for
callers whose reach excludes the case: strangers get 401 (pages: the login redirect), a wrong
role 403, a case out of reach the very 404 of an absent case, so its existence is not told.

The site: pool `derm` (members SPEC, SPEC2) takes routine requests, pool `urgences` (OTHER)
stat ones. Case IN is from service DERMATO of facility 750712184, routine, assigned to SPEC;
case OUT is from service URG of the same facility, stat, assigned to OTHER. The scoped
requester reaches 750712184/DERMATO only; SPEC reads `derm` only.

The real app on a real SQLite store, in-process (no Orthanc: no route here reaches it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets
import shutil

import pytest

from connector.bootstrap import build
from connector.config import default_mappings_dir
from connector.demo import local_config
from connector.domain.model import Facility, Priority
from connector.entrypoints.api.app import create_app
from connector.entrypoints.ui import passwords
from connector.entrypoints.ui.pages import router as pages_router
from connector.ports import free_port
from connector.workflow import open_case
from connector.workflow.commands import OpenCase
from tests.support import ui
from tests.support.store_samples import make_order

SPEC, SPEC2 = ui.USERS["spec"][2], ui.USERS["spec2"][2]
OTHER = "810009999999"
FINESS = "750712184"

ROUTING = f"""
default_pool = "derm"

[deadlines]
stat = "2h"
urgent = "1h"
routine = "1h"
grace = "24h"

[[pool]]
id = "derm"
members = ["{SPEC}", "{SPEC2}"]

[[pool]]
id = "urgences"
members = ["{OTHER}"]

[[rule]]
pool = "urgences"
priority = ["stat"]
"""

# Who may call each route (admin always may); None: anyone, no token needed. A route missing
# here fails the test: say who may call it.
API_ROLES = {
    ("GET", "/api/health"): None,
    ("GET", "/api/stats"): {"manager"},
    ("GET", "/api/cases"): {"requester", "specialist", "device"},
    ("GET", "/api/cases/{accession}"): {"requester", "specialist", "device"},
    ("POST", "/api/cases/{accession}/decline"): {"specialist"},
    ("POST", "/api/cases/{accession}/cancel"): set(),
    ("POST", "/api/cases/{accession}/assign"): {"specialist"},
    ("POST", "/api/cases/{accession}/release"): {"specialist"},
    ("GET", "/api/absences"): set(),
    ("POST", "/api/absences"): set(),
    ("DELETE", "/api/absences/{absence_id}"): set(),
    ("GET", "/api/digest/overdue"): {"specialist"},
    ("POST", "/api/cases/{accession}/images"): {"requester", "device", "specialist"},
    ("POST", "/api/cases/{accession}/report"): {"specialist"},
    ("POST", "/api/cases/{accession}/report/correct"): {"specialist"},
    ("POST", "/api/cases/{accession}/report/withdraw"): {"specialist"},
    ("GET", "/api/cases/{accession}/report.pdf"): {"requester", "specialist"},
    ("POST", "/api/internal/orthanc/stable-study"): {"device"},
    ("GET", "/api/internal/orthanc/studies/{study_uid}/context"): {"device"},
}
# token name: (role, practitioner id, scopes); `requester` reaches 750712184/DERMATO only
TOKENS = {"requester": ("requester", "", f"{FINESS}/DERMATO"),
          "requester-all": ("requester", "", ""),
          "specialist": ("specialist", SPEC, ""), "device": ("device", "", ""),
          "manager": ("manager", "", ""), "admin": ("admin", "", "")}

# The /ui/ pages: who may see them. The login page and logout are for anyone.
UI_ROLES = {
    ("GET", "/ui/login"): None, ("POST", "/ui/login"): None,
    ("POST", "/ui/logout"): {"requester", "specialist", "manager", "admin"},
    ("GET", "/ui/"): {"specialist", "admin"},
    ("GET", "/ui/cases/{accession}"): {"specialist", "admin"},
    ("GET", "/ui/cases/{accession}/images/{number}/thumb"): {"specialist", "admin"},
    ("POST", "/ui/cases/{accession}/report"): {"specialist"},
    ("POST", "/ui/cases/{accession}/report/correct"): {"specialist"},
    ("POST", "/ui/cases/{accession}/decline"): {"specialist"},
    ("POST", "/ui/cases/{accession}/take"): {"specialist"},
    ("POST", "/ui/cases/{accession}/release"): {"specialist", "admin"},
    ("GET", "/ui/dashboard"): {"manager", "admin"},
}
# Routes that act even without a body (taking, handing back): called only where they are
# refused, so the assignments the other checks rely on stay put (their effect is tested in
# tests/e2e/test_care_network.py and tests/unit/ui/test_assignment_pages.py).
ACTS_WITHOUT_BODY = ("/assign", "/release", "/take")
USERS = {**ui.USERS, "req": ("requester", "MARTIN^Paul", ""), "chief": ("manager", "NOIR^Luc", "")}
USER_SCOPES = {"req": f"{FINESS}/DERMATO"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reach")
    mappings = tmp / "mappings"
    shutil.copytree(default_mappings_dir(), mappings)
    (mappings / "routing.toml").write_text(ROUTING, encoding="utf-8")
    config = local_config(tmp / "var", ehr_port=free_port(), accounting_port=free_port(),
                          token=secrets.token_urlsafe(8))
    services = build(config.model_copy(update={"mappings_dir": mappings}))
    services.clock = ui.Clock()
    secrets_of = {name: secrets.token_urlsafe(16) for name in TOKENS}
    with services.unit() as uow:
        now = uow.moment.iso
        for name, (role, practitioner, scopes) in TOKENS.items():
            uow.tokens.create(name=name, role=role, practitioner_id=practitioner,
                              secret=secrets_of[name], now=now, expires_at="9999",
                              scopes=scopes)
        for login, (role, name, rpps) in USERS.items():
            uow.users.add(login=login, name=name, role=role, practitioner_id=rpps,
                          password=passwords.hash_password(ui.PASSWORD), now=now,
                          scopes=USER_SCOPES.get(login, ""))
        facility = Facility(FINESS, "CHU")
        inside = open_case.handle(OpenCase(dataclasses.replace(
            make_order("CMD-IN"), facility=facility, service="DERMATO"), "test"), uow)
        outside = open_case.handle(OpenCase(dataclasses.replace(
            make_order("CMD-OUT", priority=Priority.STAT), facility=facility, service="URG"),
            "test"), uow)
    app = create_app(services)
    yield {"app": app, "tokens": secrets_of, "in": inside.accession, "out": outside.accession,
           "services": services}
    services.store.close()


def _url(path: str, accession: str) -> str:
    return (path.replace("{accession}", accession).replace("{absence_id}", "1")
            .replace("{study_uid}", "1.2.3").replace("{number}", "1"))


def _absent(api, method: str, path: str, headers: dict) -> dict:
    """The answer for an accession that does not exist, with the accession blanked."""
    got = api.request(method, _url(path, "TD99999999"), headers=headers)
    assert got.status_code == 404, (method, path, got.text)
    return _blank(got.json(), "TD99999999")


def _blank(problem: dict, accession: str) -> dict:
    return {k: (v.replace(accession, "ACC") if isinstance(v, str) else v)
            for k, v in problem.items()}


def test_every_api_route_for_every_role_and_reach(site):
    app, tokens = site["app"], site["tokens"]
    routes = {(method.upper(), path) for path, item in app.openapi()["paths"].items()
              for method in item}
    assert routes == set(API_ROLES), "list who may call each route in API_ROLES"
    api = ui.client(app)
    for (method, path), roles in sorted(API_ROLES.items()):
        url = _url(path, site["in"])
        stranger = api.request(method, url)
        assert stranger.status_code == (401 if roles is not None else 200), (method, path)
        if roles is None:
            continue
        assert api.request(method, url, headers={"Authorization": "Bearer nope"}
                           ).status_code == 401
        acts = path.endswith(ACTS_WITHOUT_BODY)
        for name, (role, _, _) in TOKENS.items():
            headers = {"Authorization": f"Bearer {tokens[name]}"}
            if role != "admin" and role not in roles:
                got = api.request(method, url, headers=headers)
                assert got.status_code == 403, (method, path, name, got.text)
                assert got.headers["content-type"] == "application/problem+json"
                continue
            absent = _absent(api, method, path, headers) if "{accession}" in path else None
            if not acts:
                got = api.request(method, url, headers=headers)
                assert got.status_code not in (401, 403), (method, path, name, got.text)
                assert got.status_code != 404 or _blank(got.json(), site["in"]) != absent
            if absent is not None and name in ("requester", "specialist"):
                # case OUT: outside the scoped requester's scopes and the specialist's pools
                out = api.request(method, _url(path, site["out"]), headers=headers)
                assert out.status_code == 404, (method, path, name, out.text)
                assert _blank(out.json(), site["out"]) == absent


def _listed(api, token: str) -> set[str]:
    got = api.get("/api/cases", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200, got.text
    assert int(got.headers["X-Total-Count"]) == len(got.json())
    return {c["accession"] for c in got.json()}


def test_the_case_list_holds_the_cases_within_reach_only(site):
    api, tokens = ui.client(site["app"]), site["tokens"]
    both = {site["in"], site["out"]}
    assert _listed(api, tokens["requester"]) == {site["in"]}
    assert _listed(api, tokens["specialist"]) == {site["in"]}
    for name in ("requester-all", "device", "admin"):
        assert _listed(api, tokens[name]) == both, name
    shown = api.get(f"/api/cases/{site['in']}",
                    headers={"Authorization": f"Bearer {tokens['requester']}"}).json()
    assert shown["service"] == "DERMATO" and shown["facility"]["finess"] == FINESS


def test_a_specialist_may_not_answer_a_case_assigned_to_another(site):
    services = site["services"]
    with services.unit() as uow:
        uow.tokens.create(name="spec2", role="specialist", practitioner_id=SPEC2,
                          secret="spec2-secret", now=uow.moment.iso, expires_at="9999")
    api = ui.client(site["app"])
    body = {"text": "Naevus bénin.", "conduct": "no_visit",
            "specialist": {"id": SPEC2, "name": "LEROY^Marie"}}
    got = api.post(f"/api/cases/{site['in']}/report", json=body,
                   headers={"Authorization": "Bearer spec2-secret"})
    assert got.status_code == 409, got.text
    problem = got.json()
    assert problem["type"].endswith("/assigned-elsewhere") and "release" in problem["hint"]
    declined = api.post(f"/api/cases/{site['in']}/decline", json={"reason": "hors champ"},
                        headers={"Authorization": "Bearer spec2-secret"})
    assert declined.status_code == 409, declined.text
    with services.reading() as uow:
        assert uow.reports.count(site["in"]) == 0
        assert uow.cases.statuses([site["in"]])[site["in"]] == "OPEN"


def test_a_specialist_token_signs_as_its_own_practitioner_only(site):
    api = ui.client(site["app"])
    body = {"text": "Naevus bénin.", "conduct": "no_visit",
            "specialist": {"id": SPEC2, "name": "LEROY^Marie"}}  # the token is SPEC's
    for path in ("/report", "/report/correct"):
        got = api.post(f"/api/cases/{site['in']}{path}", json={**body, "reason": "erreur"},
                       headers={"Authorization": f"Bearer {site['tokens']['specialist']}"})
        assert got.status_code == 403, got.text
        problem = got.json()
        assert problem["type"].endswith("/forbidden") and problem["field"] == "specialist.id"
        assert SPEC in problem["detail"] and "own token" in problem["hint"]
    with site["services"].reading() as uow:
        assert uow.reports.count(site["in"]) == 0


def test_every_ui_page_for_every_role_and_reach(site):
    app = site["app"]
    pages = {(method, route.path) for route in pages_router.routes for method in route.methods}
    assert pages == set(UI_ROLES), "list who may see each page in UI_ROLES"
    stranger = ui.client(app)
    browsers = {login: ui.logged_in(app, login) for login in USERS}
    for (method, path), roles in sorted(UI_ROLES.items()):
        if roles is None:
            continue
        url = _url(path, site["in"])
        got = stranger.request(method, url)
        assert got.status_code == 303 and "/ui/login" in got.headers["location"], (method, path)
        for login, (browser, csrf) in browsers.items():
            if path == "/ui/logout":
                continue  # it ends the session the other checks use
            role = USERS[login][0]
            data = {"csrf": csrf} if method == "POST" else None
            if role not in roles:
                got = browser.request(method, url, data=data)
                assert got.status_code == 403, (method, path, login)
                continue
            if method == "GET" and "thumb" not in path:  # (case IN has no photo)
                got = browser.request(method, url)
                assert got.status_code == 200, (method, path, login)
            if login == "spec" and "{accession}" in path:
                # case OUT is in pool urgences, which spec does not read: not found, as absent
                out = browser.request(method, _url(path, site["out"]), data=data)
                assert out.status_code == 404, (method, path, login, out.text[:300])
                absent = browser.request(method, _url(path, "TD99999999"), data=data)
                assert absent.status_code == 404
                assert (out.text.replace(site["out"], "ACC")
                        == absent.text.replace("TD99999999", "ACC")), (method, path)
    spec, csrf = browsers["spec2"]
    answered = spec.post(f"/ui/cases/{site['in']}/report",
                         data={"csrf": csrf, "text": "Naevus.", "conduct": "no_visit",
                               "version": "0", "status": "OPEN"})
    assert answered.status_code == 409
    assert re.search("another dermatologist|autre dermatologue", answered.text)


def test_the_overdue_digest_holds_the_specialists_pools_only(site):
    services, api, tokens = site["services"], ui.client(site["app"]), site["tokens"]
    started = services.clock.now
    services.clock.now = started + dt.timedelta(hours=3)  # both cases past their deadline
    try:
        def pools(token: str) -> dict[str, list[str]]:
            got = api.get("/api/digest/overdue", headers={"Authorization": f"Bearer {token}"})
            assert got.status_code == 200, got.text
            return {p["pool"]: [c["accession"] for c in p["cases"]] for p in got.json()["pools"]}

        assert pools(tokens["specialist"]) == {"derm": [site["in"]]}
        assert pools(tokens["admin"]) == {"derm": [site["in"]], "urgences": [site["out"]]}
    finally:
        services.clock.now = started
