"""What an object received from a device must hold before the connector takes it: the Type 1
attributes and the enumerated values of its IOD (PS3.3 A.32.4 VL Photographic Image, A.32.11
Dermoscopic Photography Image, A.8.1 Secondary Capture Image), and the Type 2 attributes of the
Dermoscopic Image module (present, possibly empty).

Why: the connector archives what it accepts under the case's study; an object the standard
does not allow (a "dermoscopic" image with Modality XC and none of the dermoscopic attributes,
a photo without Rows) would reach the PACS as if it were valid, and a viewer may fail on it.
The C-STORE SCP answers 0xA900 (data set does not match SOP class) with the attribute's name,
and stores nothing (`workflow.receive_object`). Strict when encoding, tolerant when decoding
(STYLE.md 2) still holds for what the standard leaves open: only what an IOD makes mandatory
or enumerates is checked here.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import (DermoscopicPhotographyImageStorage, SecondaryCaptureImageStorage,
                         VLPhotographicImageStorage)

from connector.domain.errors import ImageError

__all__ = ["check_iod"]

_PIXEL_TYPE1 = ("SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
                "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation")
_COMMON_TYPE1 = ("StudyInstanceUID", "SeriesInstanceUID", "Modality") + _PIXEL_TYPE1
# VL Image module (PS3.3 C.8.12.1): the same constraints in both VL IODs.
_VL_TYPE1 = _COMMON_TYPE1 + ("ImageType",)
_VL_ENUMERATED = {
    "PhotometricInterpretation": {"MONOCHROME2", "RGB", "YBR_FULL_422", "YBR_PARTIAL_420",
                                  "YBR_ICT", "YBR_RCT"},
    "BitsAllocated": {8}, "BitsStored": {8}, "HighBit": {7}, "PixelRepresentation": {0},
    "SamplesPerPixel": {1, 3},
}
# Enhanced General Equipment (Type 1 in this IOD) and the Dermoscopic Image module.
_DMS_TYPE1 = ("Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions",
              "RecognizableVisualFeatures")
_DMS_TYPE2 = ("LightSourcePolarization", "EmitterColorTemperature", "ContactMethod",
              "OpticalMagnificationFactor")
_DMS_ENUMERATED = {
    "RecognizableVisualFeatures": {"YES", "NO"},
    "LightSourcePolarization": {"POLARIZED", "NON_POLARIZED"},
    "ContactMethod": {"CONTACT", "NON_CONTACT"},
    "ImmersionMedia": {"ULTRASOUND_GEL", "ALCOHOL", "WATER", "MINERAL_OIL", "PLASTIC_CAP"},
}

# SOP class -> (its name, Modality it requires or None, Type 1, Type 2, enumerated values)
_RULES = {
    VLPhotographicImageStorage: ("VL Photographic", "XC", _VL_TYPE1, (), _VL_ENUMERATED),
    DermoscopicPhotographyImageStorage: ("Dermoscopic Photography", "DMS",
                                         _VL_TYPE1 + _DMS_TYPE1, _DMS_TYPE2,
                                         {**_VL_ENUMERATED, **_DMS_ENUMERATED}),
    SecondaryCaptureImageStorage: ("Secondary Capture", None,
                                   _COMMON_TYPE1 + ("ConversionType",), (), {}),
}


def check_iod(ds: Dataset) -> None:
    """Refuse `ds` (ImageError, code `dataset-mismatch`, `where` = the attribute's keyword)
    when an attribute its SOP class makes Type 1 is missing or empty, a Type 2 one of the
    Dermoscopic Image module is missing, or a value is not one the IOD enumerates. A SOP class
    not listed here is not checked (the caller refuses it)."""
    rule = _RULES.get(str(ds.get("SOPClassUID", "")))
    if rule is None:
        return
    name, modality, type1, type2, enumerated = rule
    if modality is not None and str(ds.get("Modality", "")).strip() != modality:
        _refuse(f"Modality must be {modality} for {name}", "Modality")
    for keyword in type1:
        if _empty(ds, keyword):
            _refuse(f"{keyword} missing (Type 1 in {name})", keyword)
    for keyword in type2:
        if keyword not in ds:
            _refuse(f"{keyword} missing (Type 2 in {name})", keyword)
    if ds.get("ContactMethod") == "CONTACT" and "ImmersionMedia" in enumerated \
            and _empty(ds, "ImmersionMedia"):
        _refuse("ImmersionMedia missing (required with CONTACT)", "ImmersionMedia")
    if ds.get("SamplesPerPixel") == 3 and "PlanarConfiguration" not in ds:
        _refuse(f"PlanarConfiguration missing (Type 1C in {name})", "PlanarConfiguration")
    for keyword, allowed in enumerated.items():
        for value in _values(ds, keyword):
            if value not in allowed:
                _refuse(f"{keyword} value not allowed in {name}", keyword)
    for keyword in ("Rows", "Columns"):
        if ds.get(keyword) == 0:
            _refuse(f"{keyword} is 0", keyword)
    if "ImageType" in type1 and _values(ds, "ImageType")[0] not in ("ORIGINAL", "DERIVED"):
        _refuse(f"ImageType value 1 must be ORIGINAL or DERIVED in {name}", "ImageType")


def _empty(ds: Dataset, keyword: str) -> bool:
    value = ds.get(keyword)
    return value is None or (not isinstance(value, int) and len(value) == 0)


def _values(ds: Dataset, keyword: str) -> list:
    """The values of an attribute (none when absent or empty), stripped of CS padding."""
    if keyword not in ds or ds[keyword].value in (None, ""):
        return []
    value = ds[keyword].value
    values = list(value) if ds[keyword].VM > 1 else [value]
    return [v.strip() if isinstance(v, str) else v for v in values]


def _refuse(text: str, keyword: str) -> None:
    raise ImageError(text, where=keyword, code="dataset-mismatch",
                     hint="fix the device's export: the object does not match its SOP class")
