"""Turn a wrapped photo into a Dermoscopic Photography Image (SOP class …77.1.7, Modality DMS).

Why: a dermatoscope image read as an ordinary clinical photo (XC) loses what the reader needs to
interpret it: polarised or not, contact or not, which immersion medium, what magnification, and
which lesion it follows over time. Supplement 221 puts these in the Dermoscopic Image module and
makes the equipment identity mandatory (Enhanced General Equipment: manufacturer, model, serial,
software versions are Type 1). Values are checked when the dataclasses are built (highdicom's
"valid on construction"); `to_dermoscopy` only re-labels a VL Photographic dataset that
`wrap.wrap_photo` already validated, so the pixel data and the transfer syntax stay exactly as
wrapped (reference/dicom.md 2.2-2.4).

Device entries come from `mappings/devices.toml` (`load_devices`), one per dermatoscope + camera
set-up, with the site's default acquisition settings for it.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, StrictBool
from pydicom.dataset import Dataset
from pydicom.uid import DermoscopicPhotographyImageStorage, VLPhotographicImageStorage
from pydicom.valuerep import DS

from connector.domain.errors import DomainError, ImageError
from connector.mapfile import read_toml
from connector.validation import Problems, SiteModel

from .uids import uid_from

__all__ = [
    "ContactMethodValues",
    "DEFAULT_DEVICES_PATH",
    "Device",
    "DermoscopyParams",
    "ImmersionMediaValues",
    "PolarizationValues",
    "RecognizableVisualFeaturesValues",
    "SOP_CLASS_UIDS",
    "load_devices",
    "to_dermoscopy",
    "tracking_uid",
]

SOP_CLASS_UIDS = frozenset({DermoscopicPhotographyImageStorage})
MODALITY = "DMS"
DEFAULT_DEVICES_PATH = Path(__file__).resolve().parents[2] / "mappings" / "devices.toml"

_LO_MAX = 64  # Manufacturer, model, serial, software versions are LO
_TRACKING_ID_MAX = 64  # Tracking ID is UT; a lesion label longer than this is not a label
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

# VL Photographic Geolocation: not part of the dermoscopy IOD, and never wanted (privacy).
_GEOLOCATION_TAGS = range(0x00160070, 0x0016008F)


class PolarizationValues(str, enum.Enum):
    """Light Source Polarization (0016,1001) enumerated values."""

    POLARIZED = "POLARIZED"
    NON_POLARIZED = "NON_POLARIZED"


class ContactMethodValues(str, enum.Enum):
    """Contact Method (0016,1003) enumerated values."""

    CONTACT = "CONTACT"
    NON_CONTACT = "NON_CONTACT"


class ImmersionMediaValues(str, enum.Enum):
    """Immersion Media (0016,1004) enumerated values."""

    ULTRASOUND_GEL = "ULTRASOUND_GEL"
    ALCOHOL = "ALCOHOL"
    WATER = "WATER"
    MINERAL_OIL = "MINERAL_OIL"
    PLASTIC_CAP = "PLASTIC_CAP"


class RecognizableVisualFeaturesValues(str, enum.Enum):
    """Recognizable Visual Features (0028,0302) enumerated values (YES if e.g. a face shows)."""

    YES = "YES"
    NO = "NO"


def _enum(enum_type: type[enum.Enum], value, where: str):
    """Coerce a str or enum member at the boundary; anything else names the argument."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value.strip().upper() if isinstance(value, str) else value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_type)
        raise DomainError(f"{where} must be one of {allowed}, not {value!r}", where=where,
                          hint=f"use one of {allowed}") from None


def _lo(value, where: str) -> str:
    """A non-empty single LO value: text, at most 64 characters, no backslash or control."""
    if not isinstance(value, str) or not value.strip():
        raise DomainError(f"{where} is required and must be non-empty text", where=where,
                          hint="Enhanced General Equipment makes it Type 1: give the real value")
    value = value.strip()
    if len(value) > _LO_MAX:
        raise DomainError(f"{where} is longer than {_LO_MAX} characters", where=where)
    if "\\" in value or _CONTROL.search(value):
        raise DomainError(f"{where} must not contain a backslash or control characters",
                          where=where)
    return value


def _positive(value, where: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise DomainError(f"{where} must be a number greater than 0, not {value!r}", where=where)
    return float(value)


@dataclass(frozen=True)
class Device:
    """A dermatoscope set-up as Enhanced General Equipment describes it (all four Type 1).

    `software_versions` accepts one string or a sequence of strings (LO, 1-n): for a clip-on
    dermatoscope on a phone, the phone's OS and the capture app. `default_params` are the
    acquisition settings used when an image does not say otherwise.
    """

    manufacturer: str
    model: str
    serial: str
    software_versions: tuple[str, ...]
    default_params: DermoscopyParams | None = None
    # The shipped example entry (`example = true`): its serial and versions are placeholders,
    # so it is refused outside the demo (`[images] example_devices`) rather than archived.
    example: bool = False

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "manufacturer", _lo(self.manufacturer, "manufacturer"))
        set_(self, "model", _lo(self.model, "model"))
        set_(self, "serial", _lo(self.serial, "serial"))
        versions = self.software_versions
        if isinstance(versions, str):
            versions = (versions,)
        if not isinstance(versions, Iterable) or isinstance(versions, (bytes, Mapping)):
            raise DomainError("software_versions must be a string or a list of strings",
                              where="software_versions")
        versions = tuple(_lo(v, "software_versions") for v in versions)
        if not versions:
            raise DomainError("software_versions is required and must not be empty",
                              where="software_versions",
                              hint="Enhanced General Equipment makes it Type 1")
        set_(self, "software_versions", versions)
        if self.default_params is not None and not isinstance(self.default_params,
                                                              DermoscopyParams):
            raise DomainError("default_params must be a DermoscopyParams", where="default_params")


@dataclass(frozen=True)
class DermoscopyParams:
    """The Dermoscopic Image module values for one image.

    Strings or enum members are accepted and coerced. `immersion_media` is required (at least
    one value) when `contact` is CONTACT and refused when NON_CONTACT (Type 2C). `tracking_id`
    is the lesion label (e.g. "L1 dos"); when given, Tracking ID and a Tracking UID derived from
    the patient and the label are written, so the same lesion keeps its UID across visits.
    Change one value of a device's defaults with `dataclasses.replace(params, tracking_id=...)`.
    """

    polarization: PolarizationValues
    contact: ContactMethodValues
    magnification: float
    immersion_media: tuple[ImmersionMediaValues, ...] = ()
    emitter_color_temperature: float | None = None
    recognizable_visual_features: RecognizableVisualFeaturesValues = (
        RecognizableVisualFeaturesValues.NO)
    tracking_id: str | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "polarization", _enum(PolarizationValues, self.polarization, "polarization"))
        set_(self, "contact", _enum(ContactMethodValues, self.contact, "contact"))
        set_(self, "magnification", _positive(self.magnification, "magnification"))
        set_(self, "emitter_color_temperature",
             _positive(self.emitter_color_temperature, "emitter_color_temperature",
                       optional=True))
        set_(self, "recognizable_visual_features",
             _enum(RecognizableVisualFeaturesValues, self.recognizable_visual_features,
                   "recognizable_visual_features"))

        media = self.immersion_media
        if media is None:
            media = ()
        elif isinstance(media, (str, enum.Enum)):
            media = (media,)
        if not isinstance(media, Iterable) or isinstance(media, (bytes, Mapping)):
            raise DomainError("immersion_media must be a list of values", where="immersion_media")
        media = tuple(_enum(ImmersionMediaValues, m, "immersion_media") for m in media)
        if len(set(media)) != len(media):
            raise DomainError("immersion_media lists a value twice", where="immersion_media")
        if self.contact is ContactMethodValues.CONTACT and not media:
            raise DomainError("immersion_media is required when contact is CONTACT",
                              where="immersion_media",
                              hint="name the medium used: " +
                                   ", ".join(m.value for m in ImmersionMediaValues))
        if self.contact is ContactMethodValues.NON_CONTACT and media:
            raise DomainError("immersion_media must be empty when contact is NON_CONTACT",
                              where="immersion_media",
                              hint="remove the media, or set contact to CONTACT")
        set_(self, "immersion_media", media)

        label = self.tracking_id
        if label is not None:
            if not isinstance(label, str) or not label.strip():
                raise DomainError("tracking_id must be non-empty text or absent",
                                  where="tracking_id")
            label = label.strip()
            if len(label) > _TRACKING_ID_MAX or _CONTROL.search(label):
                raise DomainError(f"tracking_id must be at most {_TRACKING_ID_MAX} characters "
                                  "of text without control characters", where="tracking_id")
            set_(self, "tracking_id", label)


def tracking_uid(patient_id: str, issuer: str, tracking_id: str) -> str:
    """The Tracking UID of a lesion: the same patient and label always give the same UID.

    The label is compared without case and with runs of spaces collapsed, so "L1 Dos" typed at
    the next visit as "l1  dos" still follows the same lesion; Tracking ID keeps the text as typed.
    """
    if not patient_id:
        raise DomainError("a tracked lesion needs a patient ID", where="PatientID")
    label = " ".join(tracking_id.split()).casefold()
    if not label:
        raise DomainError("tracking_id must be non-empty text", where="tracking_id")
    return uid_from("lesion-tracking", issuer or "", patient_id, label)


def to_dermoscopy(ds: Dataset, device: Device, params: DermoscopyParams) -> Dataset:
    """Return a Dermoscopic Photography Image built from `ds`, a VL Photographic dataset.

    `ds` is what `wrap.wrap_photo` returns; it is not modified. The result shares the pixel
    bytes (Pixel Data is not copied, decoded or re-encoded) and keeps the transfer syntax, the
    patient/study/series attributes, the SOP Instance UID and the private hash block. Choose the
    series and instance UIDs given to `wrap_photo` for this kind (a DMS image belongs in its own
    series: one series, one modality).

    Raises DomainError naming the argument when `device` or `params` is not of the right type,
    and ImageError when `ds` is not a wrapped VL Photographic image.
    """
    if not isinstance(device, Device):
        raise DomainError("device must be a Device", where="device")
    if not isinstance(params, DermoscopyParams):
        raise DomainError("params must be a DermoscopyParams", where="params")
    if not isinstance(ds, Dataset) or ds.get("SOPClassUID") != VLPhotographicImageStorage:
        raise ImageError("only a VL Photographic image can become a dermoscopic image",
                         where="ds", hint="wrap the photo with wrap_photo first")
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta or "PixelData" not in ds:
        raise ImageError("the dataset has no pixel data or no transfer syntax", where="ds",
                         hint="wrap the photo with wrap_photo first")

    out = _shallow_copy(ds)
    out.file_meta = copy.deepcopy(meta)
    out.file_meta.MediaStorageSOPClassUID = DermoscopicPhotographyImageStorage
    out.SOPClassUID = DermoscopicPhotographyImageStorage

    # General Series: dciodvfy rejects any other modality under this SOP class.
    out.Modality = MODALITY

    # Enhanced General Equipment (all Type 1 here, Type 2/3 in General Equipment).
    out.Manufacturer = device.manufacturer
    out.ManufacturerModelName = device.model
    out.DeviceSerialNumber = device.serial
    out.SoftwareVersions = list(device.software_versions)

    # Dermoscopic Image module (PS3.3 C.8.12.13).
    out.RecognizableVisualFeatures = params.recognizable_visual_features.value
    out.LightSourcePolarization = params.polarization.value
    out.EmitterColorTemperature = (_ds(params.emitter_color_temperature)
                                   if params.emitter_color_temperature is not None else None)
    out.ContactMethod = params.contact.value
    if params.contact is ContactMethodValues.CONTACT:
        out.ImmersionMedia = [m.value for m in params.immersion_media]
    elif "ImmersionMedia" in out:
        del out.ImmersionMedia
    out.OpticalMagnificationFactor = _ds(params.magnification)
    if params.tracking_id is not None:
        out.TrackingID = params.tracking_id
        out.TrackingUID = tracking_uid(str(out.get("PatientID", "")),
                                       str(out.get("IssuerOfPatientID", "")), params.tracking_id)

    # Validator artefact, not a requirement of the standard: dicom3tools' dciodvfy (Debian
    # 20220618) lists a Frame of Reference module for this IOD that PS3.3 A.32.11 does not have,
    # and reports missing FrameOfReferenceUID / PositionReferenceIndicator as errors. A
    # deterministic Frame of Reference UID and an empty indicator silence it without claiming
    # any spatial relationship (reference/dicom.md 2.4). The companion warning
    # 'Unrecognized defined term <DMS> ... Modality' is expected: its list lacks DMS.
    out.FrameOfReferenceUID = uid_from("frame-of-reference", str(out.SOPInstanceUID))
    out.PositionReferenceIndicator = ""

    for tag in _GEOLOCATION_TAGS:
        if tag in out:
            del out[tag]
    return out


def _shallow_copy(ds: Dataset) -> Dataset:
    """A new dataset with copied elements; byte values (Pixel Data) are shared, not duplicated."""
    out = Dataset()
    for elem in ds:
        out.add(copy.deepcopy(elem) if elem.VR == "SQ" else copy.copy(elem))
    return out


def _ds(value: float) -> DS:
    """A DS of at most 16 characters ("10", "6500", "12.5")."""
    return DS(f"{value:g}", auto_format=True)


# ---------------------------------------------------------------------------------------------
# mappings/devices.toml: the models check the keys; Device and DermoscopyParams check the values
# (the same checks as for a device given any other way).

class _Params(SiteModel):
    polarization: Any
    contact: Any
    magnification: Any
    immersion_media: Any = None
    emitter_color_temperature: Any = None
    recognizable_visual_features: Any = None


class _Device(SiteModel):
    manufacturer: Any
    model: Any
    serial: Any
    software_versions: Any
    example: StrictBool = False
    defaults: _Params | None = None


def _device_id(value: str) -> str:
    if not _DEVICE_ID.match(value):
        raise ValueError("device id must be lower-case letters, digits, '.', '_' or '-'")
    return value


class _File(SiteModel):
    # No table at all is a site without a dermatoscope: dermoscopic uploads are then refused.
    devices: dict[Annotated[str, AfterValidator(_device_id)], _Device] = {}


def load_devices(path: str | Path = DEFAULT_DEVICES_PATH) -> dict[str, Device]:
    """Read the dermatoscope file; a ConfigError names the file and every bad key.

    Layout: one `[devices.<id>]` table per device (id: lower-case letters, digits, `.`, `_`,
    `-`) with manufacturer, model, serial, software_versions, and an optional
    `[devices.<id>.defaults]` table of DermoscopyParams fields (tracking is per image).
    """
    path = Path(path)
    problems = Problems(str(path), hint="one [devices.<id>] table per dermatoscope")
    f = problems.validate(_File, read_toml(path, "the dermatoscope device file"))
    devices: dict[str, Device] = {}
    for device_id, entry in (f.devices if f else {}).items():
        key = f"devices.{device_id}"
        try:
            defaults = None
            if entry.defaults is not None:
                key = f"devices.{device_id}.defaults"
                defaults = DermoscopyParams(**entry.defaults.model_dump(exclude_unset=True))
                key = f"devices.{device_id}"
            devices[device_id] = Device(
                manufacturer=entry.manufacturer, model=entry.model, serial=entry.serial,
                software_versions=entry.software_versions, default_params=defaults,
                example=entry.example)
        except DomainError as err:
            problems.add(err.text, key=f"{key}.{err.where}" if err.where else key,
                         hint=err.hint)
    problems.raise_any()
    return devices


def select_device(devices: Mapping[str, Device], name: str = "", *, fallback: str = "",
                  tracking_id: str = "") -> tuple[Device, DermoscopyParams]:
    """The device an image names (else the site's `fallback`, else the only one configured)
    and its default settings, with the lesion's tracking id when given."""
    chosen = name or fallback or (next(iter(devices)) if len(devices) == 1 else "")
    if not devices:
        raise ImageError("no dermatoscope is declared, so a dermoscopic image cannot be archived",
                         where="device", hint="declare the site's dermatoscope in "
                                              "mappings/devices.toml, or send the image as a photo")
    if chosen not in devices:
        raise ImageError(f"unknown dermatoscope '{chosen}'" if chosen else "no dermatoscope named",
                         where="device",
                         hint=f"use one of: {', '.join(sorted(devices))} (mappings/devices.toml)")
    device = devices[chosen]
    if device.default_params is None:
        raise ImageError(f"dermatoscope '{chosen}' has no default settings", where="device",
                         hint="add [devices.<id>.defaults] in mappings/devices.toml")
    params = device.default_params
    if tracking_id:
        params = dataclasses.replace(params, tracking_id=tracking_id)
    return device, params
