"""connector.dicom.dermoscopy: wrapped photo → Dermoscopic Photography Image (DMS)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import shutil
import subprocess

import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.encaps import generate_frames
from pydicom.uid import (
    DermoscopicPhotographyImageStorage,
    JPEGBaseline8Bit,
    VLPhotographicImageStorage,
)

from connector.dicom.dermoscopy import (
    DEFAULT_DEVICES_PATH,
    ContactMethodValues,
    Device,
    DermoscopyParams,
    ImmersionMediaValues,
    PolarizationValues,
    RecognizableVisualFeaturesValues,
    load_devices,
    select_device,
    to_dermoscopy,
    tracking_uid,
)
from connector.dicom.sites import load_sites, lookup
from connector.dicom.uids import uid_from
from connector.dicom.wrap import to_bytes, wrap_photo
from connector.domain.errors import ConfigError, DomainError, ImageError
from connector.domain.model import Patient, PersonName

DEVICE = Device(manufacturer="DermLite", model="DL5", serial="SN-0042",
                software_versions=("iOS 17.5", "Capture 2.1"))
CONTACT = DermoscopyParams(polarization="NON_POLARIZED", contact="CONTACT", magnification=10,
                           immersion_media=["ULTRASOUND_GEL", "ALCOHOL"],
                           emitter_color_temperature=4500, tracking_id="L1 dos")
NON_CONTACT = DermoscopyParams(polarization=PolarizationValues.POLARIZED,
                               contact=ContactMethodValues.NON_CONTACT, magnification=10)


@pytest.fixture
def wrapped(patient, plain_jpeg):
    """A VL Photographic dataset as wrap_photo returns it, with a site and a laterality."""
    return wrap_photo(
        plain_jpeg, patient=patient, study_uid=uid_from("study", "ACC-7"), accession="ACC-7",
        series_uid=uid_from("series", "ACC-7", "dermoscopy"),
        sop_uid=uid_from("instance", "ACC-7", "dermoscopy",
                         hashlib.sha256(plain_jpeg).hexdigest()),
        instance_number=1, study_datetime="20240315093000", content_datetime="20240315094512",
        site=lookup(load_sites(), "66643007"), laterality="L",
        source_sha256=hashlib.sha256(plain_jpeg).hexdigest(),
    )


def _write(tmp_path, ds, name="dms.dcm"):
    path = tmp_path / name
    path.write_bytes(to_bytes(ds))
    return path


def _frame(ds) -> bytes:
    frames = list(generate_frames(ds.PixelData, number_of_frames=1))
    assert len(frames) == 1
    return frames[0]


@pytest.mark.parametrize("params", [CONTACT, NON_CONTACT], ids=["contact", "non-contact"])
def test_dermoscopy_passes_dciodvfy_when_built_from_a_wrapped_jpeg(wrapped, params, dciodvfy,
                                                                   tmp_path):
    report = dciodvfy(_write(tmp_path, to_dermoscopy(wrapped, DEVICE, params)))
    assert "DermoscopicPhotographyImage" in [line.strip() for line in report]
    assert [line for line in report if "Error" in line] == []
    # Known dciodvfy artefact (reference/dicom.md 2.4): its Modality list lacks DMS.
    assert any("Unrecognized defined term <DMS>" in line for line in report)


def test_dermoscopy_keeps_jpeg_frame_and_transfer_syntax_when_converted(wrapped, plain_jpeg,
                                                                        tmp_path):
    before = _frame(wrapped)
    ds = dcmread(_write(tmp_path, to_dermoscopy(wrapped, DEVICE, CONTACT)))
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert _frame(ds) == before == plain_jpeg
    assert ds.SOPInstanceUID == wrapped.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == DermoscopicPhotographyImageStorage
    assert (ds.Rows, ds.Columns, ds.PhotometricInterpretation) == (
        wrapped.Rows, wrapped.Columns, wrapped.PhotometricInterpretation)


def test_dermoscopy_keeps_lossless_transfer_syntax_when_source_was_decoded(patient, dciodvfy,
                                                                            tmp_path):
    # A PNG takes wrap's decoded path (lossless re-encoding): the conversion must not care.
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 30), (200, 100, 50, 128)).save(buffer, "PNG")
    ds = wrap_photo(buffer.getvalue(), patient=patient, study_uid=uid_from("s"), accession="A",
                    series_uid=uid_from("se"), sop_uid=uid_from("i"), instance_number=1,
                    study_datetime="20240315093000", content_datetime="20240315094512")
    assert ds.file_meta.TransferSyntaxUID != JPEGBaseline8Bit
    path = _write(tmp_path, to_dermoscopy(ds, DEVICE, NON_CONTACT))
    back = dcmread(path)
    assert back.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert back.PixelData == ds.PixelData
    assert [line for line in dciodvfy(path) if "Error" in line] == []


def test_dermoscopy_shares_pixel_bytes_and_leaves_input_unchanged_when_converted(wrapped):
    out = to_dermoscopy(wrapped, DEVICE, CONTACT)
    assert out.PixelData is wrapped.PixelData  # not copied: a 12 MP photo stays one buffer
    assert wrapped.SOPClassUID == VLPhotographicImageStorage
    assert wrapped.Modality == "XC"
    assert wrapped.file_meta.MediaStorageSOPClassUID == VLPhotographicImageStorage
    assert "LightSourcePolarization" not in wrapped
    out.AnatomicRegionSequence[0].CodeMeaning = "changed"
    assert wrapped.AnatomicRegionSequence[0].CodeMeaning == "Skin of back"


def test_dermoscopy_writes_equipment_and_dermoscopic_module_when_contact(wrapped, patient):
    ds = to_dermoscopy(wrapped, DEVICE, CONTACT)
    assert ds.SOPClassUID == DermoscopicPhotographyImageStorage
    assert ds.Modality == "DMS"
    assert (ds.Manufacturer, ds.ManufacturerModelName, ds.DeviceSerialNumber) == (
        "DermLite", "DL5", "SN-0042")
    assert list(ds.SoftwareVersions) == ["iOS 17.5", "Capture 2.1"]
    assert ds.LightSourcePolarization == "NON_POLARIZED"
    assert ds.ContactMethod == "CONTACT"
    assert list(ds.ImmersionMedia) == ["ULTRASOUND_GEL", "ALCOHOL"]
    assert float(ds.OpticalMagnificationFactor) == 10
    assert float(ds.EmitterColorTemperature) == 4500
    assert ds.RecognizableVisualFeatures == "NO"
    assert ds.TrackingID == "L1 dos"
    assert ds.TrackingUID == tracking_uid(patient.id, patient.issuer, "L1 dos")
    # site, laterality and the private hash block survive the conversion
    assert ds.AnatomicRegionSequence[0].CodeValue == "66643007"
    assert ds.AnatomicRegionSequence[0].AnatomicRegionModifierSequence[0].CodeValue == "7771000"
    assert ds.ImageLaterality == "L"
    assert ds.private_block(0x0011, "TELEDERM 1.0")[0x01].value == wrapped.private_block(
        0x0011, "TELEDERM 1.0")[0x01].value


def test_dermoscopy_omits_immersion_and_tracking_when_non_contact_untracked(wrapped):
    ds = to_dermoscopy(wrapped, DEVICE, NON_CONTACT)
    assert ds.ContactMethod == "NON_CONTACT"
    assert "ImmersionMedia" not in ds
    assert "TrackingID" not in ds and "TrackingUID" not in ds
    assert "EmitterColorTemperature" in ds and ds.EmitterColorTemperature is None  # Type 2


def test_dermoscopy_sets_frame_of_reference_for_the_validator_when_converted(wrapped):
    ds = to_dermoscopy(wrapped, DEVICE, NON_CONTACT)
    assert ds.FrameOfReferenceUID == uid_from("frame-of-reference", wrapped.SOPInstanceUID)
    assert ds.PositionReferenceIndicator in ("", None)


def test_dermoscopy_is_identical_when_converted_twice(wrapped):
    assert to_bytes(to_dermoscopy(wrapped, DEVICE, CONTACT)) == to_bytes(
        to_dermoscopy(wrapped, DEVICE, CONTACT))


def test_dermoscopy_keeps_no_exif_bytes_when_source_had_them(patient, exif_jpeg, secrets):
    ds = wrap_photo(exif_jpeg, patient=patient, study_uid=uid_from("s"), accession="A",
                    series_uid=uid_from("se"), sop_uid=uid_from("i"), instance_number=1,
                    study_datetime="20240315093000", content_datetime="20240315094512")
    data = to_bytes(to_dermoscopy(ds, DEVICE, NON_CONTACT))
    for secret in secrets:
        assert secret not in data
    assert b"GPS" not in data and b"Exif" not in data


def test_dcmdump_reads_dermoscopy_file_back_when_written(wrapped, tmp_path):
    dcmdump = shutil.which("dcmdump")
    if dcmdump is None:
        pytest.fail("dcmdump (Debian dcmtk) is not installed: run make test, which installs it")
    path = _write(tmp_path, to_dermoscopy(wrapped, DEVICE, CONTACT))
    done = subprocess.run([dcmdump, "-Un", "+P", "0008,0016", "+P", "0008,0060",
                           "+P", "0016,1004", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "[1.2.840.10008.5.1.4.1.1.77.1.7]" in done.stdout
    assert "[DMS]" in done.stdout
    assert "[ULTRASOUND_GEL\\ALCOHOL]" in done.stdout


# --- refusals -------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["manufacturer", "model", "serial", "software_versions"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_device_raises_naming_the_field_when_a_type_1_value_is_missing(field, value):
    args = dict(manufacturer="DermLite", model="DL5", serial="SN-1", software_versions=["1.0"])
    args[field] = value
    with pytest.raises(DomainError) as caught:
        Device(**args)
    assert caught.value.where == field
    assert field in caught.value.text


@pytest.mark.parametrize("field, value, message", [
    ("software_versions", [], "must not be empty"),
    ("software_versions", ["1.0", ""], "non-empty"),
    ("serial", "A" * 65, "longer than 64"),
    ("model", "DL5\\DL4", "backslash"),
    ("software_versions", 42, "list of strings"),
])
def test_device_raises_when_a_value_is_not_a_valid_lo(field, value, message):
    args = dict(manufacturer="DermLite", model="DL5", serial="SN-1", software_versions=["1.0"])
    args[field] = value
    with pytest.raises(DomainError, match=message) as caught:
        Device(**args)
    assert caught.value.where == field


def test_device_accepts_one_software_version_as_a_string_when_built():
    assert Device("DermLite", "DL5", "SN-1", " 2.0 ").software_versions == ("2.0",)


def test_params_raise_when_contact_has_no_immersion_media():
    with pytest.raises(DomainError) as caught:
        DermoscopyParams(polarization="POLARIZED", contact="CONTACT", magnification=10)
    assert caught.value.where == "immersion_media"
    assert "CONTACT" in caught.value.text
    assert "ULTRASOUND_GEL" in caught.value.hint


def test_params_raise_when_non_contact_names_immersion_media():
    with pytest.raises(DomainError) as caught:
        DermoscopyParams(polarization="POLARIZED", contact="NON_CONTACT", magnification=10,
                         immersion_media=["WATER"])
    assert caught.value.where == "immersion_media"


@pytest.mark.parametrize("field, value", [
    ("polarization", "CROSS_POLARIZED"),
    ("polarization", None),
    ("contact", "TOUCH"),
    ("immersion_media", ["OIL"]),
    ("recognizable_visual_features", "MAYBE"),
])
def test_params_raise_naming_the_field_when_a_value_is_not_a_defined_term(field, value):
    args = dict(polarization="POLARIZED", contact="CONTACT", magnification=10,
                immersion_media=["WATER"])
    args[field] = value
    with pytest.raises(DomainError) as caught:
        DermoscopyParams(**args)
    assert caught.value.where == field
    assert "must be one of" in caught.value.text


@pytest.mark.parametrize("field, value", [
    ("magnification", 0), ("magnification", -10), ("magnification", float("nan")),
    ("magnification", True), ("magnification", "10"), ("magnification", None),
    ("emitter_color_temperature", 0), ("emitter_color_temperature", float("inf")),
])
def test_params_raise_when_a_number_is_not_positive(field, value):
    args = dict(polarization="POLARIZED", contact="NON_CONTACT", magnification=10)
    args[field] = value
    with pytest.raises(DomainError) as caught:
        DermoscopyParams(**args)
    assert caught.value.where == field


@pytest.mark.parametrize("label", ["", "   ", "x" * 65, "L1\nL2"])
def test_params_raise_when_tracking_id_is_not_a_label(label):
    with pytest.raises(DomainError) as caught:
        DermoscopyParams(polarization="POLARIZED", contact="NON_CONTACT", magnification=10,
                         tracking_id=label)
    assert caught.value.where == "tracking_id"


def test_params_coerce_strings_to_enums_when_lower_case_given():
    params = DermoscopyParams(polarization="polarized", contact="contact", magnification=10,
                              immersion_media="mineral_oil", recognizable_visual_features="yes")
    assert params.polarization is PolarizationValues.POLARIZED
    assert params.immersion_media == (ImmersionMediaValues.MINERAL_OIL,)
    assert params.recognizable_visual_features is RecognizableVisualFeaturesValues.YES


def test_params_are_frozen_and_replace_revalidates_when_changed():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONTACT.magnification = 20
    assert dataclasses.replace(CONTACT, tracking_id="L2").tracking_id == "L2"
    with pytest.raises(DomainError):
        dataclasses.replace(NON_CONTACT, contact="CONTACT")


def test_to_dermoscopy_raises_image_error_when_dataset_is_not_a_vl_photo(wrapped):
    other = to_dermoscopy(wrapped, DEVICE, NON_CONTACT)
    with pytest.raises(ImageError) as caught:
        to_dermoscopy(other, DEVICE, NON_CONTACT)
    assert caught.value.where == "ds"


def test_to_dermoscopy_raises_naming_the_argument_when_types_are_wrong(wrapped):
    with pytest.raises(DomainError) as caught:
        to_dermoscopy(wrapped, {"manufacturer": "x"}, NON_CONTACT)
    assert caught.value.where == "device"
    with pytest.raises(DomainError) as caught:
        to_dermoscopy(wrapped, DEVICE, {"contact": "CONTACT"})
    assert caught.value.where == "params"


# --- lesion tracking ------------------------------------------------------------------------

def test_tracking_uid_is_stable_when_the_same_lesion_is_followed(wrapped, patient):
    first = to_dermoscopy(wrapped, DEVICE, dataclasses.replace(CONTACT, tracking_id="L1 dos"))
    later = to_dermoscopy(wrapped, DEVICE, dataclasses.replace(NON_CONTACT, tracking_id="l1  DOS"))
    assert first.TrackingUID == later.TrackingUID
    assert later.TrackingID == "l1  DOS"  # the label as typed


def test_tracking_uid_differs_when_lesion_or_patient_differs(patient):
    uid = tracking_uid(patient.id, patient.issuer, "L1")
    assert tracking_uid(patient.id, patient.issuer, "L2") != uid
    assert tracking_uid("IPP-999", patient.issuer, "L1") != uid
    assert tracking_uid(patient.id, "OTHER-HOSPITAL", "L1") != uid
    assert tracking_uid(patient.id, patient.issuer, "L1") == uid


def test_tracking_uid_differs_for_another_patient_when_written(wrapped, plain_jpeg):
    other = Patient(id="IPP-000999", name=PersonName("MARTIN", "Paul"), issuer="CHU-TEST",
                    birth_date="19700101", sex="M")
    ds = wrap_photo(plain_jpeg, patient=other, study_uid=uid_from("s2"), accession="ACC-8",
                    series_uid=uid_from("se2"), sop_uid=uid_from("i2"), instance_number=1,
                    study_datetime="20240315093000", content_datetime="20240315094512")
    mine = to_dermoscopy(wrapped, DEVICE, CONTACT)
    theirs = to_dermoscopy(ds, DEVICE, CONTACT)
    assert mine.TrackingID == theirs.TrackingID
    assert mine.TrackingUID != theirs.TrackingUID


# --- mappings/devices.toml ------------------------------------------------------------------

def test_load_devices_reads_the_shipped_example_when_file_is_default():
    devices = load_devices()
    assert DEFAULT_DEVICES_PATH.name == "devices.toml"
    device = devices["dermlite-dl5"]
    assert "EXAMPLE" in device.serial
    assert device.default_params.contact is ContactMethodValues.CONTACT
    assert device.default_params.immersion_media
    assert "EXAMPLE ENTRY - REPLACE IT" in DEFAULT_DEVICES_PATH.read_text(encoding="utf-8")


def test_load_devices_defaults_make_a_valid_object_when_used(wrapped, dciodvfy, tmp_path):
    device = load_devices()["dermlite-dl5"]
    ds = to_dermoscopy(wrapped, device, dataclasses.replace(device.default_params,
                                                            tracking_id="L3"))
    assert [line for line in dciodvfy(_write(tmp_path, ds)) if "Error" in line] == []


GOOD = """
[devices.dl5]
manufacturer = "DermLite"
model = "DL5"
serial = "SN-1"
software_versions = "2.0"
"""


def test_load_devices_accepts_an_entry_without_defaults(tmp_path):
    path = tmp_path / "devices.toml"
    path.write_text(GOOD, encoding="utf-8")
    device = load_devices(path)["dl5"]
    assert device.software_versions == ("2.0",)
    assert device.default_params is None


@pytest.mark.parametrize("text, key", [
    (GOOD.replace('serial = "SN-1"\n', ""), "[devices.dl5.serial]"),
    (GOOD.replace('"DermLite"', '""'), "[devices.dl5.manufacturer]"),
    (GOOD.replace('software_versions = "2.0"', "software_versions = []"),
     "[devices.dl5.software_versions]"),
    (GOOD + "colour = 'red'\n", "[devices.dl5.colour]"),
    (GOOD.replace("[devices.dl5]", '[devices."DL 5"]'), "[devices.DL 5]"),
    (GOOD + "[devices.dl5.defaults]\npolarization = 'POLARIZED'\ncontact = 'CONTACT'\n"
            "magnification = 10\n", "[devices.dl5.defaults.immersion_media]"),
    (GOOD + "[devices.dl5.defaults]\npolarization = 'CROSSED'\ncontact = 'NON_CONTACT'\n"
            "magnification = 10\n", "[devices.dl5.defaults.polarization]"),
    (GOOD + "[devices.dl5.defaults]\npolarization = 'POLARIZED'\ncontact = 'NON_CONTACT'\n",
     "[devices.dl5.defaults.magnification]"),
    (GOOD + "[devices.dl5.defaults]\npolarization = 'POLARIZED'\ncontact = 'NON_CONTACT'\n"
            "magnification = 10\ntracking_id = 'L1'\n", "[devices.dl5.defaults.tracking_id]"),
    ("[printers.x]\nmodel = 'y'\n", ""),
    ("[devices.dl5\nmodel = 'y'\n", ""),
])
def test_load_devices_raises_config_error_naming_file_and_key_when_entry_is_bad(tmp_path, text,
                                                                                key):
    path = tmp_path / "devices.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_devices(path)
    assert caught.value.where.startswith(str(path))
    assert key in caught.value.where


@pytest.mark.parametrize("text", ["", "[devices]\n"])
def test_a_site_without_a_dermatoscope_refuses_dermoscopic_images_saying_how(tmp_path, text):
    path = tmp_path / "devices.toml"
    path.write_text(text, encoding="utf-8")
    assert load_devices(path) == {}
    with pytest.raises(ImageError) as caught:
        select_device({}, "")
    assert caught.value.where == "device" and "devices.toml" in caught.value.hint


def test_the_shipped_entry_is_marked_as_the_example_and_a_site_entry_is_not(tmp_path):
    assert [d.example for d in load_devices().values()] == [True]
    path = tmp_path / "devices.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_devices(path)["dl5"].example is False


def test_load_devices_names_every_bad_key_at_once(tmp_path):
    path = tmp_path / "devices.toml"
    path.write_text(GOOD.replace('serial = "SN-1"\n', "") + "colour = 'red'\n"
                    + "[devices.dl5.defaults]\npolarization = 'POLARIZED'\n"
                      "contact = 'NON_CONTACT'\ntracking_id = 'L1'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_devices(path)
    assert sorted(p.where for p in caught.value.problems) == [
        f"{path} [devices.dl5.{key}]" for key in ("colour", "defaults.magnification",
                                                  "defaults.tracking_id", "serial")]


def test_load_devices_raises_config_error_when_file_is_missing(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_devices(tmp_path / "absent.toml")
    assert caught.value.where == str(tmp_path / "absent.toml")
