"""The roles a person who logs in to the pages can hold (users in the store), and what part of
the cases a caller may reach (`Reach`): a requester its scopes' facilities and services, a
specialist its routing pools, an admin or a manager everything.

Plain values in the pure domain, so the command line can offer the roles as choices without
loading the store and its SQL toolkit (`telederm wrap` starts without them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from .errors import DomainError

USER_ROLES = ("requester", "specialist", "manager", "admin")
UNSCOPED_ROLES = ("admin", "manager")  # they see every case
SCOPED_ROLES = ("requester", "device")  # the roles a scope list may limit
ANY = "*"
_PART = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")


@dataclass(frozen=True)
class Scope:
    """One facility (FINESS, as the case's `facility`) and service (ORC-17.1 / PV1-3.1, as the
    case's `service`); `*` for either means any."""

    facility: str
    service: str

    def __str__(self) -> str:
        return f"{self.facility}/{self.service}"


def parse_scope(text: str) -> Scope:
    """`FAC/SERVICE`, `FAC` (= `FAC/*`) or `*/SERVICE`; DomainError saying what is expected."""
    facility, _, service = text.strip().partition("/")
    service = service or ANY
    if not all(part == ANY or _PART.match(part) for part in (facility, service)):
        raise DomainError(f"scope {text!r} is not FACILITY/SERVICE", where="scope",
                          hint="e.g. 750712184/DERMATO (FINESS/service code), 750712184 for "
                               "every service of a facility, * for every case")
    return Scope(facility, service)


def parse_scopes(items: Iterable[str]) -> tuple[Scope, ...] | None:
    """The scopes of a person or a token, each checked; None (every case) for none at all or
    a `*` among them."""
    texts = [item.strip() for item in items]
    scopes = tuple(parse_scope(t) for t in texts if t != ANY)
    return None if not texts or ANY in texts else scopes


@dataclass(frozen=True)
class Reach:
    """The cases a caller may see and act on; None for a part means any. A case is within
    reach when it matches one of the scopes, and its pool is one of the pools (or it has no
    pool, or it is assigned to `practitioner_id`): `store/queries.within` says it in SQL."""

    scopes: tuple[Scope, ...] | None = None  # requester, device: facility/service pairs
    pools: tuple[str, ...] | None = None  # specialist: the pools they read
    practitioner_id: str = ""  # specialist: the cases assigned to them, whatever the pool

    @property
    def everything(self) -> bool:
        return self.scopes is None and self.pools is None


EVERYTHING = Reach()


def reach_of(role: str, practitioner_id: str, scopes: tuple[Scope, ...] | None,
             pools_of: Callable[[str], tuple[str, ...]]) -> Reach:
    """The reach of a caller: admins and managers every case; a specialist the pools
    `pools_of(practitioner_id)` gives (and the cases assigned to them, and those routed to no
    pool); a requester or a device its scopes (None: every case)."""
    if role in UNSCOPED_ROLES:
        return EVERYTHING
    if role == "specialist":
        return Reach(pools=pools_of(practitioner_id), practitioner_id=practitioner_id)
    return Reach(scopes=scopes)
