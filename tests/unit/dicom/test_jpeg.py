"""connector.dicom.jpeg: frame header reading and lossless metadata stripping."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from PIL import Image

from connector.dicom.jpeg import inspect, strip_private_segments
from connector.domain.errors import ImageError


def _markers(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, first bytes of payload) for each header segment up to SOS, read independently."""
    out, i = [], 2
    while data[i + 1] != 0xDA:
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        out.append((marker, data[i + 4 : i + 4 + 12]))
        i += 2 + length
    return out


def test_inspect_reads_frame_header_when_baseline_colour(plain_jpeg):
    info = inspect(plain_jpeg)
    assert (info.rows, info.columns, info.components, info.precision) == (48, 64, 3, 8)
    assert info.sof_marker == 0xC0 and info.baseline
    assert info.component_ids == (1, 2, 3)
    assert info.adobe_transform is None
    assert (info.exif_orientation, info.make, info.model) == (None, None, None)


def test_inspect_reads_orientation_make_and_model_when_exif_present(exif_jpeg):
    info = inspect(exif_jpeg)
    assert info.exif_orientation == 6
    assert info.make == "AcmeCam"
    assert info.model == "Derm 3000"


def test_inspect_reports_one_component_when_grayscale(gray_jpeg):
    info = inspect(gray_jpeg)
    assert info.components == 1 and info.baseline


def test_inspect_reports_not_baseline_when_progressive(progressive_jpeg):
    info = inspect(progressive_jpeg)
    assert info.sof_marker == 0xC2
    assert not info.baseline


def test_inspect_reads_adobe_transform_when_cmyk(cmyk_jpeg):
    info = inspect(cmyk_jpeg)
    assert info.components == 4
    assert info.adobe_transform == 0


def test_inspect_reads_rgb_component_ids_when_encoded_without_colour_transform(tmp_path):
    Image.new("RGB", (16, 8), (10, 200, 30)).save(tmp_path / "in.ppm")
    data = subprocess.run(["cjpeg", "-rgb", str(tmp_path / "in.ppm")], capture_output=True,
                          check=True).stdout
    info = inspect(data)
    assert info.component_ids == (ord("R"), ord("G"), ord("B"))
    assert info.adobe_transform == 0


def test_inspect_raises_image_error_when_zero_bytes():
    with pytest.raises(ImageError) as caught:
        inspect(b"")
    assert "empty" in caught.value.text and caught.value.hint


def test_inspect_raises_image_error_when_not_a_jpeg():
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    with pytest.raises(ImageError) as caught:
        inspect(png.getvalue())
    assert "not a JPEG" in caught.value.text and caught.value.hint


@pytest.mark.parametrize("cut", [3, 30, 200, -2, -1])
def test_inspect_raises_image_error_when_truncated(plain_jpeg, cut):
    """Cut inside the header, inside a segment, inside the scan, and just before EOI."""
    with pytest.raises(ImageError) as caught:
        inspect(plain_jpeg[:cut])
    assert "truncated" in caught.value.text and caught.value.hint


def test_inspect_raises_image_error_when_segment_length_runs_past_end(plain_jpeg):
    # Make the APP0 segment claim more bytes than the file holds.
    broken = plain_jpeg[:4] + b"\xff\xff" + plain_jpeg[6:]
    with pytest.raises(ImageError, match="truncated"):
        inspect(broken)


def test_inspect_raises_image_error_when_a_segment_is_not_followed_by_a_marker(plain_jpeg):
    app0_end = 4 + int.from_bytes(plain_jpeg[4:6], "big")
    broken = plain_jpeg[:app0_end] + b"junk" + plain_jpeg[app0_end:]
    with pytest.raises(ImageError, match="corrupt"):
        inspect(broken)


def test_inspect_raises_image_error_when_segment_length_is_below_two(plain_jpeg):
    with pytest.raises(ImageError, match="corrupt"):
        inspect(plain_jpeg[:4] + b"\x00\x01" + plain_jpeg[6:])


def test_strip_drops_fill_bytes_and_keeps_pixels_when_markers_are_padded(plain_jpeg, decode):
    app0_end = 4 + int.from_bytes(plain_jpeg[4:6], "big")
    padded = plain_jpeg[:app0_end] + b"\xff\xff\xff" + plain_jpeg[app0_end:]
    stripped = strip_private_segments(padded)
    assert stripped == strip_private_segments(plain_jpeg)
    assert decode(stripped) == decode(plain_jpeg)


def test_strip_removes_exif_gps_serial_and_comment_when_present(exif_jpeg, secrets):
    for secret in secrets:
        assert secret in exif_jpeg  # the fixture really carries them
    stripped = strip_private_segments(exif_jpeg)
    assert b"Exif" not in stripped
    for secret in secrets:
        assert secret not in stripped
    with Image.open(io.BytesIO(stripped)) as img:
        assert len(img.getexif()) == 0
        assert "comment" not in img.info


def test_strip_removes_comment_segment_when_only_comment_present(comment_jpeg):
    assert any(m == 0xFE for m, _ in _markers(comment_jpeg))
    stripped = strip_private_segments(comment_jpeg)
    assert all(m != 0xFE for m, _ in _markers(stripped))


def test_strip_keeps_jfif_and_icc_segments_when_present(exif_jpeg):
    stripped = strip_private_segments(exif_jpeg)
    kept = _markers(stripped)
    assert [m for m, _ in kept if 0xE0 <= m <= 0xEF] == [0xE0, 0xE2]
    assert kept[0][1].startswith(b"JFIF\x00")
    with Image.open(io.BytesIO(stripped)) as img:
        assert img.info["icc_profile"] == b"test-icc" * 4


def test_strip_keeps_adobe_segment_when_present(cmyk_jpeg):
    stripped = strip_private_segments(cmyk_jpeg)
    assert any(m == 0xEE and p.startswith(b"Adobe") for m, p in _markers(stripped))
    assert inspect(stripped).adobe_transform == 0


def test_strip_decodes_to_identical_pixels_when_metadata_removed(exif_jpeg, decode):
    assert decode(strip_private_segments(exif_jpeg)) == decode(exif_jpeg)


def test_strip_copies_scan_byte_for_byte_when_metadata_removed(exif_jpeg):
    stripped = strip_private_segments(exif_jpeg)
    scan = stripped[stripped.index(b"\xff\xda") :]
    assert exif_jpeg.endswith(scan)


def test_strip_keeps_every_scan_when_progressive(progressive_jpeg, decode):
    stripped = strip_private_segments(progressive_jpeg)
    assert stripped.count(b"\xff\xda") == progressive_jpeg.count(b"\xff\xda") > 1
    assert decode(stripped) == decode(progressive_jpeg)


def test_strip_drops_bytes_after_end_of_image_when_trailer_present(plain_jpeg):
    stripped = strip_private_segments(plain_jpeg + b"PHONE-TRAILER-DATA")
    assert stripped == strip_private_segments(plain_jpeg)
    assert stripped.endswith(b"\xff\xd9")


def test_strip_changes_nothing_when_already_clean(exif_jpeg):
    once = strip_private_segments(exif_jpeg)
    assert strip_private_segments(once) == once


def test_strip_raises_image_error_when_truncated(exif_jpeg):
    with pytest.raises(ImageError):
        strip_private_segments(exif_jpeg[:-10])
