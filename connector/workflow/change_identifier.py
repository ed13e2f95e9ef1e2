"""ADT^A47: a patient's identifier was wrong or is replaced; MRG-1 names the old one, PID-3 the
new one (IHE PAM "change patient identifier list").

In the message's transaction (`update_patient.apply`): the record holding the old identifier
takes the new one (the old one finds nobody afterwards) and the message's demographics, and
every case of that patient gets the follow-up of an A08 (the archive job rewrites PatientID,
the worklist entries are rewritten). A change to an identifier that already belongs to another
patient is refused (`IdentityConflict`, ERR at that PID-3 repetition): that is a merge (A40),
which the identity server must say. An old identifier unknown here is answered AA, counted as
an identity event about an unknown patient, and changes nothing.
"""

from __future__ import annotations

from ..store.uow import UnitOfWork
from . import update_patient
from .commands import ChangeIdentifier


def handle(cmd: ChangeIdentifier, uow: UnitOfWork) -> list[str] | None:
    """Change the identifier; returns the patient's accessions, None when the old identifier is
    unknown here."""
    accessions = update_patient.apply(uow, cmd.patient, event=cmd.event, key=cmd.key,
                                      actor=cmd.actor, prior=(cmd.prior_id, cmd.prior_issuer),
                                      change_identifier=True)
    if accessions is None:
        uow.audit.append(at=uow.moment.iso, actor=cmd.actor, action="patient.unknown",
                         detail={"event": cmd.event, "outcome": "no case for this identifier"})
    return accessions
