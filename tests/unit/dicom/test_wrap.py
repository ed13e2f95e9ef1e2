"""connector.dicom.wrap: baseline JPEG → VL Photographic Image (XC), pass-through.

Other inputs (decoded paths, orientation, limits) are in test_wrap_image.py."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess

import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless, VLPhotographicImageStorage

from connector.dicom.jpeg import JpegInfo, photometric_interpretation, strip_private_segments
from connector.dicom.sites import load_sites, lookup
from connector.dicom.uids import uid_from
from connector.dicom.wrap import (
    PRIVATE_CREATOR,
    PRIVATE_GROUP,
    PRIVATE_SOURCE_SHA256,
    to_bytes,
    wrap_photo,
)
from connector.domain.errors import DomainError, ImageError
from connector.domain.model import PersonName


@pytest.fixture
def wrap(patient):
    """wrap_photo with realistic defaults; keyword arguments override them."""

    def run(data: bytes, **overrides):
        args = dict(
            patient=patient,
            study_uid=uid_from("study", "ACC-42"),
            accession="ACC-42",
            series_uid=uid_from("series", "ACC-42", "photo"),
            sop_uid=uid_from("instance", "ACC-42", hashlib.sha256(data).hexdigest()),
            instance_number=1,
            study_datetime="20240315093000",
            content_datetime="20240315094512",
        )
        args.update(overrides)
        return wrap_photo(data, **args)

    return run


def _write(tmp_path, ds, name="out.dcm"):
    path = tmp_path / name
    path.write_bytes(to_bytes(ds))
    return path


def _errors(lines: list[str]) -> list[str]:
    return [line for line in lines if "Error" in line]


def _frame(path) -> bytes:
    ds = dcmread(path)
    frames = list(generate_frames(ds.PixelData, number_of_frames=1))
    assert len(frames) == 1
    return frames[0]


def test_wrap_passes_dciodvfy_when_site_laterality_and_exif_given(wrap, exif_jpeg, dciodvfy,
                                                                   tmp_path):
    site = lookup(load_sites(), "43067004")
    ds = wrap(exif_jpeg, site=site, laterality="R", referring=PersonName("MARTIN", "Jean"),
              description="Lésion du cuir chevelu", institution="CHU Test",
              source_sha256=hashlib.sha256(exif_jpeg).hexdigest())
    report = dciodvfy(_write(tmp_path, ds))
    assert "VLPhotographicImage" in report
    assert _errors(report) == []


def test_wrap_passes_dciodvfy_when_grayscale_without_site(wrap, gray_jpeg, dciodvfy, tmp_path):
    ds = wrap(gray_jpeg)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    assert "PlanarConfiguration" not in ds
    assert _errors(dciodvfy(_write(tmp_path, ds))) == []


def test_wrap_stores_the_stripped_stream_as_the_only_frame_when_exif_present(
        wrap, exif_upright_jpeg, tmp_path):
    frame = _frame(_write(tmp_path, wrap(exif_upright_jpeg)))
    assert frame == strip_private_segments(exif_upright_jpeg)


def test_wrap_frame_decodes_to_input_pixels_when_read_back(wrap, exif_upright_jpeg, gray_jpeg,
                                                           decode, tmp_path):
    for name, data in (("colour", exif_upright_jpeg), ("gray", gray_jpeg)):
        frame = _frame(_write(tmp_path, wrap(data), f"{name}.dcm"))
        assert decode(frame) == decode(data)


def test_wrap_leaves_no_exif_gps_or_maker_bytes_when_input_had_them(wrap, exif_jpeg, secrets,
                                                                     tmp_path):
    site = lookup(load_sites(), "33712006")
    raw = _write(tmp_path, wrap(exif_jpeg, site=site, laterality="L")).read_bytes()
    assert b"Exif" not in raw
    assert b"II*\x00" not in raw and b"MM\x00*" not in raw  # no TIFF header (EXIF/GPS IFDs)
    for secret in secrets:
        assert secret not in raw
    with Image.open(io.BytesIO(_frame(tmp_path / "out.dcm"))) as img:
        assert len(img.getexif()) == 0


def test_wrap_reads_back_as_jpeg_baseline_in_dcmtk_when_written(wrap, plain_jpeg, tmp_path):
    path = _write(tmp_path, wrap(plain_jpeg))
    dump = subprocess.run(["dcmdump", "-M", "-Un", "+P", "0002,0010", "+P", "0028,0004",
                           str(path)], capture_output=True, text=True, check=True).stdout
    assert "[1.2.840.10008.1.2.4.50]" in dump
    assert "[YBR_FULL_422]" in dump


def test_wrap_decodes_in_dcmtk_when_written(wrap, plain_jpeg, tmp_path):
    path = _write(tmp_path, wrap(plain_jpeg))
    subprocess.run(["dcmj2pnm", "+on", str(path), str(tmp_path / "out.png")], check=True,
                   capture_output=True)
    with Image.open(tmp_path / "out.png") as img:
        assert (img.mode, img.size) == ("RGB", (64, 48))


def test_wrap_fills_image_pixel_and_compression_attributes_when_colour(wrap, plain_jpeg):
    ds = wrap(plain_jpeg)
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert ds.file_meta.MediaStorageSOPClassUID == VLPhotographicImageStorage
    assert ds.SOPClassUID == VLPhotographicImageStorage and ds.Modality == "XC"
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel) == (48, 64, 3)
    assert ds.PhotometricInterpretation == "YBR_FULL_422" and ds.PlanarConfiguration == 0
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (8, 8, 7, 0)
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_10918_1"
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY"]
    assert ds.PatientOrientation == "" and len(ds.AcquisitionContextSequence) == 0
    assert ds["PixelData"].is_undefined_length


def test_wrap_copies_patient_study_and_referring_when_given(wrap, plain_jpeg, patient, tmp_path):
    ds = wrap(plain_jpeg, referring=PersonName("MARTIN", "Jean"), description="Nævus dos")
    back = dcmread(_write(tmp_path, ds))
    assert back.SpecificCharacterSet == "ISO_IR 100"
    assert str(back.PatientName) == "DUPONT^Hélène"
    assert (back.PatientID, back.IssuerOfPatientID) == ("IPP-000123", "CHU-TEST")
    assert (back.PatientBirthDate, back.PatientSex) == ("19800102", "F")
    assert str(back.ReferringPhysicianName) == "MARTIN^Jean"
    assert (back.StudyDate, back.StudyTime) == ("20240315", "093000")
    assert (back.ContentDate, back.ContentTime) == ("20240315", "094512")
    assert back.AccessionNumber == "ACC-42"
    assert back.SeriesDescription == back.ImageComments == "Nævus dos"


def test_wrap_codes_site_with_side_modifier_when_laterality_given(wrap, plain_jpeg):
    ds = wrap(plain_jpeg, site=lookup(load_sites(), "43067004"), laterality="R")
    (region,) = ds.AnatomicRegionSequence
    assert (region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning) == (
        "43067004", "SCT", "Skin of scalp")
    (modifier,) = region.AnatomicRegionModifierSequence
    assert (modifier.CodeValue, modifier.CodeMeaning) == ("24028007", "Right")
    assert ds.ImageLaterality == "R"


def test_wrap_writes_laterality_u_without_modifier_when_side_unknown(wrap, plain_jpeg):
    ds = wrap(plain_jpeg, site=lookup(load_sites(), "75093004"))
    assert ds.ImageLaterality == "U"
    assert "AnatomicRegionModifierSequence" not in ds.AnatomicRegionSequence[0]


def test_wrap_omits_anatomic_region_when_no_site(wrap, plain_jpeg):
    ds = wrap(plain_jpeg)
    assert "AnatomicRegionSequence" not in ds
    assert ds.ImageLaterality == "U"


def test_wrap_keeps_source_hash_in_private_block_when_given(wrap, exif_jpeg, tmp_path):
    digest = hashlib.sha256(exif_jpeg).hexdigest()
    back = dcmread(_write(tmp_path, wrap(exif_jpeg, source_sha256=digest)))
    block = back.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    assert block[PRIVATE_SOURCE_SHA256].value == digest


def test_wrap_writes_identical_bytes_when_called_twice_with_same_inputs(wrap, exif_jpeg):
    assert to_bytes(wrap(exif_jpeg)) == to_bytes(wrap(exif_jpeg))


@pytest.mark.parametrize("name", ["progressive_jpeg", "cmyk_jpeg"])
def test_wrap_stores_jpeg_ls_instead_of_passing_through_when_not_baseline_ycbcr(wrap, name,
                                                                                 request):
    ds = wrap(request.getfixturevalue(name))
    assert ds.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert ds.PhotometricInterpretation == "RGB" and ds.LossyImageCompression == "01"
    assert list(ds.ImageType) == ["DERIVED", "PRIMARY"]


@pytest.mark.parametrize("data", [b"", b"GIF89a....", None], ids=["empty", "gif", "truncated"])
def test_wrap_raises_image_error_when_input_is_not_a_whole_jpeg(wrap, plain_jpeg, data):
    with pytest.raises(ImageError):
        wrap(plain_jpeg[:-50] if data is None else data)


def test_photometric_interpretation_is_rgb_when_stream_has_no_colour_transform():
    info = JpegInfo(rows=1, columns=1, components=3, precision=8, sof_marker=0xC0, baseline=True,
                    component_ids=(82, 71, 66), adobe_transform=None, exif_orientation=None,
                    make=None, model=None)
    assert photometric_interpretation(info) == "RGB"


def test_wrap_decodes_to_rgb_jpeg_ls_when_stream_is_rgb_coded(wrap, decode, tmp_path):
    """VL Image requires YBR_FULL_422 under lossy JPEG, so RGB-coded streams cannot pass through."""
    Image.new("RGB", (64, 48), (10, 200, 30)).save(tmp_path / "in.ppm")
    data = subprocess.run(["cjpeg", "-rgb", str(tmp_path / "in.ppm")], capture_output=True,
                          check=True).stdout
    ds = wrap(data)
    assert ds.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert ds.PhotometricInterpretation == "RGB"
    assert ds.pixel_array.tobytes() == decode(data)[2]


@pytest.mark.parametrize(
    "overrides, where",
    [
        ({"laterality": "X"}, "laterality"),
        ({"study_datetime": "2024-03-15"}, "study_datetime"),
        ({"content_datetime": "20241345000000"}, "content_datetime"),
        ({"source_sha256": "ABC"}, "source_sha256"),
        ({"accession": "A" * 17}, "accession"),
        ({"description": "x" * 65}, "description"),
        ({"sop_uid": "not-a-uid"}, "sop_uid"),
        ({"study_uid": "1.2.03"}, "study_uid"),
        ({"instance_number": 0}, "instance_number"),
        ({"series_number": "1"}, "series_number"),
    ],
)
def test_wrap_raises_domain_error_naming_the_argument_when_it_is_bad(wrap, plain_jpeg,
                                                                     overrides, where):
    with pytest.raises(DomainError) as caught:
        wrap(plain_jpeg, **overrides)
    assert caught.value.where == where
