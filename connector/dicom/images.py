"""Turn the bytes a requester sent into the one frame a DICOM photo carries.

Two paths, chosen from the bytes alone (magic numbers, never the file name):
- pass-through: a baseline 8-bit Huffman JPEG with 1 or 3 YCbCr components goes in byte for
  byte, with its metadata segments cut (jpeg.py); when its EXIF orientation asks for a turn,
  `jpegtran -perfect` turns it losslessly in the DCT domain (orientation.py);
- decoded: everything else -- progressive, arithmetic-coded, 12-bit, CMYK or RGB-coded JPEG,
  PNG, TIFF, HEIC/HEIF, and turns jpegtran cannot do exactly -- is decoded (Pillow, pillow-heif;
  DCMTK `dcmdjpeg` for the 12- or 16-bit JPEG Pillow cannot read), turned upright, reduced to 8-bit
  RGB or greyscale without alpha, and stored losslessly.

Codec for the decoded path: JPEG-LS lossless (transfer syntax 1.2.840.10008.1.2.4.80) through
pydicom's encoder and pyjpegls (CharLS). It is lossless, dciodvfy accepts it for VL
Photographic with Photometric Interpretation RGB, DCMTK, pydicom and Orthanc 1.10 (previews)
decode it, and it is fast and small: on a 12-Mpx photo
about 1 s and 60 % of the raw size, where pydicom's pure-Python RLE encoder took 14 s and made
the data 4 % larger. Only images of a few hundred pixels, too small for CharLS's output
buffer, go RLE Lossless (1.2.840.10008.1.2.5) instead.

Privacy: nothing of EXIF, XMP, IPTC, GPS, maker notes or thumbnails is copied. Only the camera
make and model are read from EXIF (before anything is dropped), and the ICC profile is kept
because it says what the colours mean.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageCms
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.encoders import JPEGLSLosslessEncoder, RLELosslessEncoder
from pydicom.uid import (
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from connector.domain.errors import ImageError

from .common import file_meta
from .jpeg import JpegInfo, photometric_interpretation, read
from .limits import TOO_LARGE, check_pixels, check_size
from .orientation import TURNS, UPRIGHT, jpegtran_upright, normalise, upright

pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

JPEG, PNG, TIFF, HEIF = "jpeg", "png", "tiff", "heif"
PASS_THROUGH, JPEGTRAN, DECODED = "pass-through", "jpegtran", "decoded"

ISO_10918_1 = "ISO_10918_1"  # JPEG (Lossy Image Compression Method defined terms, PS3.3)
ISO_23008_2 = "ISO_23008_2"  # HEVC, what HEIC photos are coded with

_ACCEPTED = "send a JPEG, PNG, TIFF or HEIC photo"
_HINT_CORRUPT = "the file is damaged or cut short; export the photo again"
_PILLOW_FORMAT = {JPEG: "JPEG", PNG: "PNG", TIFF: "TIFF", HEIF: "HEIF"}
_FORMAT_NAMES = {PNG: "PNG", TIFF: "TIFF", HEIF: "HEIF/HEVC"}
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm",
                          b"hevs"})
_GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_OTHER_FORMATS = (  # (offset, magic, name): recognised only to refuse them clearly
    (0, b"GIF8", "a GIF image"),
    (0, b"BM", "a BMP image"),
    (8, b"WEBP", "a WebP image"),
    (0, b"%PDF", "a PDF document"),
    (128, b"DICM", "a DICOM file"),
    (0, b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (0, b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (0, b"\xff\x0a", "a JPEG XL image"),
    (0, b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
)
_SOF_NAMES = {0xC0: "baseline", 0xC1: "extended sequential", 0xC2: "progressive",
              0xC3: "lossless", 0xC5: "differential sequential", 0xC6: "differential progressive",
              0xC7: "differential lossless", 0xC9: "arithmetic-coded sequential",
              0xCA: "arithmetic-coded progressive", 0xCB: "arithmetic-coded lossless",
              0xCD: "arithmetic-coded differential sequential",
              0xCE: "arithmetic-coded differential progressive",
              0xCF: "arithmetic-coded differential lossless"}
# JPEG processes Pillow (8-bit libjpeg API) cannot decode above 8 bits, by the DICOM transfer
# syntax DCMTK decodes them under.
_DCMTK_SYNTAXES = {0xC1: "1.2.840.10008.1.2.4.51", 0xC2: "1.2.840.10008.1.2.4.55",
                   0xC3: "1.2.840.10008.1.2.4.57"}
_DCMTK_TIMEOUT = 120
_TINY = 1024  # bytes of decoded pixels under which the frame is stored RLE, not JPEG-LS
# Color Space (0028,2002) defined terms, recognised in the profile's description text.
_COLOR_SPACES = ((re.compile(r"\bsrgb\b"), "SRGB"),
                 (re.compile(r"\badobe ?rgb\b|\ba98\b"), "ADOBERGB"),
                 (re.compile(r"\bromm ?rgb\b|\bprophoto\b"), "ROMMRGB"))


@dataclass(frozen=True)
class ImageFrame:
    """One frame ready for Pixel Data, and what it took to make it (the facts for the object)."""

    source_type: str  # jpeg, png, tiff or heif: what the bytes were
    data: bytes  # the encoded frame, as it goes into Pixel Data
    transfer_syntax: str
    rows: int
    columns: int
    samples: int  # 1 or 3
    photometric: str  # YBR_FULL_422 or MONOCHROME2 (pass-through), RGB or MONOCHROME2
    pixel_path: str  # pass-through, jpegtran or decoded
    orientation: int  # EXIF orientation found in the source, 1 when none; always applied
    lossy_method: str  # ISO_10918_1 or ISO_23008_2 when ever lossy-compressed, else ""
    icc_profile: bytes | None  # an RGB ICC profile for RGB-family pixels only
    color_space: str  # SRGB, ADOBERGB, ROMMRGB or "" when not known
    make: str  # camera make and model from EXIF, cleaned for a LO value; "" when absent
    model: str
    steps: tuple[str, ...]  # what was done to the pixels, in order, for Derivation Description

    @property
    def lossy(self) -> bool:
        return bool(self.lossy_method)


UNSUPPORTED_TYPE = "unsupported-type"  # ImageError code: not a format we accept (HTTP 415)


def sniff(data: bytes) -> str:
    """The image type from its first bytes; ImageError for any other content."""
    if data[:2] == b"\xff\xd8":
        return JPEG
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return PNG
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if data[4:8] == b"ftyp":
        brands = _ftyp_brands(data)
        if brands & _HEVC_BRANDS or (brands & _GENERIC_HEIF_BRANDS and not brands & _AVIF_BRANDS):
            return HEIF
        if brands & _AVIF_BRANDS:
            raise ImageError("the file is an AVIF image, which is not accepted", where="image",
                             hint=_ACCEPTED, code=UNSUPPORTED_TYPE)
    for offset, magic, name in _OTHER_FORMATS:
        if data[offset : offset + len(magic)] == magic:
            raise ImageError(f"the file is {name}, not a photo format we accept", where="image",
                             hint=_ACCEPTED, code=UNSUPPORTED_TYPE)
    raise ImageError("the file is not an image we can read (unknown content)", where="image",
                     hint=_ACCEPTED, code=UNSUPPORTED_TYPE)


def read_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageFrame:
    """Check limits, sniff, then pass through or decode; ImageError for any refusal."""
    check_size(data, max_bytes)
    source = sniff(data)
    if source == JPEG:
        return _from_jpeg(data, max_pixels)
    return _decoded(data, source, max_pixels)


# --- JPEG ----------------------------------------------------------------------------------

def _from_jpeg(data: bytes, max_pixels: int) -> ImageFrame:
    info, stripped = read(data)  # one walk: refuses truncated or malformed streams
    check_pixels(info.columns, info.rows, max_pixels)
    orientation = normalise(info.exif_orientation)
    make, model = _lo(info.make), _lo(info.model)
    if _passes_through(info):
        icc, space = _icc_for(info.icc_profile, info.components)
        if orientation == UPRIGHT:
            return _jpeg_frame(stripped, info, PASS_THROUGH, orientation, icc, space, make,
                               model, ())
        turned = jpegtran_upright(stripped, orientation)
        if turned is not None:
            turned_info, turned = read(turned)
            if _passes_through(turned_info):
                step = f"{TURNS[orientation].text} losslessly by jpegtran " \
                       f"(EXIF orientation {orientation})"
                return _jpeg_frame(turned, turned_info, JPEGTRAN,
                                   orientation, icc, space, make, model, (step,))
        reason = "jpegtran cannot turn it exactly (edges are not whole blocks)"
    else:
        reason = _why_not_pass_through(info)
    image = _decode_jpeg(stripped, info)
    return _finish(image, JPEG, orientation, ISO_10918_1 if not info.lossless else "",
                   info.icc_profile, make, model,
                   [f"decoded from {_jpeg_name(info)} JPEG: {reason}"])


def _passes_through(info: JpegInfo) -> bool:
    """What JPEG Baseline (1.2.840.10008.1.2.4.50) in a VL Photographic Image can hold."""
    return (info.baseline and info.components in (1, 3)
            and photometric_interpretation(info) != "RGB")


def _why_not_pass_through(info: JpegInfo) -> str:
    if not info.baseline:
        return "only baseline JPEG can be stored as is"
    if info.components not in (1, 3):
        return f"{info.components} colour components"
    return "RGB-coded (no colour transform), which VL Photographic does not allow under JPEG"


def _jpeg_name(info: JpegInfo) -> str:
    process = _SOF_NAMES.get(info.sof_marker, f"SOF{info.sof_marker - 0xC0}")
    colours = {1: "greyscale", 3: "colour", 4: "CMYK"}.get(info.components,
                                                            f"{info.components}-component")
    return f"{info.precision}-bit {process} {colours}"


def _jpeg_frame(stream: bytes, info: JpegInfo, path: str, orientation: int,
                icc: bytes | None, space: str, make: str, model: str,
                steps: tuple[str, ...]) -> ImageFrame:
    return ImageFrame(
        source_type=JPEG, data=stream, transfer_syntax=JPEGBaseline8Bit, rows=info.rows,
        columns=info.columns, samples=info.components,
        photometric=photometric_interpretation(info), pixel_path=path, orientation=orientation,
        lossy_method=ISO_10918_1, icc_profile=icc, color_space=space, make=make, model=model,
        steps=steps)


def _decode_jpeg(stream: bytes, info: JpegInfo) -> Image.Image:
    if info.precision == 8:
        return _pillow_load(stream, JPEG)
    return _decode_jpeg_dcmtk(stream, info)


def _decode_jpeg_dcmtk(stream: bytes, info: JpegInfo) -> Image.Image:
    """Decode a 9- to 16-bit JPEG with DCMTK `dcmdjpeg` and keep its 8 most significant bits.

    Pillow speaks only libjpeg's 8-bit API. DCMTK, already installed for the archive side,
    carries the IJG 12- and 16-bit decoders; it reads JPEG inside a DICOM file, so the stream
    is wrapped in a throwaway Secondary Capture object and read back uncompressed.
    """
    syntax = _DCMTK_SYNTAXES.get(info.sof_marker)
    if syntax is None or info.components not in (1, 3) or not 8 < info.precision <= 16:
        raise ImageError(f"a {_jpeg_name(info)} JPEG cannot be decoded", where="image",
                         hint="export the photo as an 8-bit JPEG, PNG or TIFF")
    tool = shutil.which("dcmdjpeg")
    if tool is None:
        raise ImageError(f"a {_jpeg_name(info)} JPEG needs DCMTK's dcmdjpeg, which is missing",
                         where="image", hint="install the dcmtk package (make deps) or send "
                                             "an 8-bit JPEG")
    uid = "2.25.0"
    ds = Dataset()
    ds.file_meta = file_meta(SecondaryCaptureImageStorage, uid, syntax)
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, uid
    ds.Rows, ds.Columns, ds.SamplesPerPixel = info.rows, info.columns, info.components
    ds.PhotometricInterpretation = photometric_interpretation(info)
    if info.components == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, info.precision, info.precision - 1
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    with tempfile.TemporaryDirectory(prefix="telederm-jpeg-") as tmp:
        src, out = Path(tmp) / "in.dcm", Path(tmp) / "out.dcm"
        ds.save_as(src, enforce_file_format=True)
        try:
            done = subprocess.run([tool, str(src), str(out)], capture_output=True,
                                  timeout=_DCMTK_TIMEOUT)
        except subprocess.TimeoutExpired:
            done = None
        if done is None or done.returncode != 0 or not out.exists():
            raise ImageError(f"the {_jpeg_name(info)} JPEG cannot be decoded", where="image",
                             hint=_HINT_CORRUPT)
        decoded = dcmread(out)
    photometric = decoded.PhotometricInterpretation
    if photometric not in ("RGB", "MONOCHROME2"):
        raise ImageError(f"the {_jpeg_name(info)} JPEG decodes to {photometric}", where="image",
                         hint="export the photo as an 8-bit JPEG, PNG or TIFF")
    rows, columns = info.rows, info.columns
    pixels = np.frombuffer(decoded.PixelData, dtype="<u2", count=rows * columns * info.components)
    if info.components == 1:
        pixels = pixels.reshape(rows, columns)
    elif decoded.get("PlanarConfiguration", 0) == 1:
        pixels = pixels.reshape(3, rows, columns).transpose(1, 2, 0)
    else:
        pixels = pixels.reshape(rows, columns, 3)
    eight = np.ascontiguousarray(pixels >> (info.precision - 8)).astype(np.uint8)
    return Image.fromarray(eight, "RGB" if info.components == 3 else "L")


# --- PNG, TIFF, HEIF -----------------------------------------------------------------------

def _decoded(data: bytes, source: str, max_pixels: int) -> ImageFrame:
    if source == PNG:  # the decoder allocates from IHDR: check it before Pillow reads further
        if len(data) < 33 or data[12:16] != b"IHDR":
            raise ImageError("the PNG image has no header (IHDR)", where="image",
                             hint=_HINT_CORRUPT)
        width, height = struct.unpack(">II", data[16:24])
        check_pixels(width, height, max_pixels)
    image = _pillow_open(data, source)
    check_pixels(image.width, image.height, max_pixels)
    with _decoder_errors(source):  # counting frames reads every page header of a TIFF
        frames = getattr(image, "n_frames", 1)
    if frames > 1:  # a multi-page TIFF, an animated PNG: keeping one would drop the others
        raise ImageError(f"the {source.upper()} file holds {frames} images", where="image",
                         hint="send one photo per file")
    with _decoder_errors(source):
        exif = image.getexif()  # before load: Pillow's TIFF loader turns and drops the tag
        found = normalise(exif.get(0x0112))
        make, model = _lo(exif.get(0x010F)), _lo(exif.get(0x0110))
        image.load()
        still_tagged = normalise(image.getexif().get(0x0112)) != UPRIGHT
    bits = _source_bits(image, source, data)
    steps = [f"decoded from {bits}-bit {_FORMAT_NAMES[source]} ({image.mode}"
             + (f", {image.info['compression']})" if source == TIFF else ")")]
    if bits > 8:
        steps.append(f"reduced from {bits} to 8 bits")
    if source == HEIF:
        # libheif applies the HEIF rotation/mirror boxes and pillow-heif sets the EXIF
        # orientation to 1, keeping the original value aside.
        orientation, turned_by_decoder = normalise(image.info.get("original_orientation")), True
        lossy, icc = ISO_23008_2, _heif_icc(image)
    else:
        orientation, turned_by_decoder = found, not still_tagged
        lossy = ISO_10918_1 if image.info.get("compression") in ("jpeg", "tiff_jpeg") else ""
        icc = image.info.get("icc_profile") or (_srgb_profile() if "srgb" in image.info else None)
    if turned_by_decoder and orientation != UPRIGHT:
        steps.append(f"{TURNS[orientation].text} by the {source.upper()} decoder "
                     f"(orientation {orientation})")
    return _finish(image, source, orientation, lossy, icc, make, model, steps,
                   already_upright=turned_by_decoder)


def _source_bits(image: Image.Image, source: str, data: bytes) -> int:
    """Bits per sample of the file (Pillow hands 16-bit colour over already cut to 8)."""
    if source == PNG:
        return data[24]  # IHDR bit depth
    if source == TIFF:
        bits = image.tag_v2.get(258, (8,))  # BitsPerSample
        return max(bits) if isinstance(bits, tuple) else int(bits)
    return int(image.info.get("bit_depth", 8))


def _heif_icc(image: Image.Image) -> bytes | None:
    """The ICC profile of a HEIF image; its nclx colour box counts when it says sRGB."""
    icc = image.info.get("icc_profile")
    if icc:
        return icc
    nclx = image.info.get("nclx_profile") or {}
    if nclx.get("color_primaries") == 1 and nclx.get("transfer_characteristics") == 13:
        return _srgb_profile()
    return None


def _pillow_open(data: bytes, source: str) -> Image.Image:
    """Open (headers only) with the one Pillow plugin the sniffed type allows."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check ourselves
            return Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[source]])
    except Image.DecompressionBombError:
        raise ImageError("the image declares more pixels than the decoder allows "
                         f"({2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpx)", where="image",
                         code=TOO_LARGE, hint="resize the image before sending it") from None
    except Exception:  # decoders of untrusted input raise many types; all mean "unreadable"
        raise ImageError(f"the {source.upper()} image cannot be read (damaged header)",
                         where="image", hint=_HINT_CORRUPT) from None


@contextmanager
def _decoder_errors(source: str):
    """Decoding errors as ImageError: untrusted input makes decoders raise many types."""
    try:
        yield
    except MemoryError:
        raise ImageError("the image is too large to decode here", where="image",
                         code=TOO_LARGE, hint="resize the image before sending it") from None
    except ImageError:
        raise
    except Exception:  # see the docstring: every failure means the file is unreadable
        raise ImageError(f"the {source.upper()} image is truncated or corrupt", where="image",
                         hint=_HINT_CORRUPT) from None


def _pillow_load(stream: bytes, source: str) -> Image.Image:
    image = _pillow_open(stream, source)
    with _decoder_errors(source):
        image.load()
    return image


# --- common end of the decoded path --------------------------------------------------------

def _finish(image: Image.Image, source: str, orientation: int, lossy_method: str,
            icc: bytes | None, make: str, model: str, steps: list[str], *,
            already_upright: bool = False) -> ImageFrame:
    """8-bit RGB or greyscale, upright, JPEG-LS lossless."""
    image, icc = _eight_bit(image, icc, steps)
    if not already_upright and orientation != UPRIGHT:
        image = upright(image, orientation)
        steps.append(f"{TURNS[orientation].text} (EXIF orientation {orientation})")
    samples = 3 if image.mode == "RGB" else 1
    photometric = "RGB" if samples == 3 else "MONOCHROME2"
    icc, space = _icc_for(icc, samples)
    raw = image.tobytes()
    # CharLS (pyjpegls 1.5) sizes its output buffer at twice the input, too small for the
    # JPEG-LS headers of a tiny image (seen failing up to 120 bytes of noise): those few
    # pixels go RLE Lossless, which pydicom encodes natively (slow only for big images).
    encoder, syntax, name = ((RLELosslessEncoder, RLELossless, "RLE") if len(raw) < _TINY
                             else (JPEGLSLosslessEncoder, JPEGLSLossless, "JPEG-LS"))
    frame = encoder.encode(raw, rows=image.height, columns=image.width,
                           samples_per_pixel=samples, bits_allocated=8, bits_stored=8,
                           pixel_representation=0, photometric_interpretation=photometric,
                           planar_configuration=0, number_of_frames=1)
    steps.append(f"stored as {name} lossless")
    return ImageFrame(
        source_type=source, data=frame, transfer_syntax=syntax, rows=image.height,
        columns=image.width, samples=samples, photometric=photometric, pixel_path=DECODED,
        orientation=orientation, lossy_method=lossy_method, icc_profile=icc, color_space=space,
        make=make, model=model, steps=tuple(steps))


def _eight_bit(image: Image.Image, icc: bytes | None,
               steps: list[str]) -> tuple[Image.Image, bytes | None]:
    """Reduce any mode Pillow decodes to 8-bit 'RGB' or 'L', noting what was lost."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return image, icc
    if mode == "1":
        return image.convert("L"), icc
    if mode.startswith("I;16"):
        high = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(high, "L"), icc
    if mode == "P":
        if "transparency" in image.info:
            steps.append("transparency dropped")
        used = [index for _, index in image.getcolors(256) or []]
        palette = image.getpalette() or []
        grey = all(palette[3 * i] == palette[3 * i + 1] == palette[3 * i + 2]
                   for i in used if 3 * i + 2 < len(palette))
        return image.convert("L" if grey else "RGB"), icc
    if mode in ("RGBA", "RGBa", "RGBX", "LA", "La", "PA"):
        if mode != "RGBX":
            steps.append("alpha channel dropped")
        target = "L" if mode in ("LA", "La") else "RGB"
        return image.convert(target), icc
    if mode == "CMYK":
        return _cmyk_to_rgb(image, icc, steps)
    if mode == "YCbCr":
        return image.convert("RGB"), icc
    raise ImageError(f"images in Pillow mode {mode} (e.g. 32-bit or float) are not accepted",
                     where="image", hint="export the photo as 8- or 16-bit RGB")


def _cmyk_to_rgb(image: Image.Image, icc: bytes | None,
                 steps: list[str]) -> tuple[Image.Image, bytes | None]:
    """Through the embedded CMYK profile to sRGB when there is one, else Pillow's formula."""
    if icc and _valid_icc(icc) and icc[16:20] == b"CMYK":
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            target = ImageCms.ImageCmsProfile(io.BytesIO(_srgb_profile()))
            rgb = ImageCms.profileToProfile(image, source, target, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass
        else:
            steps.append("converted from CMYK to sRGB with the embedded profile")
            return rgb, _srgb_profile()
    steps.append("converted from CMYK to RGB without a profile")
    return image.convert("RGB"), None


# --- metadata ------------------------------------------------------------------------------

def _icc_for(icc: bytes | None, samples: int) -> tuple[bytes | None, str]:
    """The profile to put in the ICC Profile module and its Color Space defined term.

    Only a well-formed RGB profile for colour pixels: a CMYK or grey profile describes other
    pixels than the ones stored.
    """
    if samples != 3 or not icc or not _valid_icc(icc) or icc[16:20] != b"RGB ":
        return None, ""
    try:
        text = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None, ""
    lowered = text.lower()
    space = next((term for pattern, term in _COLOR_SPACES if pattern.search(lowered)), "")
    return icc, space


def _valid_icc(icc: bytes) -> bool:
    """Header checks of ICC.1: declared size, 'acsp' signature."""
    return len(icc) >= 132 and icc[36:40] == b"acsp" and int.from_bytes(icc[:4], "big") == len(icc)


@lru_cache(maxsize=1)
def _srgb_profile() -> bytes:
    """LittleCMS's sRGB profile with a fixed creation date, so objects stay reproducible."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[24:36] = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
    return bytes(profile)


def _lo(value: object) -> str:
    """An EXIF ASCII value as a DICOM LO: printable, no backslash, at most 64 characters."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return ""
    text = "".join(ch for ch in value.split("\x00", 1)[0] if ch.isprintable() and ch != "\\")
    return text.strip()[:64].strip()


def _ftyp_brands(data: bytes) -> set[bytes]:
    """Major and compatible brands of an ISO-BMFF 'ftyp' box."""
    size = int.from_bytes(data[:4], "big")
    end = min(max(size, 16), len(data), 4096)
    brands = {data[8:12]}
    brands.update(data[i : i + 4] for i in range(16, end - 3, 4))
    return brands


def preview_jpeg(path: str | Path, *, longest: int = 128, quality: int = 60) -> bytes:
    """A small JPEG of the first frame of the DICOM image file at `path` (`longest` pixels on
    its longer side, a few KB), for the report PDF's thumbnails: the requester's record then
    shows which images the answer was given on. ImageError when the file cannot be drawn."""
    try:
        ds = dcmread(path)
        if ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit:
            # the camera's JPEG itself, decoded at the smallest DCT scale that still covers
            # the thumbnail (1/8 of a 12-Mpx photo): a few ms instead of a whole decode
            image = Image.open(io.BytesIO(next(generate_frames(ds.PixelData,
                                                               number_of_frames=1))))
            image.draft("RGB", (longest, longest))
        else:
            pixels = ds.pixel_array  # colour (YBR) frames come out as RGB
            image = Image.fromarray(pixels[0] if pixels.ndim == 4 else pixels)
        image.load()
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one ImageError
        raise ImageError(f"the stored image cannot be drawn ({type(exc).__name__})",
                         where=str(path)) from None
    image = image.convert("RGB")
    image.thumbnail((longest, longest))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()
