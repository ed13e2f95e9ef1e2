"""Step 2: an image for a case becomes a DICOM object on disk and an archive job in the outbox.

Every channel (HTTP, CLI import, watched folder, HL7 OBX) comes through here, and the object is
built by `dicom.wrap.wrap_image`, so the same file gives the same object whatever the channel.
The SOP Instance UID derives from the study and the SHA-256 of the file as received, so sending
the same file twice yields the same instance and no second job. A refused file (ImageError)
raises before anything is written or committed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import func, select

from ..dicom.sites import lookup
from ..dicom.uids import uid_from
from ..dicom.wrap import check_kind, wrap_image
from ..domain.errors import ImageError
from ..domain.model import LateralityValues
from ..domain.states import CaseEvent
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


def handle(services: Services, accession: str, data: bytes, *, kind: str = "photo",
           site: str = "", laterality: str = "", description: str = "",
           actor: str) -> AttachedImage:
    check_kind(kind)
    if laterality and laterality not in {v.value for v in LateralityValues}:
        raise ImageError(f"laterality '{laterality}' is not R, L, B or U", where="laterality")
    body_site = lookup(services.mappings.sites, site) if site else None
    sha = hashlib.sha256(data).hexdigest()
    moment = services.now()
    now = iso(moment)
    with services.engine.begin() as conn:
        case = cases.load(conn, accession)
        sop_uid = uid_from("image", case.study_uid, sha)
        if conn.execute(select(images.c.id).where(images.c.sop_uid == sop_uid)).first():
            return AttachedImage(accession, sop_uid, kind, created=False)
        series_uid = uid_from("series", case.study_uid, kind)
        number = conn.execute(select(func.count()).select_from(images).where(
            images.c.accession == accession)).scalar() + 1
        wrapped = wrap_image(
            data, kind=kind, patient=case.order.patient, study_uid=case.study_uid,
            accession=accession, series_uid=series_uid, sop_uid=sop_uid, instance_number=number,
            study_datetime=case.order.ordered_at[:14] or dicom_dt(moment),
            content_datetime=dicom_dt(moment), referring=case.order.requester.name,
            site=body_site, laterality=laterality, description=description,
            institution=services.config.facility_name)
        case.apply(CaseEvent.IMAGE_RECEIVED)
        path = services.config.data_dir / "images" / accession / f"{sop_uid}.dcm"
        write_durably(path, wrapped.to_bytes())
        conn.execute(images.insert().values(
            accession=accession, sop_uid=sop_uid, series_uid=series_uid,
            sop_class_uid=wrapped.sop_class_uid,
            kind=kind, source_sha256=sha, path=str(path), site_code=site, laterality=laterality,
            description=description, created_at=now))
        cases.save_status(conn, case, now)
        outbox.enqueue(conn, kind="archive.store", destination="archive", key=f"archive:{sop_uid}",
                       payload=str(path).encode(), accession=accession, now=now)
        audit.append(conn, at=now, actor=actor, action="image.attached", accession=accession,
                     detail={"sop_instance_uid": sop_uid, "sha256": sha, "kind": kind,
                             "source_type": wrapped.source_type,
                             "pixel_path": wrapped.pixel_path,
                             "orientation": wrapped.orientation,
                             "transfer_syntax": wrapped.transfer_syntax_uid})
    return AttachedImage(accession, sop_uid, kind, created=True)
