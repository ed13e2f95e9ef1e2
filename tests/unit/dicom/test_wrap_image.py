"""connector.dicom.wrap.wrap_image over the intake corpus of issue 3, generated here.

Valid inputs give objects with no dciodvfy error whose decoded pixels are the expected, upright
ones and that carry no EXIF or GPS bytes; bad inputs give one-line refusals with a hint.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import zlib

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms, ImageOps
from pydicom import dcmread
from pydicom.encaps import generate_frames
from pydicom.uid import (
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    VLPhotographicImageStorage,
)

from connector.dicom.jpeg import strip_private_segments
from connector.dicom.uids import uid_from
from connector.dicom.wrap import (
    PRIVATE_CREATOR,
    PRIVATE_GROUP,
    PRIVATE_SOURCE_SHA256,
    WrappedImage,
    wrap_image,
)
from connector.domain.errors import DomainError, ImageError
from tests.support.dicom_samples import (ALIGNED, GS_ICC, ODD, SECRETS, dcmtk_jpeg, encode,
                                         gps_exif, oriented_jpeg, pattern, png_bomb, tiff16_rgb,
                                         tiff_declaring)

@pytest.fixture
def wrap(patient):
    """wrap_image with realistic identity arguments; keyword arguments override them."""

    def run(data: bytes, **overrides) -> WrappedImage:
        args = dict(
            patient=patient,
            study_uid=uid_from("study", "ACC-3"),
            accession="ACC-3",
            series_uid=uid_from("series", "ACC-3", "photo"),
            sop_uid=uid_from("image", "ACC-3", hashlib.sha256(data).hexdigest()),
            instance_number=1,
            study_datetime="20240315093000",
            content_datetime="20240315094512",
        )
        args.update(overrides)
        return wrap_image(data, **args)

    return run


def _read(wrapped: WrappedImage):
    return dcmread(io.BytesIO(wrapped.to_bytes()))


def _array(wrapped: WrappedImage) -> np.ndarray:
    return _read(wrapped).pixel_array.astype(int)


def _pillow(data: bytes, mode: str | None = None) -> np.ndarray:
    """What Pillow decodes from `data` (turned per EXIF), as ints."""
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img)
        return np.asarray(img.convert(mode) if mode else img, dtype=int)


def _near(a: np.ndarray, b, tolerance: float = 8) -> bool:
    b = np.asarray(b, dtype=int)
    return a.shape == b.shape and float(np.abs(a - b).mean()) < tolerance


def _heic(img: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    pillow_heif.from_pillow(img).save(buffer, **options)
    return buffer.getvalue()


def _orientation_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _ramp(size, colour: bool, bits: int) -> np.ndarray:
    """A smooth ramp over the whole `bits` range (lossy JPEG keeps it close)."""
    width, height = size
    x = np.linspace(0, 2**bits - 1, width)[None, :]
    y = np.linspace(0, 2**bits - 1, height)[:, None]
    grey = (0.7 * x + 0.3 * y).astype(np.uint16)
    if not colour:
        return grey
    return np.stack([grey, (0.3 * x + 0.7 * y).astype(np.uint16), (2**bits - 1) - grey], axis=2)


def _cmyk_with_profile() -> tuple[Image.Image, bytes]:
    """The pattern in SWOP CMYK (ghostscript's default profile, 187 kB: several APP2 chunks)."""
    profile = (GS_ICC / "default_cmyk.icc").read_bytes()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    cmyk = ImageCms.profileToProfile(pattern(ODD), srgb, ImageCms.ImageCmsProfile(
        io.BytesIO(profile)), outputMode="CMYK")
    return cmyk, encode(cmyk, "JPEG", quality=95, icc_profile=profile)


def _cjpeg(img: Image.Image, tmp_path, *options: str) -> bytes:
    img.save(tmp_path / "in.ppm")
    return subprocess.run(["cjpeg", *options, str(tmp_path / "in.ppm")], capture_output=True,
                          check=True).stdout


# name -> (builder(tmp_path) -> bytes, expected transfer syntax, pixel path)
CORPUS = {
    "baseline_jpeg": (lambda tmp: encode(pattern(ODD), "JPEG", quality=90),
                      JPEGBaseline8Bit, "pass-through"),
    "gps_exif_jpeg": (lambda tmp: encode(pattern(), "JPEG", exif=gps_exif(), comment=SECRETS[3]),
                      JPEGBaseline8Bit, "pass-through"),
    "rotated_aligned_jpeg": (lambda tmp: oriented_jpeg(6, ALIGNED)[1], JPEGBaseline8Bit,
                             "jpegtran"),
    "rotated_odd_jpeg": (lambda tmp: oriented_jpeg(8, ODD)[1], JPEGLSLossless, "decoded"),
    "progressive_jpeg": (lambda tmp: encode(pattern(ODD), "JPEG", progressive=True),
                         JPEGLSLossless, "decoded"),
    "arithmetic_jpeg": (lambda tmp: _cjpeg(pattern(ODD), tmp, "-arithmetic"), JPEGLSLossless,
                        "decoded"),
    "cmyk_jpeg": (lambda tmp: encode(pattern(ODD).convert("CMYK"), "JPEG"), JPEGLSLossless,
                  "decoded"),
    "cmyk_icc_jpeg": (lambda tmp: _cmyk_with_profile()[1], JPEGLSLossless, "decoded"),
    "grey_16bit_lossless_jpeg": (lambda tmp: dcmtk_jpeg(_ramp((63, 47), False, 16), 16, "+el",
                                                        tmp), JPEGLSLossless, "decoded"),
    "colour_12bit_jpeg": (lambda tmp: dcmtk_jpeg(_ramp((63, 47), True, 12), 12, "+ee", tmp),
                          JPEGLSLossless, "decoded"),
    "rgba_png": (lambda tmp: encode(pattern(ODD).convert("RGBA"), "PNG"), JPEGLSLossless,
                 "decoded"),
    "palette_png": (lambda tmp: encode(pattern(ODD).convert("P"), "PNG"), JPEGLSLossless,
                    "decoded"),
    "grey_png": (lambda tmp: encode(pattern(ODD).convert("L"), "PNG"), JPEGLSLossless,
                 "decoded"),
    "png_16bit": (lambda tmp: encode(Image.fromarray(_ramp(ODD, False, 16)), "PNG"),
                  JPEGLSLossless, "decoded"),
    "tiny_png": (lambda tmp: encode(Image.new("RGB", (1, 1), (9, 99, 199)), "PNG"),
                 RLELossless, "decoded"),  # too small for CharLS
    "tiff_16bit_grey": (lambda tmp: encode(Image.fromarray(_ramp(ODD, False, 16)), "TIFF"),
                        JPEGLSLossless, "decoded"),
    "tiff_16bit_rgb": (lambda tmp: tiff16_rgb(_ramp(ODD, True, 16)), JPEGLSLossless, "decoded"),
    "heic": (lambda tmp: _heic(pattern(ODD), quality=90), JPEGLSLossless, "decoded"),
    "rotated_heic": (lambda tmp: _heic(pattern(ODD), quality=90, exif=_orientation_exif(6)),
                     JPEGLSLossless, "decoded"),
}


# --- every valid input: a valid object ----------------------------------------------------

@pytest.mark.parametrize("name", CORPUS)
def test_wrap_image_passes_dciodvfy_when_input_is_valid(name, wrap, dciodvfy, tmp_path):
    build, transfer, path = CORPUS[name]
    data = build(tmp_path)
    wrapped = wrap(data)
    assert (wrapped.transfer_syntax_uid, wrapped.pixel_path) == (transfer, path)
    out = tmp_path / "out.dcm"
    out.write_bytes(wrapped.to_bytes())
    report = dciodvfy(out)
    assert "VLPhotographicImage" in report
    assert [line for line in report if "Error" in line] == []
    ds = dcmread(out)
    assert ds.SOPClassUID == VLPhotographicImageStorage == wrapped.sop_class_uid
    assert ds.file_meta.TransferSyntaxUID == transfer
    assert ds.pixel_array.shape[:2] == (ds.Rows, ds.Columns)


@pytest.mark.parametrize("name", [n for n, (_, ts, _) in CORPUS.items() if ts == JPEGLSLossless])
def test_wrap_image_output_decodes_in_dcmtk_to_the_same_pixels_when_stored_jpeg_ls(name, wrap,
                                                                                   tmp_path):
    wrapped = wrap(CORPUS[name][0](tmp_path))
    (tmp_path / "ls.dcm").write_bytes(wrapped.to_bytes())
    subprocess.run(["dcmdjpls", str(tmp_path / "ls.dcm"), str(tmp_path / "raw.dcm")],
                   check=True, capture_output=True, timeout=60)
    assert np.array_equal(dcmread(tmp_path / "raw.dcm").pixel_array, _array(wrapped))


def test_wrap_image_records_facts_and_hash_of_the_file_as_received_when_wrapping(wrap):
    _, data = oriented_jpeg(6, ODD)
    wrapped = wrap(data)
    digest = hashlib.sha256(data).hexdigest()
    assert wrapped.sha256 == digest
    assert (wrapped.source_type, wrapped.orientation) == ("jpeg", 6)
    assert wrapped.lossy
    block = _read(wrapped).private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    assert block[PRIVATE_SOURCE_SHA256].value == digest


@pytest.mark.parametrize("name", ["heic", "cmyk_icc_jpeg", "rotated_odd_jpeg", "png_16bit"])
def test_wrap_image_writes_identical_bytes_when_called_twice(name, wrap, tmp_path):
    data = CORPUS[name][0](tmp_path)
    assert wrap(data).to_bytes() == wrap(data).to_bytes()


# --- orientation --------------------------------------------------------------------------

@pytest.mark.parametrize("size", [ALIGNED, ODD], ids=["mcu-aligned", "odd-size"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_wrap_image_pixels_are_upright_when_exif_orientation_is_set(orientation, size, wrap):
    reference, data = oriented_jpeg(orientation, size)
    wrapped = wrap(data)
    assert _near(_array(wrapped), reference)
    assert wrapped.orientation == orientation
    ds = wrapped.dataset
    if orientation == 1:
        assert wrapped.pixel_path == "pass-through"
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY"] and "DerivationDescription" not in ds
    else:
        assert list(ds.ImageType) == ["DERIVED", "PRIMARY"]
        assert f"orientation {orientation}" in ds.DerivationDescription
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_10918_1"


@pytest.mark.parametrize("orientation", range(2, 9))
def test_wrap_image_turns_losslessly_with_jpegtran_when_edges_are_whole_mcus(orientation, wrap):
    _, data = oriented_jpeg(orientation, ALIGNED)
    wrapped = wrap(data)
    assert wrapped.pixel_path == "jpegtran"
    assert wrapped.transfer_syntax_uid == JPEGBaseline8Bit
    assert wrapped.dataset.PhotometricInterpretation == "YBR_FULL_422"
    assert "jpegtran" in wrapped.dataset.DerivationDescription


@pytest.mark.parametrize("orientation", [2, 3, 4, 6, 7, 8])
def test_wrap_image_decodes_and_turns_exactly_when_jpegtran_cannot(orientation, wrap):
    _, data = oriented_jpeg(orientation, ODD)
    wrapped = wrap(data)
    assert (wrapped.pixel_path, wrapped.transfer_syntax_uid) == ("decoded", JPEGLSLossless)
    assert np.array_equal(_array(wrapped), _pillow(data))  # exactly Pillow's upright decoding
    assert wrapped.dataset.PhotometricInterpretation == "RGB"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_wrap_image_keeps_heif_decoder_turn_and_never_turns_twice_when_heic_has_orientation(
        orientation, wrap):
    reference = pattern(ODD)
    stored = reference if orientation == 1 else reference.transpose(
        {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
         4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
         6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
         8: Image.Transpose.ROTATE_270}[orientation])
    wrapped = wrap(_heic(stored, quality=95, exif=_orientation_exif(orientation)))
    assert _near(_array(wrapped), reference)
    assert wrapped.orientation == orientation


def test_wrap_image_turns_tiff_upright_when_its_orientation_tag_is_set(wrap):
    reference = pattern(ODD)
    data = encode(reference.transpose(Image.Transpose.ROTATE_90), "TIFF", tiffinfo={274: 6})
    wrapped = wrap(data)
    assert np.array_equal(_array(wrapped), np.asarray(reference, dtype=int))
    assert wrapped.orientation == 6


# --- decoded inputs: exact pixels and compression history ---------------------------------

@pytest.mark.parametrize("name", ["progressive_jpeg", "arithmetic_jpeg", "cmyk_jpeg"])
def test_wrap_image_stores_exactly_what_pillow_decodes_when_jpeg_cannot_pass_through(name, wrap,
                                                                                     tmp_path):
    data = CORPUS[name][0](tmp_path)
    ds = wrap(data).dataset
    assert np.array_equal(_array(wrap(data)), _pillow(data, "RGB"))
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_10918_1"
    assert ds.PhotometricInterpretation == "RGB" and ds.PlanarConfiguration == 0
    assert list(ds.ImageType) == ["DERIVED", "PRIMARY"]
    assert ds.DerivationDescription.startswith("decoded from 8-bit")


def test_wrap_image_converts_cmyk_through_its_profile_when_jpeg_embeds_one(wrap, tmp_path):
    cmyk, data = _cmyk_with_profile()
    wrapped = wrap(data)
    pixels = _array(wrapped)
    original = np.asarray(pattern(ODD), dtype=int)
    naive = np.asarray(cmyk.convert("RGB"), dtype=int)
    assert np.abs(pixels - original).mean() < 12 < np.abs(naive - original).mean()
    ds = wrapped.dataset
    assert ds.ColorSpace == "SRGB" and ds.ICCProfile[16:20] == b"RGB "
    assert "with the embedded profile" in ds.DerivationDescription


def test_wrap_image_keeps_lossless_history_and_high_byte_when_16_bit_jpeg_is_lossless(wrap,
                                                                                      tmp_path):
    """SOF3 above 8 bits: DCMTK decodes what Pillow cannot; 8 most significant bits kept."""
    source = _ramp((63, 47), False, 16)
    wrapped = wrap(dcmtk_jpeg(source, 16, "+el", tmp_path))
    assert np.array_equal(_array(wrapped), source >> 8)
    ds = wrapped.dataset
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    assert ds.LossyImageCompression == "00" and "LossyImageCompressionMethod" not in ds
    assert "16-bit lossless" in ds.DerivationDescription


def test_wrap_image_reduces_to_8_bits_when_12_bit_jpeg_is_lossy_colour(wrap, tmp_path):
    source = _ramp((63, 47), True, 12)
    wrapped = wrap(dcmtk_jpeg(source, 12, "+ee", tmp_path))
    assert _near(_array(wrapped), source >> 4, tolerance=2)
    ds = wrapped.dataset
    assert ds.PhotometricInterpretation == "RGB"
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_10918_1"
    assert "12-bit extended sequential colour" in ds.DerivationDescription


def test_wrap_image_drops_alpha_when_png_has_it(wrap):
    img = pattern(ODD).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize(ODD))
    wrapped = wrap(encode(img, "PNG"))
    assert np.array_equal(_array(wrapped), np.asarray(img, dtype=int)[:, :, :3])
    ds = wrapped.dataset
    assert ds.SamplesPerPixel == 3 and ds.LossyImageCompression == "00"
    assert "alpha channel dropped" in ds.DerivationDescription


def test_wrap_image_expands_palette_when_png_is_indexed(wrap):
    img = pattern(ODD).convert("P")
    wrapped = wrap(encode(img, "PNG"))
    assert np.array_equal(_array(wrapped), np.asarray(img.convert("RGB"), dtype=int))


def test_wrap_image_writes_monochrome_when_palette_is_grey(wrap):
    img = pattern(ODD).convert("L").convert("P")
    wrapped = wrap(encode(img, "PNG"))
    assert wrapped.dataset.PhotometricInterpretation == "MONOCHROME2"
    assert np.array_equal(_array(wrapped), np.asarray(img.convert("L"), dtype=int))


def test_wrap_image_writes_monochrome_when_png_is_greyscale(wrap):
    img = pattern(ODD).convert("L")
    wrapped = wrap(encode(img, "PNG"))
    ds = wrapped.dataset
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel) == ("MONOCHROME2", 1)
    assert "PlanarConfiguration" not in ds
    assert np.array_equal(_array(wrapped), np.asarray(img, dtype=int))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_wrap_image_keeps_the_high_byte_when_greyscale_is_16_bit(fmt, wrap):
    source = _ramp(ODD, False, 16)
    wrapped = wrap(encode(Image.fromarray(source), fmt))
    assert np.array_equal(_array(wrapped), source >> 8)
    assert "reduced from 16 to 8 bits" in wrapped.dataset.DerivationDescription


def test_wrap_image_keeps_the_high_byte_when_tiff_is_16_bit_rgb(wrap):
    source = _ramp(ODD, True, 16)
    wrapped = wrap(tiff16_rgb(source))
    assert np.array_equal(_array(wrapped), source >> 8)
    description = wrapped.dataset.DerivationDescription
    assert description.startswith("decoded from 16-bit TIFF (RGB, raw)")
    assert "reduced from 16 to 8 bits" in description


def test_wrap_image_marks_lossy_history_when_tiff_is_jpeg_compressed(wrap):
    ds = wrap(encode(pattern(ODD), "TIFF", compression="jpeg")).dataset
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_10918_1"


def test_wrap_image_stores_exactly_what_the_heif_decoder_gives_when_heic(wrap):
    data = _heic(pattern(ODD), quality=80)
    wrapped = wrap(data)
    assert np.array_equal(_array(wrapped), _pillow(data))
    ds = wrapped.dataset
    assert wrapped.source_type == "heif" and wrapped.lossy
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_23008_2"
    assert ds.ColorSpace == "SRGB"  # from its nclx colour box: BT.709 primaries, sRGB transfer


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (631, 473), (473, 631)])
def test_wrap_image_round_trips_exactly_when_png_has_odd_size(size, wrap):
    img = pattern(size) if min(size) > 8 else Image.new("RGB", size, (9, 99, 199))
    wrapped = wrap(encode(img, "PNG"))
    assert (wrapped.dataset.Columns, wrapped.dataset.Rows) == size
    assert np.array_equal(_array(wrapped), np.asarray(img, dtype=int))


# --- ICC profile --------------------------------------------------------------------------

def test_wrap_image_moves_the_icc_profile_into_the_module_when_jpeg_passes_through(wrap):
    profile = (GS_ICC / "srgb.icc").read_bytes()
    wrapped = wrap(encode(pattern(), "JPEG", icc_profile=profile))
    assert wrapped.pixel_path == "pass-through"
    ds = _read(wrapped)
    assert ds.ICCProfile == profile and ds.ColorSpace == "SRGB"


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "JPEG"])
@pytest.mark.parametrize("icc, space", [("a98.icc", "ADOBERGB"), ("rommrgb.icc", "ROMMRGB"),
                                        ("esrgb.icc", None)])
def test_wrap_image_names_the_color_space_when_the_profile_says_it(fmt, icc, space, wrap):
    profile = (GS_ICC / icc).read_bytes()
    options = {"progressive": True} if fmt == "JPEG" else {}
    ds = _read(wrap(encode(pattern(ODD), fmt, icc_profile=profile, **options)))
    assert ds.ICCProfile == profile
    assert ds.get("ColorSpace") == space


def test_wrap_image_names_the_color_space_when_heic_embeds_a_profile(wrap):
    profile = (GS_ICC / "a98.icc").read_bytes()
    img = pattern(ODD)
    img.info["icc_profile"] = profile
    ds = _read(wrap(_heic(img, quality=90)))
    assert ds.ICCProfile == profile and ds.ColorSpace == "ADOBERGB"


def test_wrap_image_adds_an_srgb_profile_when_png_declares_srgb_without_one(wrap):
    data = encode(pattern(ODD), "PNG")
    srgb = b"\x00\x00\x00\x01sRGB\x00" + zlib.crc32(b"sRGB\x00").to_bytes(4, "big")
    data = data[:33] + srgb + data[33:]  # right after IHDR
    ds = _read(wrap(data))
    assert ds.ColorSpace == "SRGB" and ds.ICCProfile[36:40] == b"acsp"
    assert np.array_equal(ds.pixel_array, np.asarray(pattern(ODD)))


@pytest.mark.parametrize("icc", [b"test-icc" * 4, "sgray.icc"], ids=["malformed", "grey"])
def test_wrap_image_leaves_out_the_icc_module_when_profile_is_unusable(icc, wrap):
    profile = icc if isinstance(icc, bytes) else (GS_ICC / icc).read_bytes()
    img = pattern() if isinstance(icc, bytes) else pattern().convert("L")
    ds = wrap(encode(img, "JPEG", icc_profile=profile)).dataset
    assert "ICCProfile" not in ds and "ColorSpace" not in ds


# --- privacy ------------------------------------------------------------------------------

PRIVATE_INPUTS = {
    "baseline_jpeg": lambda: encode(pattern(), "JPEG", exif=gps_exif(), comment=SECRETS[3]),
    "rotated_jpeg": lambda: encode(pattern(), "JPEG", exif=_exif_with_gps(6)),
    "odd_rotated_jpeg": lambda: encode(pattern(ODD), "JPEG", exif=_exif_with_gps(6)),
    "progressive_jpeg": lambda: encode(pattern(), "JPEG", exif=gps_exif(), progressive=True),
    "png": lambda: encode(pattern(), "PNG", exif=gps_exif()),
    "tiff": lambda: encode(pattern(), "TIFF", exif=gps_exif()),
    "heic": lambda: _heic(pattern(), exif=gps_exif().tobytes()),
}


def _exif_with_gps(orientation: int) -> Image.Exif:
    exif = gps_exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("name", PRIVATE_INPUTS)
def test_wrap_image_leaves_no_exif_gps_or_camera_bytes_when_input_had_them(name, wrap):
    data = PRIVATE_INPUTS[name]()
    planted = [secret for secret in SECRETS if secret in data]
    assert b"AcmeCam" in planted  # the input really carries EXIF
    raw = wrap(data).to_bytes()
    for secret in planted:
        assert secret not in raw
    assert b"Exif" not in raw and b"GPS" not in raw
    assert b"II*\x00" not in raw and b"MM\x00*" not in raw  # no TIFF header (EXIF/GPS IFDs)


def test_wrap_image_strips_xmp_when_jpeg_carries_it(wrap):
    data = encode(pattern(), "JPEG")
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>SN-9876543 48.8566N</x:xmpmeta>"
    data = data[:2] + b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp + data[2:]
    raw = wrap(data).to_bytes()
    assert b"xmpmeta" not in raw and b"SN-9876543" not in raw


def test_wrap_image_drops_the_jfif_thumbnail_and_keeps_pixels_when_one_is_embedded(wrap):
    data = encode(pattern(), "JPEG")
    assert data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\x00"
    thumb = bytes([2, 3]) + bytes(range(7, 25))  # a 2x3 RGB thumbnail
    length = int.from_bytes(data[4:6], "big")
    app0 = data[6:4 + length - 2] + thumb
    with_thumb = data[:4] + (len(app0) + 2).to_bytes(2, "big") + app0 + data[4 + length:]
    frame = next(generate_frames(_read(wrap(with_thumb)).PixelData, number_of_frames=1))
    assert frame == strip_private_segments(data)
    assert bytes(range(7, 25)) not in frame


@pytest.mark.parametrize("name", ["baseline_jpeg", "progressive_jpeg", "heic"])
def test_wrap_image_copies_camera_make_and_model_only_when_asked(name, wrap):
    data = PRIVATE_INPUTS[name]()
    assert wrap(data).dataset.Manufacturer == ""
    ds = wrap(data, camera_equipment=True).dataset
    assert (ds.Manufacturer, ds.ManufacturerModelName) == ("AcmeCam", "Derm 3000")
    raw = wrap(data, camera_equipment=True).to_bytes()
    assert b"SN-9876543" not in raw and b"GPS" not in raw


# --- refusals -----------------------------------------------------------------------------

def _truncated(name: str):
    return lambda: CORPUS[name][0](None)[: -len(CORPUS[name][0](None)) // 3]


BAD_INPUTS = {
    "zero_bytes": (lambda: b"", "empty"),
    "random_bytes": (lambda: np.random.default_rng(7).bytes(4096), "not an image"),
    "text": (lambda: "not a photo at all\n".encode(), "not an image"),
    "truncated_jpeg": (_truncated("baseline_jpeg"), "truncated"),
    "truncated_progressive_jpeg": (_truncated("progressive_jpeg"), "truncated"),
    "truncated_png": (_truncated("rgba_png"), "truncated or corrupt"),
    "truncated_tiff": (_truncated("tiff_16bit_rgb"), "TIFF"),
    "truncated_heic": (_truncated("heic"), "HEIF"),
    "gif": (lambda: encode(pattern(), "GIF"), "GIF"),
    "bmp": (lambda: encode(pattern(), "BMP"), "BMP"),
    "webp": (lambda: encode(pattern(), "WEBP"), "WebP"),
    "avif": (lambda: b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64),
             "AVIF"),
    "pdf": (lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
    "dicom": (lambda: b"\x00" * 128 + b"DICM" + b"\x00" * 64, "DICOM"),
    "png_bomb": (png_bomb, "30000 x 30000"),
    "png_without_pixels": (lambda: png_bomb(0, 0), "declares 0 x 0 pixels"),
    "tiff_bomb": (lambda: tiff_declaring(40000, 40000), "more pixels than the decoder allows"),
    "tiff_over_limit": (lambda: tiff_declaring(12000, 9000), "above the 100 Mpx limit"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_wrap_image_refuses_with_one_line_and_a_hint_when_input_is_bad(name, wrap):
    build, words = BAD_INPUTS[name]
    with pytest.raises(ImageError) as caught:
        wrap(build())
    error = caught.value
    assert words in error.text
    assert error.hint and "\n" not in error.one_line()


def test_wrap_image_refuses_as_too_large_when_file_exceeds_max_bytes(wrap):
    data = encode(pattern(), "JPEG")
    with pytest.raises(ImageError) as caught:
        wrap(data, max_bytes=len(data) - 1)
    assert caught.value.code == "too-large" and "MiB" in caught.value.text
    assert wrap(data, max_bytes=len(data)).pixel_path == "pass-through"


@pytest.mark.parametrize("name", ["baseline_jpeg", "heic", "rgba_png", "tiff_16bit_rgb"])
def test_wrap_image_refuses_as_too_large_when_pixels_exceed_max_pixels(name, wrap):
    data = CORPUS[name][0](None)
    with pytest.raises(ImageError) as caught:
        wrap(data, max_pixels=ODD[0] * ODD[1] - 1)
    assert caught.value.code == "too-large" and "631 x 473" in caught.value.text


def test_wrap_image_refuses_dermoscopy_without_a_device_and_unknown_kinds(wrap):
    with pytest.raises(DomainError, match="needs a device"):
        wrap(encode(pattern(), "JPEG"), kind="dermoscopy")
    with pytest.raises(ImageError, match="unknown image kind"):
        wrap(encode(pattern(), "JPEG"), kind="xray")


def test_wrap_image_checks_arguments_before_reading_pixels_when_both_are_bad(wrap):
    with pytest.raises(DomainError) as caught:
        wrap(b"", laterality="X")
    assert caught.value.where == "laterality"


def test_wrap_image_sniffs_the_bytes_and_not_a_name_when_given_a_png(wrap, tmp_path):
    misnamed = tmp_path / "photo.jpg"
    misnamed.write_bytes(encode(pattern(), "PNG"))
    assert wrap(misnamed.read_bytes()).source_type == "png"
    assert os.path.splitext(misnamed)[1] == ".jpg"
