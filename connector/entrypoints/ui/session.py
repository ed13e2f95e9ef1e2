"""Who is using a page: the session cookie, roles, and the CSRF token of every form.

Sessions are server-side rows in the store (`store/users.py`), found by the SHA-256 of a
random cookie id, rather than an HMAC-signed cookie: logging out or disabling a user ends the
session at once on every worker, with no secret key to keep and rotate, and the cookie says
nothing about who holds it. The cookie is HttpOnly, SameSite=Lax, limited to /ui/, and Secure
when the page came over https; it lasts `[ui] session_minutes`.

Every POST carries a CSRF token: the session's own (a random value kept with the session), or
before login a random value also set as a login cookie (double submit). A POST without the
right one gets the 403 page and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request

from ...domain.moment import iso
from ...domain.roles import Scope, parse_scopes

SESSION_COOKIE = "telederm_session"
LOGIN_CSRF_COOKIE = "telederm_login_csrf"
COOKIE_PATH = "/ui"


@dataclass(frozen=True)
class Person:
    """The logged-in user of a request, and the CSRF token of their session."""

    id: int
    login: str
    name: str  # FAMILY^GIVEN
    role: str
    practitioner_id: str
    csrf: str
    scopes: tuple[Scope, ...] | None = None  # a requester's; None: every case

    @property
    def actor(self) -> str:
        """How the audit trail names them (as API principals are: role:name)."""
        return f"{self.role}:{self.login}"


class PageDenied(Exception):
    """The page is refused: `login` (no live session: go to the login page), `forbidden`
    (the role may not) or `csrf` (a POST without the form's token)."""

    def __init__(self, reason: str, role: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.role = role


def current(request: Request) -> Person | None:
    """The user of the request's session cookie, or None (no cookie, expired, disabled)."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if not session_id:
        return None
    services = request.app.state.services
    with services.reading() as uow:
        found = uow.users.session(session_id, iso(services.now()))
    if found is None:
        return None
    user = found["user"]
    return Person(user["id"], user["login"], user["name"], user["role"],
                  user["practitioner_id"], found["csrf"], parse_scopes(user["scopes"].split()))


def person(*roles: str):
    """Dependency of a page: the logged-in user, who must hold one of `roles`."""

    def dependency(request: Request) -> Person:
        who = current(request)
        if who is None:
            raise PageDenied("login")
        if who.role not in roles:
            raise PageDenied("forbidden", who.role)
        return who

    return dependency


def poster(*roles: str):
    """Dependency of a form's POST: as `person`, and the form's `csrf` field must be the
    session's token."""
    page = person(*roles)

    async def dependency(request: Request) -> Person:
        who = page(request)
        form = await request.form()
        if not same(str(form.get("csrf", "")), who.csrf):
            raise PageDenied("csrf", who.role)
        return who

    return dependency


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of two tokens; an empty expected token never matches."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


def start(request: Request, response, user: dict) -> None:
    """Open a session for `user` and set its cookie on `response`."""
    services = request.app.state.services
    minutes = services.config.ui.session_minutes
    now = services.now()
    session_id = new_token()
    with services.unit() as uow:
        uow.users.open_session(session_id=session_id, user_id=user["id"], csrf=new_token(),
                               now=iso(now), expires_at=iso(now + dt.timedelta(minutes=minutes)))
    set_cookie(request, response, SESSION_COOKIE, session_id, max_age=minutes * 60)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)


def end(request: Request, response) -> None:
    """Close the request's session (if any) and clear its cookie."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if session_id:
        with request.app.state.services.unit() as uow:
            uow.users.close_session(session_id)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def set_cookie(request: Request, response, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
