"""Step 2: an image for a case becomes a DICOM object on disk and an archive job in the outbox.

The SOP Instance UID derives from the study and the file's SHA-256, so sending the same file
twice yields the same instance and no second job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import func, select

from ..dicom.sites import lookup
from ..dicom.uids import uid_from
from ..dicom.wrap import to_bytes, wrap_photo
from ..domain.errors import ImageError
from ..domain.model import ImageKind, LateralityValues
from ..domain.states import CaseEvent
from ..store import audit, cases, outbox
from ..store.clock import iso
from ..store.schema import images
from .bootstrap import Services
from .common import dicom_dt, write_durably

VL_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4"


@dataclass(frozen=True)
class AttachedImage:
    accession: str
    sop_instance_uid: str
    kind: str
    created: bool  # False when the same file was already attached


def handle(services: Services, accession: str, data: bytes, *, kind: str = "photo",
           site: str = "", laterality: str = "", description: str = "",
           actor: str) -> AttachedImage:
    if kind not in {k.value for k in ImageKind}:
        raise ImageError(f"unknown image kind '{kind}'", where="kind", hint="use photo or dermoscopy")
    if kind == ImageKind.DERMOSCOPY.value:
        raise ImageError("dermoscopy objects are not supported yet", where="kind",
                         hint="send it as kind=photo for now")
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
        ds = wrap_photo(
            data, patient=case.order.patient, study_uid=case.study_uid, accession=accession,
            series_uid=series_uid, sop_uid=sop_uid, instance_number=number,
            study_datetime=case.order.ordered_at[:14] or dicom_dt(moment),
            content_datetime=dicom_dt(moment), referring=case.order.requester.name,
            site=body_site, laterality=laterality, description=description, source_sha256=sha,
            institution=services.config.facility_name)
        case.apply(CaseEvent.IMAGE_RECEIVED)
        path = services.config.data_dir / "images" / accession / f"{sop_uid}.dcm"
        write_durably(path, to_bytes(ds))
        conn.execute(images.insert().values(
            accession=accession, sop_uid=sop_uid, series_uid=series_uid, sop_class_uid=VL_PHOTO,
            kind=kind, source_sha256=sha, path=str(path), site_code=site, laterality=laterality,
            description=description, created_at=now))
        cases.save_status(conn, case, now)
        outbox.enqueue(conn, kind="archive.store", destination="archive", key=f"archive:{sop_uid}",
                       payload=str(path).encode(), accession=accession, now=now)
        audit.append(conn, at=now, actor=actor, action="image.attached", accession=accession,
                     detail={"sop_instance_uid": sop_uid, "sha256": sha, "kind": kind})
    return AttachedImage(accession, sop_uid, kind, created=True)
