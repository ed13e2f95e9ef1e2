"""ADT^A08 / ADT^A31: the identity server updates a patient's demographics.

In the message's transaction: the patient's stored demographics are replaced (the message is a
snapshot, as a new order's PID already is), which updates every case of that patient (cases
point at one patients row); then, for each case that has something in the archive (an image or
a report, stored or queued), an `archive.update_patient` job is queued, and the worklist entries
of the cases that still take images are rewritten. A patient nobody ordered for is answered AA
and nothing changes (the audit row says so, without patient data; the HL7 route counts it as
an identity event about an unknown patient, shown by `telederm status`).

The record is found by any identifier the message sends (the identifier index: IPP, INS, other
PID-3 repetitions), so an update from a system that holds only the IPP reaches a patient keyed
on the INS; identifiers the message does not send are kept, and so is the INS (with the status
the message gives: QUAL -> VALI makes the IPP the identifier again). A message whose
identifiers name two records, or that brings a second identifier of one authority, is refused
(`IdentityConflict`, domain/identity.py) and changes nothing: only a merge joins records.

The archive job (`perform`) runs in the outbox on the archive's line, so after every store
queued before it. It reads the patient from the store when it runs (a later update wins, a
retry converges) and rewrites the Patient module of each stored instance of the case's study
whose tags differ, keeping every UID:

- `POST /instances/{id}/modify` (Replace, Keep Study/Series/SOP Instance UIDs, Force) gives the
  new file; when PatientID is unchanged the new instance has the same Orthanc id as the old one,
  so the old one is deleted first and the new file is kept in `data_dir/archive-updates/` until
  Orthanc has it (a crash in between is repaired by the next attempt); when PatientID changes
  (a merge) the new one is stored first and the old one deleted after;
- then `POST /studies/{id}/reconstruct`, so the study and patient show the new tags.

Why not `POST /studies/{id}/modify` with `Keep` + `Force`: on Orthanc 1.10.1 (Debian bookworm)
it fails with HTTP 500 "Cannot store an instance" when every UID is kept and PatientID is not
changed (the modified instance has the id of its source, and OverwriteInstances is off); with
OverwriteInstances on and `KeepSource: false` it deletes the study it just rewrote; and a study
route refuses to change PatientID (HTTP 400), which a merge needs. Checked against the managed
Orthanc while writing this module.
"""

from __future__ import annotations

import hashlib
import json
import logging

from ..archive.client import OTHER_IDS
from ..archive.errors import ArchiveUnavailable
from ..dicom.common import other_patient_ids
from ..domain import identity
from ..domain.model import Patient
from ..store.uow import UnitOfWork
from . import publish_worklist
from ..bootstrap import Services
from .commands import UpdatePatient

log = logging.getLogger("connector.identity")

KIND = "archive.update_patient"
DESTINATION = "archive"  # the line of archive.store: stores queued earlier go first
SPOOL = "archive-updates"


def message_key(sender: str, control_id: str) -> str:
    """A short stable key for one inbound message (outbox keys are at most 120 characters)."""
    return hashlib.sha256(f"{sender}|{control_id}".encode()).hexdigest()[:20]


def handle(cmd: UpdatePatient, uow: UnitOfWork) -> list[str] | None:
    """Store the patient's demographics on their record; returns the accessions of their cases,
    None when no record has any of the message's identifiers (nothing changes). `cmd.key`
    identifies the message (`message_key`). Raises `IdentityConflict` (nothing written) when
    the identifiers name two records or bring a second identifier of one authority."""
    accessions = apply(uow, cmd.patient, event=cmd.event, key=cmd.key, actor=cmd.actor)
    if accessions is None:
        uow.audit.append(at=uow.moment.iso, actor=cmd.actor, action="patient.unknown",
                         detail={"event": cmd.event, "outcome": "no case for this patient"})
    return accessions


def identify(uow: UnitOfWork, patient: Patient) -> tuple[int | None, Patient]:
    """For an order: the record its patient is (None when new to the connector) and what that
    record becomes. Raises `IdentityConflict` when the identifiers name two records, bring a
    second identifier of one authority, or the record's name, birth date or sex differ."""
    pk = identity.one_record(uow.identity.find(identity.keys(patient)))
    if pk is None:
        return None, patient
    stored = uow.cases.patient(pk)
    identity.check(stored, uow.identity.held(pk), patient, traits=True)
    return pk, identity.combine(stored, patient)


def apply(uow: UnitOfWork, patient: Patient, *, event: str, key: str, actor: str,
          prior: tuple[str, str] | None = None,
          change_identifier: bool = False) -> list[str] | None:
    """Give the patient's record the message's demographics and identifiers
    (`domain.identity.combine`). `prior` is a merge's prior patient (A40: its record gives the
    surviving one its cases and identifiers and is deleted, or becomes the surviving one when
    that is unknown) or, with `change_identifier` (A47), the identifier being replaced (it
    finds nobody afterwards). Returns the accessions of the patient's cases, or None when no
    record matches (nothing is created). Raises `IdentityConflict` before writing anything."""
    now = uow.moment.iso
    prior_pk = uow.cases.find_patient(*prior) if prior else None
    found = {k: pk for k, pk in uow.identity.find(identity.keys(patient)).items()
             if pk != prior_pk}
    if change_identifier and prior_pk is not None and found:
        raise identity.IdentityConflict("the new identifier already belongs to another patient "
                                        "here", where="patient.id", identifier=next(iter(found)))
    target = identity.one_record(found)
    if target is None:
        target, prior_pk = prior_pk, None
    if target is None:
        return None
    # a merged record's identifiers find the patient but stay retired, whoever still sends them
    retired = (frozenset([prior]) if prior else frozenset()) | uow.identity.inactive(target)
    held = uow.identity.held(target) | (uow.identity.held(prior_pk) if prior_pk else set())
    stored = uow.cases.patient(target)
    identity.check(stored, held, patient, traits=False, ignore=retired)
    own = uow.cases.patient_accessions(target)
    moved = uow.cases.move_cases(prior_pk, target, now) if prior_pk else []
    if change_identifier:
        uow.identity.retire(*prior)
    changed = uow.cases.update_patient(target, identity.combine(stored, patient, retired))
    propagate(uow, moved + (own if changed else []), key=key)
    for accession in moved:
        uow.audit.append(at=now, actor=actor, action="patient.merged", accession=accession,
                         detail={"event": event})
    for accession in own:
        uow.audit.append(at=now, actor=actor, action="patient.updated", accession=accession,
                         detail={"event": event, "changed": changed})
    return own + moved


def propagate(uow: UnitOfWork, accessions: list[str], *, key: str) -> None:
    """After the patient of these cases changed: queue the archive update of each case that has
    archive content, and rewrite the worklist entries of those that still take images."""
    now = uow.moment.iso
    uow.cases.touch(accessions, now)
    for accession in accessions:
        if uow.cases.has_archive_content(accession):
            uow.outbox.enqueue(kind=KIND, destination=DESTINATION,
                               key=f"{KIND}:{accession}:{key}",
                               payload=json.dumps({"accession": accession}).encode(),
                               accession=accession, now=now)
        refresh_worklist(uow, accession, key=key)


def refresh_worklist(uow: UnitOfWork, accession: str, *, key: str) -> None:
    """Queue the rewrite of the case's worklist entries (built from the case as stored when the
    worker runs), if it still takes images."""
    if uow.cases.load(accession).status not in publish_worklist.SCHEDULABLE:
        return
    for modality in publish_worklist.MODALITIES:
        uow.outbox.enqueue(kind=publish_worklist.KIND, destination=publish_worklist.DESTINATION,
                           key=f"{publish_worklist.KIND}:{accession}:{modality}:{key}",
                           payload=json.dumps({"accession": accession,
                                               "modality": modality}).encode(),
                           accession=accession, now=uow.moment.iso)


def archive_tags(patient: Patient) -> dict:
    """The Patient module as our objects carry it (connector/dicom/common.py), the other
    identifiers included: they come from the identifier index, so a change of identifier or a
    merge reaches the archive as a new object would carry it."""
    return {"PatientID": patient.id, "IssuerOfPatientID": patient.issuer,
            "PatientName": patient.name.hl7(), "PatientBirthDate": patient.birth_date,
            "PatientSex": patient.sex, OTHER_IDS: other_patient_ids(patient)}


def perform(services: Services, payload: bytes) -> str:
    """The outbox job: bring the case's stored instances to the patient as stored now.
    Returns "absent" (nothing in the archive), "unchanged" or "updated"; raises
    `ArchiveUnavailable` (retried) while the archive is down or not yet up to date."""
    accession = json.loads(payload)["accession"]
    with services.reading() as uow:
        case = uow.cases.load(accession)
    target = archive_tags(case.order.patient)
    archive = services.archive
    spool = services.config.data_dir / SPOOL / accession
    for leftover in sorted(spool.glob("*.dcm")) if spool.is_dir() else ():
        archive.store(services.files.read(leftover))  # its source was deleted by an interrupted attempt
        leftover.unlink()
    stored = archive.study_patient_tags(case.study_uid)
    if stored is None:
        return "absent"
    stale = [entry for entry in stored if _differs(entry, target)]
    for entry in stale:
        data = archive.modified_instance(entry["orthanc_id"], target)
        if entry["PatientID"] == target["PatientID"]:
            path = spool / f"{entry['SOPInstanceUID']}.dcm"
            services.files.write(path, data)
            archive.delete_instance(entry["orthanc_id"])
            archive.store(data)
            path.unlink()
        else:
            archive.store(data)
            archive.delete_instance(entry["orthanc_id"])
    if not stale:
        return "unchanged"
    archive.reconstruct_study(case.study_uid)
    again = archive.study_patient_tags(case.study_uid) or []
    if any(_differs(entry, target) for entry in again):
        raise ArchiveUnavailable("the archive does not show the patient update yet",
                                 where=accession, hint="retried by the outbox")
    log.info("archive: %d instance(s) of %s given the patient's current demographics",
             len(stale), accession)
    return "updated"


def _differs(entry: dict, target: dict) -> bool:
    return any(entry.get(name, "") != value for name, value in target.items())
