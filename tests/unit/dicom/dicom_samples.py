"""Fixtures for the DICOM unit tests: JPEGs made with Pillow, a patient, and dciodvfy.

Not a conftest.py on purpose: a second `conftest` module would shadow the root one for
`from conftest import free_port` in tests collected after this folder. Test modules import
the fixtures they use from here by name.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from connector.domain.model import Patient, PersonName

DCIODVFY = shutil.which("dciodvfy") or "/usr/bin/dciodvfy"

# Strings planted in the test JPEG's metadata; none may reach a DICOM file.
SECRETS = (b"AcmeCam", b"Derm 3000", b"SN-9876543", b"patient DUPONT in room 12")


def _gradient(mode: str, size=(64, 48)) -> Image.Image:
    """An image whose pixels all differ a little, so that pixel comparisons mean something."""
    width, height = size
    img = Image.new("RGB", size)
    img.putdata([((x * 4) % 256, (y * 5) % 256, (x * y) % 256)
                 for y in range(height) for x in range(width)])
    return img.convert(mode)


def _save(img: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "AcmeCam"
    exif[ExifTags.Base.Model] = "Derm 3000"
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.BodySerialNumber] = "SN-9876543"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 24.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 21.0, 3.0)
    return exif


@pytest.fixture
def secrets() -> tuple[bytes, ...]:
    """The metadata strings planted in `exif_jpeg`."""
    return SECRETS


@pytest.fixture
def plain_jpeg() -> bytes:
    """Baseline YCbCr JPEG, JFIF only."""
    return _save(_gradient("RGB"))


@pytest.fixture
def exif_jpeg() -> bytes:
    """Baseline JPEG carrying EXIF (Make, Model, serial, GPS), a COM segment and an ICC profile."""
    return _save(_gradient("RGB"), exif=_exif(), comment=SECRETS[3], icc_profile=b"test-icc" * 4)


@pytest.fixture
def comment_jpeg() -> bytes:
    return _save(_gradient("RGB"), comment=SECRETS[3])


@pytest.fixture
def gray_jpeg() -> bytes:
    return _save(_gradient("L"))


@pytest.fixture
def progressive_jpeg() -> bytes:
    return _save(_gradient("RGB"), progressive=True)


@pytest.fixture
def cmyk_jpeg() -> bytes:
    """Pillow writes CMYK JPEGs with an Adobe APP14 segment (transform 0)."""
    return _save(_gradient("CMYK"))


@pytest.fixture
def patient() -> Patient:
    return Patient(id="IPP-000123", name=PersonName("DUPONT", "Hélène"), issuer="CHU-TEST",
                   birth_date="19800102", sex="F")


def _decode(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.mode, img.size, img.tobytes()


@pytest.fixture
def decode():
    """Mode, size and raw pixels of a JPEG as Pillow decodes it."""
    return _decode


@pytest.fixture
def dciodvfy():
    """Run dicom3tools' dciodvfy on a file and return its report lines (it writes to stderr)."""
    if not Path(DCIODVFY).exists():
        pytest.fail("dciodvfy (Debian dicom3tools) is not installed: run make test, which installs it")

    def run(path: Path) -> list[str]:
        done = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True,
                              timeout=60)
        return (done.stdout + done.stderr).splitlines()

    return run
