"""The quality gate flags blurred, badly exposed and tiny photos, and passes a good one."""

import io

import pytest
from PIL import Image, ImageDraw, ImageFilter

from connector.dicom.quality import Thresholds, assess, assess_dataset
from connector.dicom.wrap import wrap_image
from connector.domain.model import Patient, PersonName


def lesion_photo(size=(800, 600), blur=0.0, background=(224, 180, 150)) -> Image.Image:
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    for x in range(0, size[0], 7):  # skin texture: fine lines like pores and folds
        draw.line((x, 0, x + 40, size[1]), fill=(200, 150, 120), width=1)
    draw.ellipse((size[0] // 3, size[1] // 3, size[0] // 2, size[1] // 2), fill=(92, 58, 40))
    return img.filter(ImageFilter.GaussianBlur(blur)) if blur else img


def test_sharp_well_exposed_photo_has_no_flag():
    report = assess(lesion_photo())
    assert report.flags == ()
    assert report.pixels == 800 * 600


def test_photo_is_flagged_blurred_when_out_of_focus():
    report = assess(lesion_photo(blur=6))
    assert "blurred" in report.flags
    assert report.sharpness < assess(lesion_photo()).sharpness


@pytest.mark.parametrize("background, flag", [((2, 2, 2), "underexposed"),
                                              ((253, 253, 253), "overexposed")])
def test_photo_is_flagged_when_the_histogram_is_clipped(background, flag):
    img = Image.new("RGB", (800, 600), background)
    ImageDraw.Draw(img).rectangle((10, 10, 60, 60), fill=(120, 80, 60))
    assert flag in assess(img).flags


def test_photo_is_flagged_too_small_when_below_the_minimum_pixel_count():
    assert "too_small" in assess(lesion_photo(size=(320, 240))).flags


def test_thresholds_are_parameters_when_a_site_tunes_them():
    lenient = Thresholds(min_sharpness=0.0, max_clipped=1.0, min_pixels=1)
    assert assess(lesion_photo(size=(100, 80), blur=8), lenient).flags == ()


def test_the_upright_image_is_assessed_when_a_photo_arrives_rotated():
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: stored 800x600, shown 600x800
    lesion_photo().save(out, "JPEG", quality=92, exif=exif)
    wrapped = wrap_image(out.getvalue(), patient=Patient("P1", PersonName("DOE")),
                         study_uid="1.2.3", accession="A1", series_uid="1.2.3.4",
                         sop_uid="1.2.3.4.5", instance_number=1,
                         study_datetime="20260101120000", content_datetime="20260101120000")
    report = assess_dataset(wrapped.dataset)
    assert (report.width, report.height) == (600, 800) and "blurred" not in report.flags


def _wrapped(data: bytes, number: int):
    return wrap_image(data, patient=Patient("P1", PersonName("DOE")), study_uid="1.2.3",
                      accession="A1", series_uid="1.2.3.4", sop_uid=f"1.2.3.4.{number}",
                      instance_number=1, study_datetime="20260101120000",
                      content_datetime="20260101120000").dataset


def _jpeg(img: Image.Image, **save) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92, **save)
    return out.getvalue()


def _clipped(background) -> Image.Image:
    img = Image.new("RGB", (1600, 1200), background)
    ImageDraw.Draw(img).rectangle((10, 10, 200, 200), fill=(120, 80, 60))
    return img


def _rotated(size) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(lesion_photo(size), exif=exif)


# The photos of the tests above, at phone sizes too (where the reduced decode applies), sharp
# and blurred around the threshold, clipped, tiny, greyscale and turned by jpegtran.
QUALITY_CORPUS = {
    "sharp": _jpeg(lesion_photo()),
    "sharp 12 Mpx": _jpeg(lesion_photo((4000, 3000))),
    "sharp 3000x2000": _jpeg(lesion_photo((3000, 2000))),
    "slightly soft 12 Mpx": _jpeg(lesion_photo((4000, 3000), blur=1.5)),
    "blurred": _jpeg(lesion_photo(blur=6)),
    "blurred 12 Mpx": _jpeg(lesion_photo((4000, 3000), blur=6)),
    "blurred 2048x1536": _jpeg(lesion_photo((2048, 1536), blur=4)),
    "underexposed": _jpeg(_clipped((2, 2, 2))),
    "overexposed": _jpeg(_clipped((253, 253, 253))),
    "too small": _jpeg(lesion_photo((320, 240))),
    "greyscale": _jpeg(lesion_photo((2400, 1800)).convert("L")),
    "turned by jpegtran": _rotated((1600, 1200)),
    "progressive (decoded path)": _jpeg(lesion_photo((1600, 1200)), progressive=True),
}


def test_flags_are_those_of_the_full_decode_when_the_gate_reads_a_reduced_image():
    """`assess_dataset` drafts a JPEG frame at 1/2 to 1/8; its verdicts must be the ones the
    full decode by pydicom gives (what the gate measured before), on every photo above."""
    seen = set()
    for number, (name, data) in enumerate(QUALITY_CORPUS.items(), start=1):
        ds = _wrapped(data, number)
        full = assess(Image.fromarray(ds.pixel_array))
        fast = assess_dataset(ds)
        assert fast.flags == full.flags, name
        assert (fast.width, fast.height) == (full.width, full.height), name
        assert fast.sharpness == pytest.approx(full.sharpness, rel=0.15), name
        seen.update(fast.flags)
    assert seen == {"blurred", "underexposed", "overexposed", "too_small"}
