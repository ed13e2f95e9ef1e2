"""Bearer tokens with roles. Tokens come from the config, `TELEDERM_BOOTSTRAP_TOKEN` (admin),
the internal token handed to the managed Orthanc's plugin (device), and the store, where
`telederm tokens create` keeps their digests with an expiry (`store/tokens.py`).

The presented token is compared, by digest and in constant time, with every configured one
(no early exit, so the time taken says nothing of which or how many matched), then looked up
by digest in the store.

A principal reaches part of the cases (`domain/roles.Reach`): a requester or device token its
scopes, a specialist its routing pools. `on_case` guards every route of one case: a case out of
reach answers the same 404 as one that does not exist, so its existence is not disclosed.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from ...domain.errors import NotFound
from ...domain.roles import Reach, Scope, parse_scopes, reach_of


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    practitioner_id: str = ""  # a specialist token's IdNatPS (`[[api.tokens]] practitioner_id`)
    scopes: tuple[Scope, ...] | None = None  # a requester's or device's; None: every case

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.name}"


def token_table(services) -> list[tuple[bytes, Principal]]:
    """The configured tokens, by the digest of their secret."""
    table = [(t.token, Principal(t.name, t.role, t.practitioner_id, t.reach_scopes))
             for t in services.config.api.tokens]
    if services.config.bootstrap_token:
        table.append((services.config.bootstrap_token, Principal("bootstrap", "admin")))
    table.append((services.internal_token, Principal("orthanc", "device")))
    return [(_digest(secret), principal) for secret, principal in table if secret]


_bearer = HTTPBearer(auto_error=False)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _principal(request: Request, secret: str) -> Principal | None:
    """Who holds `secret`: a configured token, else a live stored one, else None."""
    presented = _digest(secret)
    found = None
    for digest, principal in request.app.state.tokens:
        if hmac.compare_digest(digest, presented) and found is None:
            found = principal
    if found is not None:
        return found
    services = request.app.state.services
    with services.reading() as uow:
        row = uow.tokens.active(secret, services.moment().iso)
    if row is None:
        return None
    return Principal(row["name"], row["role"], row["practitioner_id"],
                     parse_scopes(row["scopes"].split()))


def require(*roles: str):
    """Dependency: the caller must hold one of `roles` (admin always passes)."""

    def dependency(request: Request,
                   creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        if creds is None:
            raise HTTPException(401, "a bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})
        principal = _principal(request, creds.credentials)
        if principal is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        if principal.role == "admin" or principal.role in roles:
            return principal
        raise HTTPException(403, f"role {principal.role} may not do this")

    return dependency


def reach(request: Request, who: Principal) -> Reach:
    """The cases `who` may see and act on."""
    routing = request.app.state.services.mappings.routing
    return reach_of(who.role, who.practitioner_id, who.scopes, routing.pools_of)


def on_case(*roles: str):
    """Dependency of a route on one case (`{accession}` in its path): `require(*roles)`, then
    the case must be within the caller's reach, else 404 exactly as for an absent case."""
    allowed = require(*roles)

    def dependency(accession: str, request: Request,
                   who: Principal = Depends(allowed)) -> Principal:
        services = request.app.state.services
        with services.reading() as uow:
            found = uow.queries.in_reach(accession, reach(request, who))
        if not found:
            raise NotFound(f"no case with accession {accession}", where="accession",
                           hint="list cases with GET /api/cases")
        return who

    return dependency
