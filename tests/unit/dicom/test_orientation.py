"""connector.dicom.orientation: one table of turns for jpegtran and Pillow, both exact."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from connector.dicom.orientation import TURNS, jpegtran_upright, normalise, upright
from tests.support.dicom_samples import ALIGNED, ODD, STORED_AS, oriented_jpeg, pattern


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=int)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_matches_pillow_exif_transpose_when_image_is_tagged(orientation):
    img = pattern((9, 5))
    tagged = img.copy()
    tagged.getexif()[0x0112] = orientation
    assert upright(img, orientation).tobytes() == ImageOps.exif_transpose(tagged).tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_corpus_reference_is_what_a_viewer_shows_when_stored_with_the_tag(orientation):
    """The test corpus itself: the stored JPEG, turned as Pillow's viewer logic does, is upright."""
    reference, data = oriented_jpeg(orientation)
    with Image.open(io.BytesIO(data)) as img:
        shown = np.asarray(ImageOps.exif_transpose(img), dtype=int)
    assert np.abs(shown - np.asarray(reference, dtype=int)).mean() < 8


def test_every_turn_undoes_the_way_a_camera_stores_when_applied():
    img = pattern((9, 5))
    for orientation, stored_as in STORED_AS.items():
        stored = img if stored_as is None else img.transpose(stored_as)
        assert upright(stored, orientation).tobytes() == img.tobytes(), orientation


@pytest.mark.parametrize("value", [None, 0, 9, -1, "6", 6.0])
def test_normalise_gives_upright_when_value_is_absent_or_out_of_range(value):
    assert normalise(value) == 1


def test_normalise_keeps_value_when_in_range():
    assert [normalise(v) for v in range(1, 9)] == list(range(1, 9))


@pytest.mark.parametrize("orientation", range(2, 9))
def test_jpegtran_turns_upright_when_edges_are_whole_mcus(orientation):
    reference, data = oriented_jpeg(orientation, ALIGNED)
    turned = jpegtran_upright(data, orientation)
    assert turned is not None
    assert np.abs(_pixels(turned) - np.asarray(reference, dtype=int)).mean() < 8


def test_jpegtran_turn_is_lossless_when_undone():
    """A 90° turn and its inverse give back exactly the pixels of the original stream."""
    _, data = oriented_jpeg(1, ALIGNED)
    there = jpegtran_upright(data, 6)
    back = jpegtran_upright(there, 8)
    assert np.array_equal(_pixels(back), _pixels(data))


@pytest.mark.parametrize("orientation", [2, 3, 4, 6, 7, 8])
def test_jpegtran_returns_none_when_edges_are_partial_mcus(orientation):
    _, data = oriented_jpeg(orientation, ODD)
    assert jpegtran_upright(data, orientation) is None


def test_jpegtran_transposes_when_edges_are_partial_mcus():
    """Transposition maps blocks onto blocks whatever the size, so jpegtran does it exactly."""
    reference, data = oriented_jpeg(5, ODD)
    turned = jpegtran_upright(data, 5)
    assert turned is not None
    assert np.abs(_pixels(turned) - np.asarray(reference, dtype=int)).mean() < 8


def test_jpegtran_returns_none_when_orientation_is_upright_or_stream_is_corrupt():
    _, data = oriented_jpeg(1)
    assert jpegtran_upright(data, 1) is None
    assert jpegtran_upright(b"\xff\xd8" + b"\x00" * 50, 6) is None


def test_turn_table_covers_every_non_upright_orientation():
    assert sorted(TURNS) == list(range(2, 9))
    assert all(turn.text for turn in TURNS.values())
