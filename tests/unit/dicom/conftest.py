"""Fixtures for the DICOM unit tests: JPEGs made with Pillow, a patient, and dciodvfy."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from connector.domain.model import Patient, PersonName
from tests.support.dicom_samples import SECRETS, planted_exif

DCIODVFY = shutil.which("dciodvfy") or "/usr/bin/dciodvfy"


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
    return _save(_gradient("RGB"), exif=planted_exif(), comment=SECRETS[3], icc_profile=b"test-icc" * 4)


@pytest.fixture
def exif_upright_jpeg() -> bytes:
    """As `exif_jpeg`, but EXIF orientation 1: the stream can pass through unturned."""
    return _save(_gradient("RGB"), exif=planted_exif(1), comment=SECRETS[3],
                 icc_profile=b"test-icc" * 4)


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
                              errors="replace", timeout=60)  # values echoed in ISO_IR 100
        return (done.stdout + done.stderr).splitlines()

    return run
