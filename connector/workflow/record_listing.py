"""Listing cases is an event of the audit trail too (who, from where, how many cases, which
filters), as a read of each is: a list shows names and identifiers. The filters' names are
kept, not their values, which may be a patient's identifier."""

from __future__ import annotations

from ..store.uow import UnitOfWork
from .commands import RecordListing


def handle(cmd: RecordListing, uow: UnitOfWork) -> None:
    detail = {"via": cmd.via, "count": cmd.count, "filters": sorted(cmd.filters)}
    if cmd.peer:
        detail["from"] = cmd.peer
    uow.audit.append(at=uow.moment.iso, actor=cmd.actor, action="cases.listed", detail=detail)
