"""Worklist: each open case is offered to capture devices as one entry per modality (XC, DMS).

`enqueue` runs in the transaction that opens the case (open_case), so a case never exists
without its publication queued. The outbox worker then calls `perform`, which writes the entry
file that Orthanc's ModalityWorklists plugin serves; the file name is fixed per case and
modality, so a retry rewrites the same file. The entry is built from the case as stored when the
worker runs, and is not written at all if the case no longer takes images.

`retire` removes the entries of cases that no longer take images (answered, amended, closed,
cancelled, rejected); the worker calls it periodically, so no other step has to remember to.

The entry's Scheduled Procedure Step start and Requested Procedure Description are the study's
date-time and description (`study`): the order's time, as on every object of the study.

Each entry carries the case's triage level as Requested Procedure Priority (the order priority
plus the questionnaire's red flags), so capture devices list the most urgent cases first.
"""

from __future__ import annotations

import json
import logging

from ..bootstrap import Services
from ..dicom.worklist import MODALITIES, WorklistEntry, WorklistFolder
from ..domain.states import CaseEvent, CaseStatus, TRANSITIONS
from ..store.uow import UnitOfWork
from . import study

log = logging.getLogger("connector.worklist")

KIND = "worklist.publish"
DESTINATION = "worklist"

# A case is on the worklist while it can still receive images.
SCHEDULABLE = frozenset(s for (s, e) in TRANSITIONS if e == CaseEvent.IMAGE_RECEIVED)


def enqueue(uow: UnitOfWork, accession: str) -> None:
    """Queue the publication of the case's entries, in the caller's unit of work."""
    for modality in MODALITIES:
        uow.outbox.enqueue(kind=KIND, destination=DESTINATION,
                           key=f"{KIND}:{accession}:{modality}",
                           payload=json.dumps({"accession": accession,
                                               "modality": modality}).encode(),
                           accession=accession, now=uow.moment.iso)


def perform(services: Services, payload: bytes) -> str:
    """Write (or replace) one entry file; returns "written" or "skipped" (case closed meanwhile
    or worklist disabled)."""
    body = json.loads(payload)
    accession, modality = body["accession"], body["modality"]
    if not services.config.worklist.enabled:
        return "skipped"
    with services.reading() as uow:
        case = uow.cases.load(accession)
        facts = study.of_case(uow, case)
    if case.status not in SCHEDULABLE:
        return "skipped"
    text = study.MODALITY_LABEL[services.config.reports.language]
    entry = WorklistEntry(
        accession=accession, study_uid=case.study_uid,
        placer_order_number=case.order.placer_order_number, patient=case.order.patient,
        requester=case.order.requester, priority=case.order.priority, modality=modality,
        station_ae=services.config.worklist.station_ae(modality), start=facts.datetime,
        procedure_description=facts.description, step_description=text[modality],
        triage_level=case.order.triage.level)
    WorklistFolder(services.config.worklist_folder).write(entry)
    return "written"


def retire(services: Services) -> int:
    """Withdraw the entries of cases that no longer take images; returns how many."""
    folder = WorklistFolder(services.config.worklist_folder)
    published = folder.published()
    if not published:
        return 0
    accessions = sorted({a for a, _ in published})
    with services.reading() as uow:
        status = uow.cases.statuses(accessions)
    gone = [(a, m) for a, m in published
            if a in status and CaseStatus(status[a]) not in SCHEDULABLE]
    if not gone:
        return 0
    with services.unit() as uow:
        for accession, modality in gone:
            if folder.remove(accession, modality):
                uow.audit.append(at=uow.moment.iso, actor="worker", action="worklist.retired",
                                 accession=accession,
                                 detail={"modality": modality, "status": status[accession]})
    log.info("withdrew %d worklist entr%s", len(gone), "y" if len(gone) == 1 else "ies")
    return len(gone)
