"""Wrap a camera JPEG as a VL Photographic Image (Modality XC) without re-encoding it.

Why: re-encoding a lossy photo loses quality and changes the bytes a clinician saw; the JPEG
Baseline transfer syntax lets the original entropy-coded stream go into Pixel Data unchanged
(reference/dicom.md 3). The object must validate on construction (highdicom's rule), so every
argument is checked here and a finished dataset passes dciodvfy. Private APPn/COM segments are
cut first, because metadata left in the stream is invisible to DICOM de-identification.
"""

from __future__ import annotations

import re

from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import JPEGBaseline8Bit, VLPhotographicImageStorage

from connector.domain.errors import DomainError, ImageError
from connector.domain.model import BodySite, LateralityValues, Patient, PersonName

from .common import (
    check_len,
    check_number,
    check_uid,
    file_meta,
    patient_and_study,
    split_datetime,
    to_bytes,
)
from .jpeg import JpegInfo, inspect, strip_private_segments
from .sites import laterality_modifier

__all__ = ["wrap_photo", "photometric_interpretation", "to_bytes"]

PRIVATE_GROUP = 0x0011
PRIVATE_CREATOR = "TELEDERM 1.0"
PRIVATE_SOURCE_SHA256 = 0x01  # element offset in the block: SHA-256 of the file as received

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def wrap_photo(
    jpeg: bytes,
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
    source_sha256: str = "",
    institution: str = "",
    series_number: int = 1,
) -> Dataset:
    """Build a VL Photographic Image Storage dataset carrying `jpeg` (a baseline JPEG stream).

    Raises ImageError for a stream that is not a whole baseline 1- or 3-component JPEG, and
    DomainError for a bad argument (dates, laterality, lengths, hash).
    """
    stripped = strip_private_segments(jpeg)
    info = inspect(stripped)
    if not info.baseline:
        raise ImageError("only baseline JPEG is supported for now", where="image",
                         hint="convert to baseline JPEG")
    if info.components not in (1, 3):
        raise ImageError(f"a JPEG with {info.components} colour components cannot be stored",
                         where="image", hint="convert to an RGB or greyscale baseline JPEG")
    photometric = photometric_interpretation(info)
    if photometric == "RGB":
        # PS3.5 allows RGB for an untransformed stream, but the VL Image module requires
        # YBR_FULL_422 under lossy JPEG transfer syntaxes (dciodvfy rejects RGB there).
        raise ImageError("an RGB-coded JPEG (no colour transform) cannot be stored as is",
                         where="image", hint="convert to a standard YCbCr baseline JPEG")
    if laterality and laterality not in {v.value for v in LateralityValues}:
        raise DomainError("laterality must be R, L, B, U or empty", where="laterality")
    if source_sha256 and not _SHA256.match(source_sha256):
        raise DomainError("source SHA-256 must be 64 lowercase hex digits", where="source_sha256")
    check_uid(series_uid, "series_uid")
    check_uid(sop_uid, "sop_uid")
    check_number(instance_number, "instance_number")
    check_number(series_number, "series_number")
    check_len(description, 64, "description")
    check_len(institution, 64, "institution")

    ds = patient_and_study(patient=patient, study_uid=study_uid, accession=accession,
                           study_datetime=study_datetime, referring=referring)
    ds.SOPClassUID = VLPhotographicImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ContentDate, ds.ContentTime = split_datetime(content_datetime, "content_datetime")

    # General Series
    ds.Modality = "XC"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    if description:
        ds.SeriesDescription = description

    # General Equipment: the camera is unknown once EXIF is gone; Type 2 allows empty.
    ds.Manufacturer = ""
    if institution:
        ds.InstitutionName = institution

    # General Image / VL Image
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ""
    if description:
        ds.ImageComments = description
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.AcquisitionContextSequence = Sequence()
    if site is not None:
        ds.AnatomicRegionSequence = Sequence([_anatomic_region(site, laterality)])
    ds.ImageLaterality = laterality or LateralityValues.U.value

    # Image Pixel: must match the frame header of the stream (PS3.5 8.2.1)
    ds.SamplesPerPixel = info.components
    ds.PhotometricInterpretation = photometric
    if info.components == 3:
        ds.PlanarConfiguration = 0
    ds.Rows = info.rows
    ds.Columns = info.columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0

    if source_sha256:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
        block.add_new(PRIVATE_SOURCE_SHA256, "LO", source_sha256)

    ds.PixelData = encapsulate([stripped])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True

    ds.file_meta = file_meta(VLPhotographicImageStorage, sop_uid, JPEGBaseline8Bit)
    return ds


def photometric_interpretation(info: JpegInfo) -> str:
    """MONOCHROME2 for one component; RGB for an untransformed RGB stream; else YBR_FULL_422.

    YBR_FULL_422 is what CP-1654 prescribes for YCbCr JPEG whatever the real subsampling.
    An Adobe APP14 transform flag decides when present; otherwise component ids 'R','G','B'
    mark an RGB stream, as libjpeg reads it.
    """
    if info.components == 1:
        return "MONOCHROME2"
    if info.adobe_transform is not None:
        rgb = info.adobe_transform == 0
    else:
        rgb = info.component_ids == (ord("R"), ord("G"), ord("B"))
    return "RGB" if rgb else "YBR_FULL_422"


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
