"""Step 2: an image for a case becomes a DICOM object on disk and an archive job in the outbox.

Every channel (HTTP, CLI import, watched folder, HL7 OBX) comes through here, and the object is
built by `dicom.wrap.wrap_image`, so the same file gives the same object whatever the channel.
The SOP Instance UID derives from the study, the kind and the SHA-256 of the file as received,
so sending the same file twice yields the same instance and no second job (`attached` finds
it, for an upload repeated after the case stopped taking images). The quality gate's
flags (blurred, badly exposed, too small) are kept on the image and shown on the case, so the
requester can be asked for a retake before the dermatologist's time is spent. A refused file (ImageError)
raises before anything is written or committed.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache

from ..bootstrap import Services
from ..dicom.dermoscopy import select_device
from ..dicom.quality import QualityReport, assess_dataset
from ..dicom.sites import lookup
from ..dicom import uids
from ..dicom.wrap import WrappedImage, check_kind, wrap_image
from ..domain.errors import ImageError, StateConflict
from ..domain.model import Case, ImageKind, LateralityValues
from ..domain.states import CaseEvent, next_status
from ..store.uow import UnitOfWork
from .commands import AttachImage
from .study import MODALITY_LABEL, StudyFacts, of_case


@dataclass(frozen=True)
class AttachedImage:
    accession: str
    sop_instance_uid: str
    kind: str
    created: bool  # False when the same file was already attached
    quality: tuple[str, ...] = ()  # quality gate flags: blurred, underexposed, ...


@dataclass(frozen=True)
class Prepared:
    """An image built and checked, not yet recorded."""

    accession: str
    kind: str
    sha256: str
    sop_uid: str
    series_uid: str
    site: str
    laterality: str
    description: str
    wrapped: WrappedImage
    quality: Future[QualityReport]  # the gate runs while the image is recorded
    actor: str


def attach(services: Services, commands: list[AttachImage]) -> list[AttachedImage]:
    """Attach files to one case, all or none: what every channel (HTTP upload, CLI import,
    watched folder) calls.

    The objects are built outside any transaction (decoding can take a second each), then
    recorded with their archive jobs and the case's transition in one short unit of work. A
    case that takes no more images raises StateConflict, unless every file is already attached
    to it (a client repeating an upload whose answer it lost gets that answer again). A refused
    file raises its ImageError, naming it by position among several (`for_file`), and nothing
    is stored.
    """
    accession = commands[0].accession
    with services.reading() as uow:
        case = uow.cases.load(accession)
        number = uow.images.count(accession)
        try:
            next_status(case.status, CaseEvent.IMAGE_RECEIVED)
        except StateConflict:
            known = [attached(uow, case, cmd.data, cmd.kind) for cmd in commands]
            if not all(known):
                raise
            return known
        study = of_case(uow, case)
    prepared = []
    for index, cmd in enumerate(commands):
        try:
            prepared.append(prepare(services, case, cmd, study=study, number=number + index + 1))
        except ImageError as exc:
            raise for_file(exc, index, len(commands)) from None
    with services.unit() as uow:
        return [handle(p, uow) for p in prepared]


def attach_each(services: Services, accession: str,
                commands: Iterable[Callable[[], AttachImage]], *,
                ahead: int = 2) -> Iterator[AttachedImage | ImageError]:
    """Attach a batch file by file, for a channel where a refused file must not stop the
    others (`telederm import`): yields, in order, each file's AttachedImage or its ImageError.
    Each command is a callable that reads its file.

    While one image is recorded, the next `ahead` are read and prepared in threads (hashing,
    writing, and Pillow's decode and resize in the quality gate release the GIL), so a batch
    keeps both CPUs and the disk busy and the archive worker is fed sooner; at most `ahead` + 1
    files are in memory. The images already prepared when one is recorded share its unit of
    work: one commit (and its fsync) for them, not one each. Instance numbers follow the batch
    order after the case's images. A case that no longer takes images is handed to `attach`
    file by file, which answers for files already attached and refuses the others.
    """
    with services.reading() as uow:
        case = uow.cases.load(accession)
        number = uow.images.count(accession)
        study = of_case(uow, case)
    try:
        next_status(case.status, CaseEvent.IMAGE_RECEIVED)
    except StateConflict:
        for make in commands:
            try:
                yield attach(services, [make()])[0]
            except ImageError as exc:
                yield exc
        return

    def job(index: int, make: Callable[[], AttachImage]) -> Prepared:
        return prepare(services, case, make(), study=study, number=number + index + 1)

    def record(pending: deque[Future]) -> list[AttachedImage | ImageError]:
        """The head of `pending` and the images after it that are ready too, recorded in one
        unit of work (one commit for them all)."""
        ready = [pending.popleft()]
        wait(ready)
        while pending and pending[0].done():
            ready.append(pending.popleft())
        outcomes: list[Prepared | ImageError] = []
        for future in ready:
            try:
                outcomes.append(future.result())
            except ImageError as exc:
                outcomes.append(exc)
        if not any(isinstance(o, Prepared) for o in outcomes):
            return outcomes
        with services.unit() as uow:
            return [o if isinstance(o, ImageError) else handle(o, uow) for o in outcomes]

    with ThreadPoolExecutor(ahead, thread_name_prefix="attach") as pool:
        pending: deque[Future] = deque()
        for index, make in enumerate(commands):
            pending.append(pool.submit(job, index, make))
            if len(pending) > ahead:
                yield from record(pending)
        while pending:
            yield from record(pending)


def series_of(case: Case, cmd: AttachImage) -> str:
    """The Series Instance UID an image joins: one per kind, body site and description."""
    return uids.series_uid(case.study_uid, cmd.kind, cmd.site, cmd.laterality,
                           cmd.description)


def prepare(services: Services, case: Case, cmd: AttachImage, *, study: StudyFacts,
            number: int) -> Prepared:
    """Check the command, wrap the file as DICOM (instance `number` of the case) and start
    the quality gate in the background (`handle` takes its verdict); writes nothing (the
    series is numbered when the image is recorded)."""
    kind, laterality = cmd.kind, cmd.laterality
    check_kind(kind)
    if laterality and laterality not in {v.value for v in LateralityValues}:
        raise ImageError(f"laterality '{laterality}' is not R, L, B or U", where="laterality")
    body_site = lookup(services.mappings.sites, cmd.site) if cmd.site else None
    dermoscope = _dermoscope(services, kind, cmd.device, cmd.tracking_id)
    next_status(case.status, CaseEvent.IMAGE_RECEIVED)  # refuse a closed case before any work
    sha = hashlib.sha256(cmd.data).hexdigest()
    sop_uid = uids.image_uid(case.study_uid, kind, sha)
    series_uid = series_of(case, cmd)
    moment = services.moment()
    config = services.config
    wrapped = wrap_image(
        cmd.data, kind=kind, patient=case.order.patient, **study.attributes(),
        series_uid=series_uid, sop_uid=sop_uid, instance_number=number,
        series_description=cmd.description or _series_label(services, kind, body_site,
                                                               laterality),
        content_datetime=moment.hl7, site=body_site, laterality=laterality,
        description=cmd.description, institution=config.facility.name, dermoscope=dermoscope,
        max_bytes=config.images.max_mb * 1024 * 1024,
        max_pixels=config.images.max_megapixels * 1_000_000, sha256=sha)
    return Prepared(case.accession, kind, sha, sop_uid, series_uid, cmd.site, laterality,
                    cmd.description, wrapped, _gate().submit(assess_dataset, wrapped.dataset),
                    cmd.actor)


def handle(prepared: Prepared, uow: UnitOfWork) -> AttachedImage:
    """Record a prepared image in the caller's unit of work: file, row, case transition,
    archive job, audit. The same image recorded twice is a no-op (`created` False)."""
    p = prepared
    known = uow.images.find(p.sop_uid)
    if known is not None:  # the same answer as the first time, quality flags included
        return AttachedImage(p.accession, p.sop_uid, p.kind, created=False,
                             quality=_flags(known.quality))
    now = uow.moment.iso
    case = uow.cases.load(p.accession)
    case.apply(CaseEvent.IMAGE_RECEIVED)
    # numbered here, in the transaction that records it: distinct and stable per case
    p.wrapped.dataset.SeriesNumber = uow.counters.series_number(p.accession, p.series_uid)
    path = uow.services.config.data_dir / "images" / p.accession / f"{p.sop_uid}.dcm"
    data = p.wrapped.to_bytes()
    quality = p.quality.result()  # a gate that fails leaves no file behind
    uow.services.files.write(path, data)
    uow.images.insert(
        accession=p.accession, sop_uid=p.sop_uid, series_uid=p.series_uid,
        sop_class_uid=p.wrapped.sop_class_uid, kind=p.kind, source_sha256=p.sha256,
        path=str(path), site_code=p.site, laterality=p.laterality, description=p.description,
        created_at=now, quality=json.dumps(quality.as_dict()))
    uow.cases.save_status(case, now)
    uow.outbox.enqueue(kind="archive.store", destination="archive", key=f"archive:{p.sop_uid}",
                       payload=str(path).encode(), accession=p.accession, now=now)
    uow.audit.append(at=now, actor=p.actor, action="image.attached", accession=p.accession,
                     detail={"sop_instance_uid": p.sop_uid, "sha256": p.sha256, "kind": p.kind,
                             "source_type": p.wrapped.source_type,
                             "pixel_path": p.wrapped.pixel_path,
                             "orientation": p.wrapped.orientation,
                             "transfer_syntax": p.wrapped.transfer_syntax_uid,
                             "quality": list(quality.flags)})
    return AttachedImage(p.accession, p.sop_uid, p.kind, created=True, quality=quality.flags)


def attached(uow: UnitOfWork, case: Case, data: bytes, kind: str) -> AttachedImage | None:
    """The image this file already is in `case` (as `handle` answered it), or None: lets a
    client repeating an upload whose answer it lost learn that it is there, even once the
    case no longer takes images."""
    sop_uid = uids.image_uid(case.study_uid, kind, hashlib.sha256(data).hexdigest())
    row = uow.images.find(sop_uid, case.accession)
    if row is None:
        return None
    return AttachedImage(case.accession, sop_uid, row.kind, created=False,
                         quality=_flags(row.quality))


def for_file(exc: ImageError, index: int, count: int) -> ImageError:
    """The refusal of file `index` of `count`, saying which (by position: names may carry
    patient data) and that none of them was stored."""
    if count == 1 or exc.where != "image":
        return exc
    return type(exc)(f"file {index + 1} of {count}: {exc.text}; none of the {count} files was "
                      "stored", where=f"file.{index}", hint=exc.hint, code=exc.code)


# What a series is called when its upload gives no description: its kind, then its body site.
_MODALITY = {ImageKind.PHOTO.value: "XC", ImageKind.DERMOSCOPY.value: "DMS"}
_SIDE = {"fr": {"R": "droit", "L": "gauche", "B": "bilatéral"},
         "en": {"R": "right", "L": "left", "B": "bilateral"}}


def _series_label(services: Services, kind: str, site, laterality: str) -> str:
    """Series Description of an upload without a description: "Dermoscopie — Dos gauche"."""
    language = services.config.reports.language
    label = MODALITY_LABEL[language][_MODALITY[kind]]
    if site is not None:
        where = services.mappings.sites[site.code].label_fr if language == "fr" else site.meaning
        side = _SIDE[language].get(laterality, "")
        label = f"{label} - {where} {side}".strip()
    return label[:64]


@lru_cache(maxsize=1)
def _gate() -> ThreadPoolExecutor:
    """The threads the quality gate runs in: its decode and resize release the GIL, so it
    measures an image while the caller serialises it and looks its case up in the store (one
    HTTP upload, one file of an import)."""
    return ThreadPoolExecutor(2, thread_name_prefix="quality")


def _flags(quality: str) -> tuple[str, ...]:
    return tuple(json.loads(quality or "{}").get("flags", []))


def _dermoscope(services: Services, kind: str, device: str, tracking_id: str):
    """The device and acquisition settings for a dermoscopy image (None for a photo)."""
    if kind != ImageKind.DERMOSCOPY.value:
        if device or tracking_id:
            raise ImageError("device and tracking_id apply to dermoscopy images only",
                             where="device" if device else "tracking_id",
                             hint="send kind=dermoscopy, or leave them out")
        return None
    return select_device(services.mappings.devices, device, fallback=services.config.images.device,
                         tracking_id=tracking_id)
