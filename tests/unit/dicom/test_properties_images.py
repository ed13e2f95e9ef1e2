"""Property-based tests (hypothesis) for the image sniffer, the JPEG marker walker and
`read_image`: whatever bytes a requester uploads, the answer is a result or an `ImageError`
(a clear 4xx), never another exception and never a hang.
"""

from __future__ import annotations

import io
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from connector.dicom.images import ImageFrame, read_image, sniff
from connector.dicom.jpeg import JpegInfo, inspect, strip_private_segments
from connector.domain.errors import ImageError
from tests.support.dicom_samples import dcmtk_jpeg, oriented_jpeg, tiff16_rgb

FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = {"max_bytes": 1 << 20, "max_pixels": 1 << 16}

MAGICS = [b"\xff\xd8", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xc0", b"\xff\xd8\xff\xda",
          b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"\x00\x00\x00\x18ftypheic",
          b"\x00\x00\x00\x18ftypavif", b"\x00\x00\x00\x18ftypmif1", b"GIF8", b"BM", b"%PDF"]


def _image(size, mode="RGB") -> Image.Image:
    width, height = size
    img = Image.new("RGB", size)
    img.putdata([((x * 37) % 256, (y * 53) % 256, (x * y * 7) % 256)
                 for y in range(height) for x in range(width)])
    return img.convert(mode)


def _encode(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def _exif_jpeg() -> bytes:
    img = _image((16, 8))
    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x0110] = 6, "AcmeCam", "Derm 3000"
    return _encode(img, "JPEG", quality=80, exif=exif.tobytes(), comment=b"secret")


JPEGS = [
    _encode(_image((16, 8)), "JPEG", quality=80),
    _encode(_image((9, 7), "L"), "JPEG", quality=70),
    _encode(_image((16, 16)), "JPEG", quality=80, progressive=True),
    _encode(_image((8, 8), "CMYK"), "JPEG"),
    _exif_jpeg(),
]
OTHERS = [
    _encode(_image((8, 6)), "PNG"),
    _encode(_image((8, 6), "RGBA"), "PNG"),
    _encode(_image((8, 6), "P"), "PNG"),
    _encode(_image((8, 6)), "TIFF"),
    _encode(_image((8, 6), "L"), "TIFF", compression="tiff_lzw"),
]
jpegs = st.sampled_from(JPEGS)


@cache
def _slow_samples() -> tuple[bytes, ...]:
    """Samples for the other paths of read_image: EXIF-turned JPEGs (jpegtran, or decoded when
    the edges are not whole blocks), 16-bit TIFF, HEIC, 12-bit JPEG (DCMTK)."""
    gradient = (np.arange(6 * 8 * 3).reshape(6, 8, 3) * 181) % 65536
    with tempfile.TemporaryDirectory() as tmp:
        twelve = dcmtk_jpeg(np.arange(8 * 8).reshape(8, 8) * 61 % 4096, 12, "+ee", Path(tmp))
    return (oriented_jpeg(6, size=(16, 16))[1], oriented_jpeg(3, size=(17, 9))[1],
            tiff16_rgb(gradient), _encode(_image((8, 6)), "HEIF", quality=60), twelve)


valid = st.sampled_from(range(len(JPEGS + OTHERS) + 5)).map(
    lambda i: (JPEGS + OTHERS + list(_slow_samples()))[i])


def _result_or_image_error(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except ImageError as e:
        assert e.text and e.hint  # a clear, one-line answer
        return e


def _mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        if out:
            out[position % len(out)] = value
    return bytes(out)


# --- sniff ---------------------------------------------------------------------------------

@FAST
@given(data=st.binary(max_size=300))
def test_sniff_returns_type_or_image_error_when_given_arbitrary_bytes(data):
    result = _result_or_image_error(sniff, data)
    assert result in ("jpeg", "png", "tiff", "heif") or isinstance(result, ImageError)


@FAST
@given(magic=st.sampled_from(MAGICS), data=st.binary(max_size=64))
def test_sniff_returns_type_or_image_error_when_bytes_start_with_a_magic(magic, data):
    result = _result_or_image_error(sniff, magic + data)
    assert result in ("jpeg", "png", "tiff", "heif") or isinstance(result, ImageError)


# --- jpeg.inspect / strip_private_segments -------------------------------------------------

@FAST
@given(data=st.binary(max_size=300))
def test_inspect_returns_info_or_image_error_when_given_arbitrary_bytes(data):
    for candidate in (data, b"\xff\xd8" + data):
        result = _result_or_image_error(inspect, candidate)
        assert isinstance(result, (JpegInfo, ImageError))
        stripped = _result_or_image_error(strip_private_segments, candidate)
        assert isinstance(stripped, (bytes, ImageError))


@FAST
@given(jpeg=jpegs, cut=st.integers(0, 100_000), tail=st.binary(max_size=64))
def test_inspect_returns_info_or_image_error_when_valid_jpeg_is_truncated_or_extended(
        jpeg, cut, tail):
    truncated = jpeg[: cut % (len(jpeg) + 1)]
    result = _result_or_image_error(inspect, truncated)
    assert isinstance(result, (JpegInfo, ImageError))
    if len(truncated) < len(jpeg):  # the walk must notice the missing end-of-image
        assert isinstance(result, ImageError)
    # bytes after EOI (phone trailers) do not change what the header says, and are dropped
    assert inspect(jpeg + tail) == inspect(jpeg)
    assert strip_private_segments(jpeg + tail) == strip_private_segments(jpeg)


@FAST
@given(jpeg=jpegs, edits=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)),
                                  min_size=1, max_size=4))
def test_inspect_and_strip_return_result_or_image_error_when_valid_jpeg_is_corrupted(jpeg, edits):
    data = _mutate(jpeg, edits)
    assert isinstance(_result_or_image_error(inspect, data), (JpegInfo, ImageError))
    stripped = _result_or_image_error(strip_private_segments, data)
    if isinstance(stripped, bytes):  # whatever walked once walks again, to the same bytes
        assert strip_private_segments(stripped) == stripped


@FAST
@given(jpeg=jpegs, tail=st.binary(max_size=32))
def test_strip_private_segments_is_idempotent_when_jpeg_is_valid(jpeg, tail):
    once = strip_private_segments(jpeg + tail)
    assert strip_private_segments(once) == once
    assert inspect(once).rows == inspect(jpeg).rows
    assert inspect(once).columns == inspect(jpeg).columns
    assert b"AcmeCam" not in once and b"secret" not in once
    assert Image.open(io.BytesIO(once)).size == Image.open(io.BytesIO(jpeg)).size


# --- read_image ----------------------------------------------------------------------------

@FAST
@given(data=st.binary(max_size=200), magic=st.sampled_from([b""] + MAGICS))
def test_read_image_returns_frame_or_image_error_when_given_arbitrary_bytes(data, magic):
    result = _result_or_image_error(read_image, magic + data, **LIMITS)
    assert isinstance(result, (ImageFrame, ImageError))


@FEW
@given(image=valid, cut=st.integers(0, 100_000), tail=st.binary(max_size=32))
def test_read_image_returns_frame_or_image_error_when_valid_image_is_truncated_or_extended(
        image, cut, tail):
    truncated = image[: cut % (len(image) + 1)]
    for data in (truncated, image + tail):
        result = _result_or_image_error(read_image, data, **LIMITS)
        assert isinstance(result, (ImageFrame, ImageError))


@FEW
@given(image=valid, edits=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)),
                                   min_size=1, max_size=3))
def test_read_image_returns_frame_or_image_error_when_valid_image_is_corrupted(image, edits):
    result = _result_or_image_error(read_image, _mutate(image, edits), **LIMITS)
    assert isinstance(result, (ImageFrame, ImageError))


@pytest.mark.parametrize("index", range(len(JPEGS + OTHERS) + 5))
def test_read_image_returns_frame_when_valid_sample_is_untouched(index):
    frame = read_image((JPEGS + OTHERS + list(_slow_samples()))[index], **LIMITS)
    assert frame.rows > 0 and frame.columns > 0 and frame.data
