"""API tokens made by `telederm tokens create`: found by the SHA-256 of the secret while they
have neither expired nor been revoked. The secret itself is shown once and never stored."""

from __future__ import annotations

import hashlib

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..domain.errors import DomainError
from .schema import api_tokens


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create(conn: Connection, *, name: str, role: str, practitioner_id: str, secret: str,
           now: str, expires_at: str, scopes: str = "") -> None:
    """Record a token by its digest; a name already used is a DomainError (nothing written).
    `scopes` as `users.add`'s."""
    try:
        with conn.begin_nested():
            conn.execute(api_tokens.insert().values(
                name=name, role=role, practitioner_id=practitioner_id, digest=digest(secret),
                created_at=now, expires_at=expires_at, revoked_at="", scopes=scopes))
    except IntegrityError:
        raise DomainError(f"token name {name!r} is already used", where="NAME",
                          hint="choose another name, or see telederm tokens list") from None


def active(conn: Connection, secret: str, now: str) -> dict | None:
    """The live token of this secret (name, role, practitioner_id, scopes), or None."""
    row = conn.execute(select(api_tokens.c.name, api_tokens.c.role,
                              api_tokens.c.practitioner_id, api_tokens.c.scopes)
                       .where(api_tokens.c.digest == digest(secret),
                              api_tokens.c.revoked_at == "",
                              api_tokens.c.expires_at > now)).mappings().first()
    return dict(row) if row is not None else None


def listing(conn: Connection) -> list[dict]:
    """Every token, without its digest, by name."""
    columns = [c for c in api_tokens.c if c.name not in ("id", "digest")]
    return [dict(r) for r in conn.execute(select(*columns).order_by(api_tokens.c.name))
            .mappings()]


def revoke(conn: Connection, name: str, now: str) -> bool:
    """Revoke a live token; False when no live token has this name."""
    done = conn.execute(update(api_tokens).where(api_tokens.c.name == name,
                                                 api_tokens.c.revoked_at == "")
                        .values(revoked_at=now))
    return done.rowcount == 1
