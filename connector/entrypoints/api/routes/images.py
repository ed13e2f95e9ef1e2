"""`POST /api/cases/{accession}/images`: photos and dermoscopy images from a phone, a capture
application or a device, through the same step as every other channel (`attach_image.attach`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, UploadFile

from ....bootstrap import Services
from ....dicom.limits import TOO_LARGE
from ....domain.errors import ImageError
from ....workflow import attach_image
from ....workflow.commands import AttachImage
from ..auth import Principal, on_case
from ..deps import services
from ..guard import MIB

router = APIRouter()


@router.post("/api/cases/{accession}/images", status_code=201)
def post_images(accession: str, file: list[UploadFile] = File(...),
                kind: str = Form("photo"), site: str = Form(""), laterality: str = Form(""),
                description: str = Form(""), device: str = Form(""),
                tracking_id: str = Form(""),
                who: Principal = Depends(on_case("requester", "device", "specialist")),
                svc: Services = Depends(services)):
    """All the files or none: each is read and checked, then all are recorded in one
    transaction, so a refusal (which names the file) leaves nothing stored."""
    max_mb = svc.config.images.max_mb
    commands = []
    for index, upload in enumerate(file):
        data = upload.file.read(max_mb * MIB + 1)  # never more than the limit in memory
        if len(data) > max_mb * MIB:
            raise attach_image.for_file(ImageError(
                f"the image file is larger than the {max_mb} MiB limit", where="image",
                code=TOO_LARGE, hint="send a smaller export of the photo "
                                     "(phones: 'most compatible')"), index, len(file))
        commands.append(AttachImage(accession, data, who.actor, kind=kind, site=site,
                                    laterality=laterality, description=description,
                                    device=device, tracking_id=tracking_id))
    got = attach_image.attach(svc, commands)
    return {"accession": accession,
            "images": [{"sop_instance_uid": g.sop_instance_uid, "kind": g.kind,
                        "created": g.created, "quality": list(g.quality)} for g in got]}
