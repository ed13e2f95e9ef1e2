"""Reading a case is an event of the audit trail (who, from where, which case, when), as health
data rules ask: every channel that shows a case's data records it through this step, in a unit
of work of its own that commits before the data leaves."""

from __future__ import annotations

from ..store.uow import UnitOfWork
from .commands import RecordRead


def handle(cmd: RecordRead, uow: UnitOfWork) -> None:
    detail = {"via": cmd.via, "what": cmd.what}
    if cmd.peer:
        detail["from"] = cmd.peer
    uow.audit.append(at=uow.moment.iso, actor=cmd.actor, action="case.read",
                     accession=cmd.accession, detail=detail)
