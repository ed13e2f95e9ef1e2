"""EXIF orientation: turn the pixels upright before they go into DICOM.

Why: DICOM has no display-rotation attribute and viewers ignore EXIF, so a phone photo taken
sideways shows the lesion sideways unless the pixels themselves are turned (reference/dicom.md
3.5). For a baseline JPEG the turn is done losslessly in the DCT domain by `jpegtran -perfect`
(Debian libjpeg-turbo-progs); it refuses when the image edges are not whole MCUs, and then the
caller decodes and turns the pixels with Pillow instead.

The table maps each EXIF value (TIFF 6.0 tag 0x0112) to the operation that makes the image
upright, written once for both tools, so the two paths cannot disagree. It is the same mapping
as Pillow's `ImageOps.exif_transpose` (checked by the tests).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from PIL import Image

UPRIGHT = 1


@dataclass(frozen=True)
class Turn:
    """How to make an image stored with one EXIF orientation upright."""

    jpegtran: tuple[str, ...]  # jpegtran transform options
    pillow: Image.Transpose  # the same operation on decoded pixels
    text: str  # for Derivation Description


TURNS: dict[int, Turn] = {
    2: Turn(("-flip", "horizontal"), Image.Transpose.FLIP_LEFT_RIGHT, "mirrored left-right"),
    3: Turn(("-rotate", "180"), Image.Transpose.ROTATE_180, "rotated 180°"),
    4: Turn(("-flip", "vertical"), Image.Transpose.FLIP_TOP_BOTTOM, "mirrored top-bottom"),
    5: Turn(("-transpose",), Image.Transpose.TRANSPOSE, "transposed"),
    6: Turn(("-rotate", "90"), Image.Transpose.ROTATE_270, "rotated 90° clockwise"),
    7: Turn(("-transverse",), Image.Transpose.TRANSVERSE, "transversed"),
    8: Turn(("-rotate", "270"), Image.Transpose.ROTATE_90, "rotated 90° anticlockwise"),
}

JPEGTRAN_TIMEOUT = 120  # seconds; a 50-Mpx photo takes about one


def normalise(value: object) -> int:
    """The orientation to apply: 1..8 as found, anything else (absent, 0, 9, garbage) is 1.

    Out-of-range values are what broken writers leave behind; Pillow ignores them too.
    """
    return value if isinstance(value, int) and value in TURNS else UPRIGHT


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """Decoded pixels turned upright (the image itself when already upright)."""
    turn = TURNS.get(orientation)
    return image if turn is None else image.transpose(turn.pillow)


def jpegtran_upright(stream: bytes, orientation: int) -> bytes | None:
    """The JPEG stream turned upright losslessly, or None when jpegtran cannot do it exactly.

    `-copy none` writes no APPn but the JFIF/Adobe header libjpeg needs; `-perfect` makes
    jpegtran fail rather than drop the partial MCUs at the right or bottom edge. None also when
    jpegtran is not installed or fails for another reason: decoding is the fallback for all.
    """
    turn = TURNS.get(orientation)
    jpegtran = shutil.which("jpegtran")
    if turn is None or jpegtran is None:
        return None
    try:
        done = subprocess.run([jpegtran, "-copy", "none", "-perfect", *turn.jpegtran],
                              input=stream, capture_output=True, timeout=JPEGTRAN_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or not done.stdout:
        return None
    return done.stdout
