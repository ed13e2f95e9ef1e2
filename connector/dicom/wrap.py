"""Wrap an image as a VL Photographic Image (Modality XC): the one entry point for every channel.

Why: every intake channel (HTTP upload, CLI, watched folder, HL7 OBX, ...) must turn the same
file into the same object, so they all call `wrap_image`. A baseline camera JPEG goes into
Pixel Data unchanged (re-encoding a lossy photo loses quality and changes the bytes a clinician
saw); anything else is decoded and stored losslessly, upright, without metadata (images.py,
reference/dicom.md 3). The object validates on construction (highdicom's rule): every argument
is checked here and a finished dataset passes dciodvfy.

Image Type: ORIGINAL\\PRIMARY only when Pixel Data is the camera's own stream (cutting metadata
segments changes no pixel). A lossless jpegtran turn or a decode + re-encode gives
DERIVED\\PRIMARY: PS3.3 C.7.6.1.1.2 calls DERIVED pixel values "derived in some manner from the
pixel value of one or more other images", which a turned or converted matrix is; it stays
PRIMARY because it is still the image acquired for this patient. Derivation Description says
what was done.

Extending: `vl_image_dataset` builds every module but the pixels; `wrap_image` adds them. The
dermoscopy module converts a finished `WrappedImage.dataset` into a Dermoscopic Photography
Image.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import VLPhotographicImageStorage

from connector.domain.errors import DomainError, ImageError
from connector.domain.model import BodySite, ImageKind, LateralityValues, Patient, PersonName

from .common import (
    check_len,
    check_lo,
    check_number,
    check_uid,
    file_meta,
    fit_charset,
    patient_and_study,
    split_datetime,
    to_bytes,
    write,
)
from .dermoscopy import DermoscopyParams, Device, to_dermoscopy
from .images import PASS_THROUGH, ImageFrame, read_image
from .limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from .sites import laterality_modifier

__all__ = ["WrappedImage", "check_kind", "to_bytes", "vl_image_dataset", "wrap_image",
           "wrap_photo"]

PRIVATE_GROUP = 0x0011
PRIVATE_CREATOR = "TELEDERM 1.0"
PRIVATE_SOURCE_SHA256 = 0x01  # element offset in the block: SHA-256 of the file as received

SUPPORTED_KINDS = frozenset(k.value for k in ImageKind)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ITEM = b"\xfe\xff\x00\xe0"  # (FFFE,E000) little endian


@dataclass(frozen=True)
class WrappedImage:
    """A finished object and the facts a caller records about it (store, audit, response)."""

    dataset: Dataset
    sop_class_uid: str
    transfer_syntax_uid: str
    source_type: str  # jpeg, png, tiff or heif, from the bytes
    pixel_path: str  # pass-through, jpegtran or decoded
    orientation: int  # EXIF orientation of the source (1 when none); always applied
    lossy: bool  # Lossy Image Compression 01: the source was lossy (JPEG, HEIC, JPEG in TIFF)
    sha256: str  # of the file as received

    def to_bytes(self) -> bytes:
        return to_bytes(self.dataset)

    def write(self, fh: BinaryIO) -> None:
        """The Part-10 file `to_bytes` gives, written into `fh` without an in-memory copy."""
        write(self.dataset, fh)


def check_kind(kind: str, where: str = "kind") -> None:
    """Refuse an image kind this module does not know."""
    if kind not in SUPPORTED_KINDS:
        raise ImageError(f"unknown image kind '{kind}'", where=where,
                         hint="use photo or dermoscopy")


def wrap_image(
    data: bytes,
    *,
    kind: str = ImageKind.PHOTO.value,
    patient: Patient,
    study_uid: str,
    accession: str,
    series_uid: str,
    sop_uid: str,
    instance_number: int,
    study_datetime: str,
    content_datetime: str,
    referring: PersonName | None = None,
    site: BodySite | None = None,
    laterality: str = "",
    description: str = "",
    institution: str = "",
    series_number: int = 1,
    series_description: str = "",
    study_description: str = "",
    study_id: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    camera_equipment: bool = False,
    dermoscope: tuple[Device, DermoscopyParams] | None = None,
    sha256: str = "",
) -> WrappedImage:
    """Build the DICOM object for one image file (JPEG, PNG, TIFF, HEIC/HEIF) of a case.

    `camera_equipment` copies the EXIF camera make and model into Manufacturer and
    Manufacturer's Model Name; off by default, so no EXIF text at all reaches the archive
    unless a site asks for it. Serial numbers, owner, GPS and thumbnails are never copied.

    `kind="dermoscopy"` needs `dermoscope` (the device and its acquisition settings) and
    yields a Dermoscopic Photography Image (`dermoscopy.to_dermoscopy`) with the same pixels.

    `sha256` is the hex SHA-256 of `data` when the caller already computed it (for the SOP
    Instance UID, `uids.image_uid`): a 12-Mpx photo is then hashed once, not twice.

    Raises DomainError for a bad argument (checked first, before any pixel work) and
    ImageError for a file that is refused: wrong or unknown type, over `max_bytes` or
    `max_pixels`, truncated or corrupt. Nothing is returned half-built.
    """
    check_kind(kind)
    if (kind == ImageKind.DERMOSCOPY.value) != (dermoscope is not None):
        raise DomainError("a dermoscopy image needs a device, and only a dermoscopy image takes one",
                          where="device", hint="name a device from mappings/devices.toml")
    ds = vl_image_dataset(
        patient=patient, study_uid=study_uid, accession=accession, series_uid=series_uid,
        sop_uid=sop_uid, instance_number=instance_number, study_datetime=study_datetime,
        content_datetime=content_datetime, referring=referring, site=site,
        laterality=laterality, description=description, institution=institution,
        series_number=series_number, series_description=series_description,
        study_description=study_description, study_id=study_id)
    frame = read_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    _add_frame(ds, frame)
    if camera_equipment:
        ds.Manufacturer = frame.make
        if frame.model:
            ds.ManufacturerModelName = frame.model
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(PRIVATE_SOURCE_SHA256, "LO", sha256)
    ds.file_meta = file_meta(VLPhotographicImageStorage, sop_uid, frame.transfer_syntax)
    if dermoscope is not None:
        ds = to_dermoscopy(ds, *dermoscope)
    fit_charset(ds)  # ISO_IR 100 when every text fits Latin-1, else ISO_IR 192
    return WrappedImage(
        dataset=ds, sop_class_uid=ds.SOPClassUID,
        transfer_syntax_uid=frame.transfer_syntax, source_type=frame.source_type,
        pixel_path=frame.pixel_path, orientation=frame.orientation, lossy=frame.lossy,
        sha256=sha256)


def wrap_photo(data: bytes, *, source_sha256: str = "", **identity: Any) -> Dataset:
    """The photo's dataset alone, for callers that need none of the facts: `to_dermoscopy`
    takes it as input. Same arguments as `wrap_image` (kind is photo).

    `source_sha256`, when given, is a check by a caller that already hashed the file for its
    UID: it must be the SHA-256 of `data` (DomainError otherwise); the object always records
    the hash computed here.
    """
    if source_sha256:
        if not _SHA256.match(source_sha256):
            raise DomainError("source SHA-256 must be 64 lowercase hex digits",
                              where="source_sha256")
        if source_sha256 != hashlib.sha256(data).hexdigest():
            raise DomainError("source SHA-256 is not the hash of this file",
                              where="source_sha256")
    return wrap_image(data, sha256=source_sha256, **identity).dataset


def vl_image_dataset(
    *,
    patient: Patient,
    study_uid: str,
    accession: str,
    series_uid: str,
    sop_uid: str,
    instance_number: int,
    study_datetime: str,
    content_datetime: str,
    referring: PersonName | None = None,
    site: BodySite | None = None,
    laterality: str = "",
    description: str = "",
    institution: str = "",
    series_number: int = 1,
    series_description: str = "",
    study_description: str = "",
    study_id: str = "",
) -> Dataset:
    """Every VL Photographic Image module but Image Pixel, ICC Profile and the pixels.

    Patient, General Study, General Series (XC), General Equipment (manufacturer empty until
    the caller knows the device), General Image, VL Image, Acquisition Context, SOP Common.
    Raises DomainError naming the bad argument.
    """
    if laterality and laterality not in {v.value for v in LateralityValues}:
        raise DomainError("laterality must be R, L, B, U or empty", where="laterality")
    check_uid(series_uid, "series_uid")
    check_uid(sop_uid, "sop_uid")
    check_number(instance_number, "instance_number")
    check_number(series_number, "series_number")
    check_lo(description, 64, "description")
    check_lo(series_description, 64, "series_description")
    check_len(institution, 64, "institution")

    ds = patient_and_study(patient=patient, study_uid=study_uid, accession=accession,
                           study_datetime=study_datetime, referring=referring,
                           study_description=study_description, study_id=study_id)
    ds.SOPClassUID = VLPhotographicImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ContentDate, ds.ContentTime = split_datetime(content_datetime, "content_datetime")

    # General Series
    ds.Modality = "XC"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    if series_description or description:
        ds.SeriesDescription = series_description or description

    # General Equipment: Type 2, empty until the camera is known.
    ds.Manufacturer = ""
    if institution:
        ds.InstitutionName = institution

    # General Image / VL Image
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ""
    if description:
        ds.ImageComments = description
    ds.AcquisitionContextSequence = Sequence()
    if site is not None:
        ds.AnatomicRegionSequence = Sequence([_anatomic_region(site, laterality)])
    ds.ImageLaterality = laterality or LateralityValues.U.value
    return ds


def _add_frame(ds: Dataset, frame: ImageFrame) -> None:
    """Image Type, compression history, Image Pixel, ICC Profile and Pixel Data."""
    if frame.pixel_path != PASS_THROUGH:
        ds.ImageType = ["DERIVED", "PRIMARY"]
        ds.DerivationDescription = "; ".join(frame.steps)[:1024]
    ds.LossyImageCompression = "01" if frame.lossy else "00"
    if frame.lossy:
        ds.LossyImageCompressionMethod = frame.lossy_method

    # Image Pixel: must match the frame (PS3.5 8.2)
    ds.SamplesPerPixel = frame.samples
    ds.PhotometricInterpretation = frame.photometric
    if frame.samples == 3:
        ds.PlanarConfiguration = 0
    ds.Rows = frame.rows
    ds.Columns = frame.columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0

    if frame.icc_profile:
        ds.ICCProfile = frame.icc_profile
        if frame.color_space:
            ds.ColorSpace = frame.color_space

    ds.PixelData = _encapsulated(frame.data)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True


def _encapsulated(frame: bytes) -> bytes:
    """What `pydicom.encaps.encapsulate([frame])` gives (a Basic Offset Table item holding the
    one frame's offset 0, then the frame as one item padded to even length), built in one copy
    where pydicom's makes three of a 3-MB photo."""
    pad = b"\x00" if len(frame) % 2 else b""
    return b"".join((_ITEM, b"\x04\x00\x00\x00\x00\x00\x00\x00", _ITEM,
                     struct.pack("<I", len(frame) + len(pad)), frame, pad))


def _anatomic_region(site: BodySite, laterality: str) -> Dataset:
    item = _code_item(site.scheme, site.code, site.meaning)
    modifier = laterality_modifier(laterality)
    if modifier is not None:
        item.AnatomicRegionModifierSequence = Sequence(
            [_code_item(modifier.scheme, modifier.code, modifier.meaning)]
        )
    return item


def _code_item(scheme: str, code: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = code
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item
