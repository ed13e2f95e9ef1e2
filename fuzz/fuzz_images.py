"""atheris entry points for uploaded image bytes (issue 5, item 5).

    .venv/bin/python fuzz/fuzz_images.py sniff -atheris_runs=100000
    .venv/bin/python fuzz/fuzz_images.py read  -atheris_runs=100000

- `sniff`: `connector.dicom.images.sniff`. Answer: jpeg, png, tiff or heif, or an ImageError.
- `read`: `read_image` with small limits (1 MiB, 1 Mpx) so a bomb is refused, not decoded.
  Answer: an `ImageFrame` whose size matches its header facts, or an `ImageError`.

Anything else raised is a crash. Seeds: small JPEG (baseline, grey, progressive, CMYK, EXIF
orientation 6 and 3), PNG (RGB, RGBA, palette, 16-bit), TIFF (raw, LZW, JPEG-compressed),
HEIC, made with Pillow at start, plus the broken files of the bad-upload corpus
(tests/support/upload_corpus.py) under 64 KiB.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from functools import cache
from pathlib import Path

from connector.dicom.images import read_image, sniff
from connector.domain.errors import ImageError

REPO = Path(__file__).resolve().parents[1]
LIMITS = {"max_bytes": 1 << 20, "max_pixels": 1 << 20}
MAX_SEED = 64 * 1024


def test_sniff(data: bytes) -> None:
    try:
        kind = sniff(data)
    except ImageError:
        return
    if kind not in ("jpeg", "png", "tiff", "heif"):
        raise AssertionError(f"sniff answered {kind!r}")


def test_read(data: bytes) -> None:
    try:
        frame = read_image(data, **LIMITS)
    except ImageError:
        return
    if frame.rows * frame.columns > LIMITS["max_pixels"] or min(frame.rows, frame.columns) < 1:
        raise AssertionError(f"a {frame.columns} x {frame.rows} frame passed the limits")
    if frame.samples not in (1, 3) or not frame.data:
        raise AssertionError(f"frame with {frame.samples} samples, {len(frame.data)} bytes")


TARGETS = {"sniff": test_sniff, "read": test_read}


@cache
def _made() -> tuple[bytes, ...]:
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()

    def image(size, mode="RGB") -> Image.Image:
        width, height = size
        img = Image.new("RGB", size)
        img.putdata([((x * 37) % 256, (y * 53) % 256, (x * y * 7) % 256)
                     for y in range(height) for x in range(width)])
        return img.convert(mode)

    def save(img, fmt: str, **options) -> bytes:
        out = io.BytesIO()
        img.save(out, fmt, **options)
        return out.getvalue()

    def exif(orientation: int) -> bytes:
        tags = Image.Exif()
        tags[0x0112], tags[0x010F], tags[0x0110] = orientation, "AcmeCam", "Derm 3000"
        return tags.tobytes()

    return (
        save(image((16, 8)), "JPEG", quality=80),
        save(image((9, 7), "L"), "JPEG", quality=70),
        save(image((16, 16)), "JPEG", quality=80, progressive=True),
        save(image((8, 8), "CMYK"), "JPEG"),
        save(image((16, 16)), "JPEG", exif=exif(6), comment=b"secret"),
        save(image((17, 9)), "JPEG", exif=exif(3)),
        save(image((8, 6)), "PNG"),
        save(image((8, 6), "RGBA"), "PNG"),
        save(image((8, 6), "P"), "PNG"),
        save(image((8, 6), "I;16"), "PNG"),
        save(image((8, 6)), "TIFF"),
        save(image((8, 6), "L"), "TIFF", compression="tiff_lzw"),
        save(image((16, 16)), "TIFF", compression="jpeg"),
        save(image((8, 6)), "HEIF", quality=60),
    )


@cache
def _upload_corpus_files() -> tuple[bytes, ...]:
    path = REPO / "tests" / "support" / "upload_corpus.py"
    spec = importlib.util.spec_from_file_location("_fuzz_upload_corpus", path)
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)  # in sys.modules first: its dataclasses look it up
    files = [data for case in module.CASES for _, _, data, _ in case.files]
    return tuple(dict.fromkeys(f for f in files if len(f) <= MAX_SEED))


def seeds(target: str) -> list[bytes]:
    if target not in TARGETS:
        raise KeyError(target)
    return [*_made(), *_upload_corpus_files()]


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")  # Pillow warns on each corrupt EXIF block: noise here
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fuzzing import main

    main(TARGETS, seeds, instrumented=("connector", "PIL", "pillow_heif"))
