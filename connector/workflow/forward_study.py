"""Forward each case's study to the hospital PACS (`[[dicom.forward]]`) by C-STORE, through
the outbox.

When: a PACS with `when = "ready"` is sent the study when its case becomes READY (`ready`,
called by `mark_ready`); one with `when = "answered"` when the report's Encapsulated PDF is in
the archive (`report_archived`, run by the worker in the unit of work that completes the
PDF's archive store), so the PDF goes with the images. A report stored later (or a corrected
one) is sent to every PACS then, `ready` ones included.

What: one outbox item per PACS and moment, on the PACS's own line (`dicom:<name>`), so a PACS
that is down holds back its own items only. The item (`perform`) sends what the archive holds
of the study when it runs, minus what that PACS already acknowledged (`uow.forwarded`): the
images first, Encapsulated PDFs last, each file as Orthanc keeps it (dicom/scu.py proposes
exactly their SOP classes and transfer syntaxes, and re-encodes nothing). Each
acknowledgement is recorded as it comes, so a retry after a partial send offers only the
rest, and a later item of the same case only what is new; nothing is sent twice.

Failures: a PACS that is down, or goes away mid-send, is tried again with the outbox's back-off
(`PeerUnavailable`). A PACS that rejects the association for good (`PeerRefused`), answers a
failure status for an object, or refuses an object's presentation context, makes the item
dead at once (`ForwardRefused`, naming each refused object by SOP Instance UID and status),
shown as any dead letter (`telederm queue list`, `/api/health` destinations); the objects it
took are recorded, so an operator's `telederm queue retry` offers only the others.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from pydicom.uid import EncapsulatedPDFStorage

from ..bootstrap import Services
from ..config import ForwardDestination
from ..dicom import scu
from ..domain.errors import ConnectorError, NotFound
from ..domain.model import Case
from ..store.outbox import Item
from ..store.uow import UnitOfWork

log = logging.getLogger("connector.forward")

KIND = "dicom.forward"
SPOOL = "forward"  # data_dir folder the files fetched from the archive wait in while sent


class ForwardRefused(ConnectorError):
    """The PACS answered that it did not keep some objects: sending them again as they are
    will not help until the PACS (or the objects) change."""

    code = "dicom-forward-refused"
    http_status = 502
    retryable = False


def ready(uow: UnitOfWork, case: Case) -> None:
    """The case became READY: queue its study for each `ready` PACS."""
    for dest in uow.services.config.dicom.forward:
        if dest.when == "ready":
            _queue(uow, dest, case, key=f"{KIND}:{dest.name}:{case.accession}:ready")


def report_archived(uow: UnitOfWork, sop_uid: str) -> None:
    """An object reached the archive; when it is a report's Encapsulated PDF, queue the study
    for every PACS (an `answered` one gets the images with it, a `ready` one the PDF)."""
    forward = uow.services.config.dicom.forward
    accession = uow.reports.accession_of(sop_uid) if forward else None
    if accession is None:
        return
    case = uow.cases.load(accession)
    for dest in forward:
        _queue(uow, dest, case, key=f"{KIND}:{dest.name}:{sop_uid}")


def _queue(uow: UnitOfWork, dest: ForwardDestination, case: Case, *, key: str) -> None:
    payload = json.dumps({"accession": case.accession, "study_uid": case.study_uid}).encode()
    uow.outbox.enqueue(kind=KIND, destination=dest.line, key=key, payload=payload,
                       accession=case.accession, now=uow.moment.iso)


def perform(services: Services, item: Item) -> int:
    """The outbox job: C-STORE to the item's PACS the study's objects it has not acknowledged;
    returns how many were sent. Raises as the module docstring says."""
    dest = next((d for d in services.config.dicom.forward if d.line == item.destination), None)
    if dest is None:
        raise NotFound(f"{item.destination} is not a [[dicom.forward]] PACS any more",
                       where="dicom.forward", hint="configure it again, or discard the item")
    body = json.loads(item.payload)
    accession = body["accession"]
    with services.reading() as uow:
        taken = uow.forwarded.acknowledged(dest.name, accession)
    instances = sorted((i for i in services.archive.study_instances(body["study_uid"])
                        if i["SOPInstanceUID"] not in taken),
                       key=lambda i: (i["SOPClassUID"] == EncapsulatedPDFStorage,
                                      i["SOPInstanceUID"]))
    if not instances:
        return 0
    spool = services.config.data_dir / SPOOL
    spool.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=spool) as folder:
        files = []
        for n, instance in enumerate(instances):
            path = Path(folder) / f"{n:05d}.dcm"
            path.write_bytes(services.archive.instance_file(instance["orthanc_id"]))
            files.append(path)
        results = scu.send(files, ae_title=dest.ae_title, host=dest.host, port=dest.port,
                           calling_ae_title=dest.calling_ae,
                           on_result=lambda sent: _acknowledged(services, dest, accession, sent))
    refused = [r for r in results if not r.stored]
    log.info("forward %s (%s): %d of %d object(s) stored", dest.name, accession,
             len(results) - len(refused), len(results))
    if refused:
        raise ForwardRefused(
            f"the PACS did not keep {len(refused)} of {len(results)} object(s): "
            + "; ".join(f"{r.sop_instance_uid} ({_outcome(r)})" for r in refused),
            where=f"dicom.forward {dest.name}",
            hint="fix the PACS (or what it refuses), then telederm queue retry the item")
    return len(results)


def _acknowledged(services: Services, dest: ForwardDestination, accession: str,
                  sent: scu.Sent) -> None:
    if not sent.stored:
        return
    with services.unit() as uow:
        uow.forwarded.record(destination=dest.name, accession=accession,
                             sop_uid=sent.sop_instance_uid, sop_class_uid=sent.sop_class_uid,
                             transfer_syntax_uid=sent.transfer_syntax_uid, status=sent.status,
                             at=uow.moment.iso)


def _outcome(sent: scu.Sent) -> str:
    said = f"status 0x{sent.status:04X}" if sent.status is not None else "not offered"
    return f"{said}: {sent.comment}" if sent.comment else said
