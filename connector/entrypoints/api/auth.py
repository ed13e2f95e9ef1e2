"""Bearer tokens with roles. Tokens come from the config, `TELEDERM_BOOTSTRAP_TOKEN` (admin) and
the per-run internal token handed to the managed Orthanc's plugin (device)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    practitioner_id: str = ""  # a specialist token's IdNatPS (`[[api.tokens]] practitioner_id`)

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.name}"


def token_table(services) -> list[tuple[str, Principal]]:
    table = [(t.token, Principal(t.name, t.role, t.practitioner_id))
             for t in services.config.api.tokens]
    if services.config.bootstrap_token:
        table.append((services.config.bootstrap_token, Principal("bootstrap", "admin")))
    table.append((services.internal_token, Principal("orthanc", "device")))
    return table


_bearer = HTTPBearer(auto_error=False)


def require(*roles: str):
    """Dependency: the caller must hold one of `roles` (admin always passes)."""

    def dependency(request: Request,
                   creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        if creds is None:
            raise HTTPException(401, "a bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})
        for token, principal in request.app.state.tokens:
            if hmac.compare_digest(token.encode(), creds.credentials.encode()):
                if principal.role == "admin" or principal.role in roles:
                    return principal
                raise HTTPException(403, f"role {principal.role} may not do this")
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})

    return dependency
