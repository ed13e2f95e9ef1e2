"""What a dermatologist sees: our objects drawn by Orthanc and by its web viewer, in Chromium.

Each image is made here with a known upright view: four coloured quadrants (no two alike, so
any turn or mirror moves every colour) and a dark "lesion" in one corner. A phone photo is
saved as the phone does it, with the sensor's pixels and EXIF Orientation 6 (turn 90° clockwise
to view); a dermoscopy image with Orientation 8 (turn 90° counter-clockwise); a PNG upright.
Each goes through `telederm wrap` (the connector's wrapping, which applies the orientation) into
the managed Orthanc (which loads Debian's orthanc-webviewer), and is then drawn in headless
Chromium (Debian's `chromium`, driven by Playwright) twice:

- `/instances/{id}/rendered`: Orthanc's own rendering, shown at its natural size in Chromium's
  image document; the `<img>` element is screenshot;
- the web viewer page (`/web-viewer/app/viewer.html?series=ID`): cornerstone draws the image,
  fitted and centred, on a black `<canvas>`. Its screenshot is written as an artifact but not
  compared: the viewer lays HTML text over the canvas (patient name top right, zoom, window
  and "Not for diagnostic purpose" at the bottom), which covers parts of the image. So the
  comparison reads the canvas's own pixels (`toDataURL`), crops the black margins away and
  scales to the original's size.

Both are compared with the upright original on a coarse grid (each cell the mean of 8x8
pixels, which absorbs JPEG ringing and the viewer's interpolation at edges): every cell within
COLOUR_TOLERANCE per channel, and the mean difference within MEAN_TOLERANCE. A turned, mirrored
or colour-swapped image fails by more than 100 in most cells.

Screenshots go to tests/artifacts/viewer/ (git-ignored), printed at the end of each test.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageOps, ImageStat

from connector.entrypoints.cli import main as telederm

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "viewer"
CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download is never used
CELL = 8  # pixels averaged into one comparison cell
COLOUR_TOLERANCE = 40  # per channel (0-255), in any cell
MEAN_TOLERANCE = 8  # per channel, averaged over the cells
VIEWER_TIMEOUT_MS = 30_000
UPRIGHT_SIZE = (160, 128)  # multiples of 16: the lossless JPEG turn keeps every MCU

ORIENTATION = 0x0112


@dataclass(frozen=True)
class Sample:
    name: str
    upright: Image.Image
    file: Path
    kind: str


def upright_pattern(colours: tuple, lesion_corner: int, size=UPRIGHT_SIZE) -> Image.Image:
    """Quadrants top-left, top-right, bottom-left, bottom-right in `colours`, a dark disc in
    quadrant `lesion_corner`."""
    width, height = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    boxes = [(0, 0, width // 2 - 1, height // 2 - 1), (width // 2, 0, width - 1, height // 2 - 1),
             (0, height // 2, width // 2 - 1, height - 1),
             (width // 2, height // 2, width - 1, height - 1)]
    for box, colour in zip(boxes, colours):
        draw.rectangle(box, fill=colour)
    x0, y0, x1, y1 = boxes[lesion_corner]
    r = min(x1 - x0, y1 - y0) // 4
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(90, 50, 30))
    return img


def as_sensor_jpeg(upright: Image.Image, orientation: int, path: Path) -> Path:
    """Save `upright` as a camera does: pixels as the sensor read them, plus the EXIF
    Orientation that turns them upright (6: view turned 90° clockwise, 8: counter-clockwise)."""
    sensor = upright.transpose({6: Image.Transpose.ROTATE_90,
                                8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    sensor.save(path, "JPEG", quality=95, exif=exif.tobytes())
    # The file is what a phone writes: a reader that honours EXIF sees the upright view.
    with Image.open(path) as check:
        assert check.size != upright.size
        assert _differences(ImageOps.exif_transpose(check).convert("RGB"), upright)[0] \
            <= COLOUR_TOLERANCE
    return path


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[Sample]:
    work = tmp_path_factory.mktemp("viewer-samples")
    photo = upright_pattern(((230, 60, 50), (60, 200, 70), (50, 80, 220), (240, 220, 60)), 0)
    dermoscopy = upright_pattern(((210, 150, 120), (170, 90, 160), (90, 190, 200),
                                  (230, 130, 40)), 3)
    plain = upright_pattern(((40, 160, 230), (250, 250, 250), (200, 60, 160), (120, 220, 120)), 1)
    plain.save(work / "plain.png")
    return [
        Sample("phone-photo-exif6", photo, as_sensor_jpeg(photo, 6, work / "photo.jpg"), "photo"),
        Sample("dermoscopy-exif8", dermoscopy,
               as_sensor_jpeg(dermoscopy, 8, work / "dermoscopy.jpg"), "dermoscopy"),
        Sample("png", plain, work / "plain.png", "photo"),
    ]


@pytest.fixture(scope="module")
def stored(samples, orthanc, tmp_path_factory) -> dict[str, dict]:
    """Each sample wrapped by `telederm wrap` (its own study) and stored in Orthanc: name ->
    Orthanc's answer (ID, ParentSeries)."""
    out = tmp_path_factory.mktemp("viewer-dicom")
    answers = {}
    for number, sample in enumerate(samples):
        assert telederm(["wrap", str(sample.file), "--out", str(out / sample.name),
                         "--kind", sample.kind, "--patient-id", "P-VIEW",
                         "--accession", f"ACC-VIEW-{number}"]) == 0
        (part10,) = (out / sample.name).glob("*.dcm")
        r = httpx.post(orthanc.url + "/instances", content=part10.read_bytes(),
                       auth=(orthanc.username, orthanc.password), timeout=30)
        assert r.status_code == 200, r.text
        answers[sample.name] = r.json()
    return answers


@pytest.fixture(scope="module")
def browser(orthanc):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = chromium.new_context(
            http_credentials={"username": orthanc.username, "password": orthanc.password},
            viewport={"width": 800, "height": 600})
        yield context
        chromium.close()


def _differences(got: Image.Image, want: Image.Image) -> tuple[int, float]:
    """(largest, mean) per-channel difference between the two on the CELL grid."""
    grid = (want.width // CELL, want.height // CELL)
    a = got.convert("RGB").resize(grid, Image.Resampling.BOX)
    b = want.convert("RGB").resize(grid, Image.Resampling.BOX)
    diff = ImageChops.difference(a, b)
    largest = max(high for _, high in diff.getextrema())
    mean = sum(ImageStat.Stat(diff).mean) / 3
    return largest, mean


def _assert_upright(got: Image.Image, sample: Sample, where: str) -> None:
    # Landscape stays landscape: a turned image would have the other aspect ratio.
    assert (got.width > got.height) == (sample.upright.width > sample.upright.height), \
        f"{where}: {got.size} is not the upright {sample.upright.size}"
    largest, mean = _differences(got.resize(sample.upright.size, Image.Resampling.BILINEAR),
                                 sample.upright)
    assert largest <= COLOUR_TOLERANCE and mean <= MEAN_TOLERANCE, \
        f"{where}: colours differ from the upright original (largest {largest}, mean {mean:.1f})"


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.mark.parametrize("name", ["phone-photo-exif6", "dermoscopy-exif8", "png"])
def test_rendered_instance_is_upright_when_drawn_in_chromium(name, samples, stored, orthanc,
                                                             browser):
    sample = next(s for s in samples if s.name == name)
    page = browser.new_page()
    page.goto(f"{orthanc.url}/instances/{stored[name]['ID']}/rendered")
    shot = page.locator("img").screenshot()
    page.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}-rendered.png"
    target.write_bytes(shot)
    print(f"screenshot: {target}")
    got = _png(shot)
    assert got.size == sample.upright.size  # Orthanc renders at the object's own size
    _assert_upright(got, sample, "/rendered")


@pytest.mark.parametrize("name", ["phone-photo-exif6", "dermoscopy-exif8", "png"])
def test_web_viewer_draws_the_image_upright(name, samples, stored, orthanc, browser):
    sample = next(s for s in samples if s.name == name)
    page = browser.new_page()
    page.goto(f"{orthanc.url}/web-viewer/app/viewer.html?series={stored[name]['ParentSeries']}")
    # The viewer writes the zoom once cornerstone has drawn the image.
    page.wait_for_function("document.querySelector('#bottomright') && "
                           "/Zoom/.test(document.querySelector('#bottomright').textContent)",
                           timeout=VIEWER_TIMEOUT_MS)
    canvas = page.locator("#dicomImage canvas")
    data_url = canvas.evaluate("c => c.toDataURL('image/png')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}-web-viewer.png"
    page.screenshot(path=str(target))
    page.close()
    print(f"screenshot: {target}")
    drawn = _png(base64.b64decode(data_url.split(",", 1)[1]))
    (ARTIFACTS / f"{name}-web-viewer-canvas.png").write_bytes(
        base64.b64decode(data_url.split(",", 1)[1]))
    # The image is what is not the black background (no sample has near-black pixels).
    box = drawn.convert("L").point(lambda v: 255 if v > 24 else 0).getbbox()
    assert box is not None, "the web viewer drew nothing"
    _assert_upright(drawn.crop(box), sample, "web viewer")


@pytest.mark.parametrize("turn", [Image.Transpose.ROTATE_180, Image.Transpose.FLIP_LEFT_RIGHT,
                                  Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.TRANSPOSE],
                         ids=["turned-180", "mirrored", "flipped", "transposed"])
def test_comparison_refuses_each_sample_when_turned_or_mirrored(samples, turn):
    for sample in samples:
        with pytest.raises(AssertionError):
            _assert_upright(sample.upright.transpose(turn), sample, "check")
