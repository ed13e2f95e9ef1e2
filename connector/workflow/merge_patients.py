"""ADT^A40: two records of one person are merged; the prior patient (MRG-1) becomes the
surviving one (PID).

In the message's transaction (`update_patient.apply`):
- both known: the surviving record takes the message's demographics, the prior patient's cases
  and identifiers move to it (the prior identifier still finds the patient) and the prior
  record is deleted; PID identifiers naming a third record are refused (`IdentityConflict`);
- prior patient known, surviving patient unknown: the prior record takes the surviving identity
  and demographics (its cases keep their record);
- then every case whose patient changed gets the follow-up of an A08: an
  `archive.update_patient` job when it has archive content (the job rewrites PatientID too, so
  the study moves to the surviving patient in Orthanc) and rewritten worklist entries.

Decided: a merge whose prior patient has no record here is answered AA ("nothing to merge",
audited without patient data); if the surviving patient is known, the message's demographics
are still applied to them, as an A08 would. Yearly billing limits count a patient's acts
through their cases, so merged cases count for the surviving patient from then on; charge lines
already written keep the identifier they were billed with.
"""

from __future__ import annotations

from ..domain import identity
from ..store.uow import UnitOfWork
from . import update_patient
from .commands import MergePatients


def handle(cmd: MergePatients, uow: UnitOfWork) -> list[str] | None:
    """Merge; returns the accessions whose patient is now `cmd.surviving`, None when neither
    patient has a record here."""
    prior = (cmd.prior_id, cmd.prior_issuer)
    if prior not in identity.keys(cmd.surviving) and uow.cases.find_patient(*prior) is None:
        uow.audit.append(at=uow.moment.iso, actor=cmd.actor, action="patient.merge_ignored",
                         detail={"event": cmd.event, "outcome": "prior patient has no case"})
    return update_patient.apply(uow, cmd.surviving, event=cmd.event, key=cmd.key,
                                actor=cmd.actor, prior=prior)
