"""The `sample` fixture: conformance example messages as wire bytes."""

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[3] / "conformance" / "samples"


@pytest.fixture
def sample():
    """Call with a file name in conformance/samples; segments come back ended by CR."""
    def load(name: str) -> bytes:
        return (SAMPLES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r")
    return load
