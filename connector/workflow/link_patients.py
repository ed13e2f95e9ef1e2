"""ADT^A24 / ADT^A37: the identity server says two patient records are one person (link), or
takes that back (unlink) — IHE PAM / PAM-FR "link / unlink patient information".

A link merges nothing: each case stays on its record, with its demographics and its study in
the archive untouched (nothing is queued); the link makes a lookup by any identifier of either
record find the cases of both (`GET /api/cases?patient_id=`, the case's `patient.linked`), so
whoever reads a case sees the person's other record. Links are followed from record to record
(A-B and B-C: one group); an unlink removes the one pair it names. A merge (A40) of linked
records keeps the surviving record's links.

Each PID is found through the identifier index like any identity message: one whose
identifiers name two records is refused (`IdentityConflict`, ERR at that PID); a link where
either record is unknown here changes nothing and is answered AA (the route counts it as an
identity event about an unknown patient); both PIDs naming one record is AA, nothing to do.
"""

from __future__ import annotations

from ..domain import identity
from ..store.uow import UnitOfWork
from .commands import LinkPatients


def handle(cmd: LinkPatients, uow: UnitOfWork) -> list[str] | None:
    """Link or unlink; returns the accessions of both records' cases, None when either record
    is unknown here (nothing changes)."""
    pk = identity.one_record(uow.identity.find(identity.keys(cmd.patient)))
    try:
        other = identity.one_record(uow.identity.find(identity.keys(cmd.other)))
    except identity.IdentityConflict as err:
        err.party = 2
        raise
    if pk is None or other is None:
        uow.audit.append(at=uow.moment.iso, actor=cmd.actor, action="patient.unknown",
                         detail={"event": cmd.event, "outcome": "no case for a linked patient"})
        return None
    accessions = uow.cases.patient_accessions(pk) + (
        uow.cases.patient_accessions(other) if other != pk else [])
    changed = pk != other and (uow.identity.link(pk, other) if cmd.link
                               else uow.identity.unlink(pk, other))
    for accession in accessions:
        uow.audit.append(at=uow.moment.iso, actor=cmd.actor,
                         action="patient.linked" if cmd.link else "patient.unlinked",
                         accession=accession, detail={"event": cmd.event, "changed": changed})
    return accessions
