"""Sessions, roles and CSRF of the /ui/ pages, on the real app and a real SQLite store (no
Orthanc needed: no page here draws a photo).

The services' clock is the test's, so a session's expiry is reached by moving it on."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets

import pytest
from sqlalchemy import select

from connector.entrypoints.ui import pages
from connector.store.schema import audit, sessions
from tests.support import ui
from tests.support.ui import PASSWORD

def _audit(services, action: str) -> list[dict]:
    with services.reading() as uow:
        rows = uow._conn.execute(select(audit).where(audit.c.action == action)).all()
    return [{"actor": r.actor, "detail": json.loads(r.detail)} for r in rows]


PAGES = ["/ui/", "/ui/cases/TD00000001", "/ui/cases/TD00000001/images/1/thumb"]


@pytest.mark.parametrize("path", PAGES)
def test_page_redirects_to_login_when_there_is_no_session(app, path):
    r = ui.client(app).get(path)
    assert r.status_code == 303 and r.headers["location"] == f"/ui/login?next={path}"


def test_login_opens_a_session_with_a_safe_cookie_when_the_password_is_right(app, services):
    client = ui.client(app)
    r = ui.login(client, "spec")
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    cookie = next(c for c in r.headers.get_list("set-cookie")
                  if c.startswith("telederm_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert f"Max-Age={services.config.ui.session_minutes * 60}" in cookie
    page = client.get("/ui/")
    assert page.status_code == 200 and "DUPONT Jean" in page.text
    assert page.headers["cache-control"] == "no-store"
    with services.reading() as uow:
        (stored,) = uow._conn.execute(select(sessions)).all()
    assert stored.id_hash not in cookie  # the database holds a hash of the id, not the id
    assert _audit(services, "ui.login")[0]["actor"] == "ui:spec"


def test_session_cookie_is_secure_when_the_page_came_over_https(app):
    r = ui.login(ui.client(app, "https://testserver"), "spec")
    cookie = next(c for c in r.headers.get_list("set-cookie")
                  if c.startswith("telederm_session="))
    assert "Secure" in cookie


@pytest.mark.parametrize("login, password", [("spec", "wrong password!"),
                                             ("nobody", PASSWORD), ("", "")])
def test_failed_login_says_nothing_specific_and_is_audited_without_the_password(
        app, services, login, password):
    client = ui.client(app)
    r = ui.login(client, login, password)
    assert r.status_code == 401
    assert "Identifiant ou mot de passe incorrect." in r.text
    assert "telederm_session" not in r.headers.get("set-cookie", "")
    (row,) = _audit(services, "ui.login_failed")
    assert row["detail"]["login"] == login
    assert password not in json.dumps(row) or not password
    assert client.get("/ui/").status_code == 303


def test_login_is_refused_when_its_form_token_is_missing_or_foreign(app, services):
    client = ui.client(app)
    client.get("/ui/login")
    r = client.post("/ui/login", data={"login": "spec", "password": PASSWORD, "csrf": "forged"})
    assert r.status_code == 403 and "formulaire a expiré" in r.text
    fresh = ui.client(app)  # a token taken from another browser's form
    r = fresh.post("/ui/login", data={"login": "spec", "password": PASSWORD,
                                      "csrf": ui.csrf(client.get("/ui/login").text)})
    assert r.status_code == 403
    assert _audit(services, "ui.login") == []


def _ui_posts() -> list[str]:
    """Every POST of the pages but the login (whose token is the login cookie's)."""
    return sorted(route.path for route in pages.router.routes
                  if "POST" in route.methods and route.path != "/ui/login")


def test_every_form_post_is_refused_without_the_session_csrf_token(app, services):
    posts = _ui_posts()
    assert posts == ["/ui/cases/{accession}/decline", "/ui/cases/{accession}/release",
                     "/ui/cases/{accession}/report", "/ui/cases/{accession}/report/correct",
                     "/ui/cases/{accession}/take", "/ui/logout"]
    client, token = ui.logged_in(app, "spec")
    for path in posts:
        url = path.replace("{accession}", "TD00000001")
        for form in ({}, {"csrf": ""}, {"csrf": token[:-1] + "x"}):
            r = client.post(url, data={**form, "text": "x", "reason": "x"})
            assert r.status_code == 403, (url, form)
            assert "formulaire a expiré" in r.text
    assert client.get("/ui/").status_code == 200  # logout without its token did nothing


@pytest.mark.parametrize("path", PAGES)
def test_requester_gets_the_403_page_on_specialist_pages(app, path):
    client, _ = ui.logged_in(app, "req")
    r = client.get(path)
    assert r.status_code == 403
    assert "Accès refusé" in r.text and "demandeur" in r.text


@pytest.mark.parametrize("login", ["req", "boss"])
def test_only_a_specialist_may_answer_or_decline(app, login):
    client, token = ui.logged_in(app, login)
    for what in ("report", "decline"):
        r = client.post(f"/ui/cases/TD00000001/{what}",
                        data={"csrf": token, "text": "x", "conduct": "no_visit",
                              "reason": "x", "version": "0", "status": "READY"})
        assert r.status_code == 403, what


def test_admin_sees_the_worklist(app):
    client, _ = ui.logged_in(app, "boss")
    assert client.get("/ui/").status_code == 200


def test_session_ends_when_it_expires(app, services):
    client, _ = ui.logged_in(app, "spec")
    minutes = services.config.ui.session_minutes
    services.clock.now += dt.timedelta(minutes=minutes - 1)
    assert client.get("/ui/").status_code == 200
    services.clock.now += dt.timedelta(minutes=1)
    r = client.get("/ui/")
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_session_ends_when_its_user_is_disabled(app, services):
    client, _ = ui.logged_in(app, "spec")
    with services.unit() as uow:
        assert uow.users.disable("spec")
    assert client.get("/ui/").status_code == 303
    assert ui.login(ui.client(app), "spec").status_code == 401


def test_logout_ends_the_session_for_whoever_holds_the_cookie(app, services):
    client, token = ui.logged_in(app, "spec")
    cookie = client.cookies.get("telederm_session")
    r = client.post("/ui/logout", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    replay = ui.client(app)
    replay.cookies.set("telederm_session", cookie, path="/ui")
    assert replay.get("/ui/").status_code == 303
    with services.reading() as uow:
        assert uow._conn.execute(select(sessions)).all() == []


def test_login_goes_back_only_to_a_page_of_ours(app):
    client = ui.client(app)
    form = client.get("/ui/login?next=//evil.example/")
    assert 'name="next" value="/ui/"' in form.text
    r = client.post("/ui/login", data={"login": "spec", "password": PASSWORD,
                                       "csrf": ui.csrf(form.text), "next": "https://evil.example"})
    assert r.headers["location"] == "/ui/"


def test_pages_follow_the_browser_language(app):
    client, _ = ui.logged_in(app, "spec")
    assert "Cases to answer" in client.get("/ui/", headers={"Accept-Language": "en"}).text
    assert "Demandes à traiter" in client.get("/ui/").text  # the site's [reports] language
