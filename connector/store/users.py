"""People who log in to the web pages, and their browser sessions.

A session row is found by the SHA-256 of the cookie's id (the id itself is never stored) and
only while it has not expired and its user is not disabled, so disabling someone ends their
open sessions at once.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..domain.errors import DomainError
from ..domain.roles import USER_ROLES as ROLES
from .schema import sessions, users


def _public(row) -> dict:
    """A user without the password record."""
    return {"id": row.id, "login": row.login, "name": row.name, "role": row.role,
            "practitioner_id": row.practitioner_id, "scopes": row.scopes,
            "disabled": row.disabled, "created_at": row.created_at}


def add(conn: Connection, *, login: str, name: str, role: str, practitioner_id: str,
        password: str, now: str, scopes: str = "") -> int:
    """Insert a user; a login already taken is a DomainError (nothing written). `scopes`:
    a requester's FACILITY/SERVICE scopes, space-separated ("" or "*": every case)."""
    try:
        with conn.begin_nested():
            return conn.execute(users.insert().values(
                login=login, name=name, role=role, practitioner_id=practitioner_id,
                password=password, disabled=False, created_at=now, scopes=scopes)).inserted_primary_key[0]
    except IntegrityError:
        raise DomainError(f"login {login!r} is already taken", where="LOGIN",
                          hint="choose another login, or see telederm users list") from None


def credentials(conn: Connection, login: str) -> tuple[dict, str] | None:
    """(the user, its password record) of an enabled user, or None."""
    row = conn.execute(select(users).where(users.c.login == login,
                                           users.c.disabled.is_(False))).first()
    return (_public(row), row.password) if row is not None else None


def listing(conn: Connection) -> list[dict]:
    return [_public(r) for r in conn.execute(select(users).order_by(users.c.login))]


def disable(conn: Connection, login: str) -> bool:
    """Disable a user and end their sessions; False when no such login."""
    user_id = conn.execute(select(users.c.id).where(users.c.login == login)).scalar()
    if user_id is None:
        return False
    conn.execute(update(users).where(users.c.id == user_id).values(disabled=True))
    conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
    return True


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(conn: Connection, *, session_id: str, user_id: int, csrf: str, now: str,
                 expires_at: str) -> None:
    """Record a new session; sessions that have expired by `now` are removed on the way."""
    conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
    conn.execute(sessions.insert().values(id_hash=_key(session_id), user_id=user_id, csrf=csrf,
                                          created_at=now, expires_at=expires_at))


def session(conn: Connection, session_id: str, now: str) -> dict | None:
    """The live session of this cookie id: its user (as `_public`) and `csrf`, or None when
    unknown, expired or its user is disabled."""
    row = conn.execute(
        select(users, sessions.c.csrf, sessions.c.expires_at)
        .join(sessions, sessions.c.user_id == users.c.id)
        .where(sessions.c.id_hash == _key(session_id), sessions.c.expires_at > now,
               users.c.disabled.is_(False))).first()
    if row is None:
        return None
    return {"user": _public(row), "csrf": row.csrf, "expires_at": row.expires_at}


def close_session(conn: Connection, session_id: str) -> None:
    conn.execute(delete(sessions).where(sessions.c.id_hash == _key(session_id)))
