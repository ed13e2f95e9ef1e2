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
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ..dicom.dermoscopy import select_device
from ..dicom.quality import QualityReport, assess_dataset
from ..dicom.sites import lookup
from ..dicom import uids
from ..dicom.wrap import WrappedImage, check_kind, wrap_image
from ..domain.errors import ImageError
from ..domain.model import Case, ImageKind, LateralityValues
from ..domain.states import CaseEvent, next_status
from ..store import audit, cases, outbox
from ..store.clock import iso
from ..store.schema import images
from .bootstrap import Services
from .common import dicom_dt, write_durably


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
    quality: QualityReport


def handle(services: Services, accession: str, data: bytes, *, kind: str = "photo",
           site: str = "", laterality: str = "", description: str = "", device: str = "",
           tracking_id: str = "", actor: str) -> AttachedImage:
    """Build the object outside any transaction (decoding can take a second), then record it,
    its archive job and the case's transition in one short transaction."""
    with services.engine.connect() as conn:
        case = cases.load(conn, accession)
        number = conn.execute(select(func.count()).select_from(images).where(
            images.c.accession == accession)).scalar() + 1
    prepared = prepare(services, case, data, number=number, kind=kind, site=site,
                       laterality=laterality, description=description, device=device,
                       tracking_id=tracking_id)
    with services.engine.begin() as conn:
        return record(conn, services, prepared, actor=actor)


def prepare(services: Services, case: Case, data: bytes, *, number: int, kind: str = "photo",
            site: str = "", laterality: str = "", description: str = "", device: str = "",
            tracking_id: str = "") -> Prepared:
    """Check the arguments, wrap the file as DICOM and run the quality gate; writes nothing."""
    check_kind(kind)
    if laterality and laterality not in {v.value for v in LateralityValues}:
        raise ImageError(f"laterality '{laterality}' is not R, L, B or U", where="laterality")
    body_site = lookup(services.mappings.sites, site) if site else None
    dermoscope = _dermoscope(services, kind, device, tracking_id)
    next_status(case.status, CaseEvent.IMAGE_RECEIVED)  # refuse a closed case before any work
    sha = hashlib.sha256(data).hexdigest()
    sop_uid = uids.image_uid(case.study_uid, kind, sha)
    series_uid = uids.series_uid(case.study_uid, kind)
    moment = services.now()
    config = services.config
    wrapped = wrap_image(
        data, kind=kind, patient=case.order.patient, study_uid=case.study_uid,
        accession=case.accession, series_uid=series_uid, sop_uid=sop_uid,
        instance_number=number, study_datetime=case.order.ordered_at[:14] or dicom_dt(moment),
        content_datetime=dicom_dt(moment), referring=case.order.requester.name,
        site=body_site, laterality=laterality, description=description,
        institution=config.facility_name, dermoscope=dermoscope,
        max_bytes=config.images_max_mb * 1024 * 1024,
        max_pixels=config.images_max_megapixels * 1_000_000)
    return Prepared(case.accession, kind, sha, sop_uid, series_uid, site, laterality,
                    description, wrapped, assess_dataset(wrapped.dataset))


def record(conn: Connection, services: Services, prepared: Prepared, *,
           actor: str) -> AttachedImage:
    """In the caller's transaction: file, row, case transition, archive job, audit.
    The same image recorded twice is a no-op (`created` False)."""
    p = prepared
    known = conn.execute(select(images.c.quality).where(images.c.sop_uid == p.sop_uid)).first()
    if known is not None:  # the same answer as the first time, quality flags included
        return AttachedImage(p.accession, p.sop_uid, p.kind, created=False,
                             quality=_flags(known.quality))
    now = iso(services.now())
    case = cases.load(conn, p.accession)
    case.apply(CaseEvent.IMAGE_RECEIVED)
    path = services.config.data_dir / "images" / p.accession / f"{p.sop_uid}.dcm"
    write_durably(path, p.wrapped.to_bytes())
    conn.execute(images.insert().values(
        accession=p.accession, sop_uid=p.sop_uid, series_uid=p.series_uid,
        sop_class_uid=p.wrapped.sop_class_uid, kind=p.kind, source_sha256=p.sha256,
        path=str(path), site_code=p.site, laterality=p.laterality, description=p.description,
        created_at=now, quality=json.dumps(p.quality.as_dict())))
    cases.save_status(conn, case, now)
    outbox.enqueue(conn, kind="archive.store", destination="archive", key=f"archive:{p.sop_uid}",
                   payload=str(path).encode(), accession=p.accession, now=now)
    audit.append(conn, at=now, actor=actor, action="image.attached", accession=p.accession,
                 detail={"sop_instance_uid": p.sop_uid, "sha256": p.sha256, "kind": p.kind,
                         "source_type": p.wrapped.source_type,
                         "pixel_path": p.wrapped.pixel_path,
                         "orientation": p.wrapped.orientation,
                         "transfer_syntax": p.wrapped.transfer_syntax_uid,
                         "quality": list(p.quality.flags)})
    return AttachedImage(p.accession, p.sop_uid, p.kind, created=True, quality=p.quality.flags)


def attached(conn: Connection, case: Case, data: bytes, kind: str) -> AttachedImage | None:
    """The image this file already is in `case` (as `record` answered it), or None: lets a
    client repeating an upload whose answer it lost learn that it is there, even once the
    case no longer takes images."""
    sop_uid = uids.image_uid(case.study_uid, kind, hashlib.sha256(data).hexdigest())
    row = conn.execute(select(images.c.kind, images.c.quality).where(
        images.c.sop_uid == sop_uid, images.c.accession == case.accession)).first()
    if row is None:
        return None
    return AttachedImage(case.accession, sop_uid, row.kind, created=False,
                         quality=_flags(row.quality))


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
    return select_device(services.mappings.devices, device, fallback=services.config.images_device,
                         tracking_id=tracking_id)
