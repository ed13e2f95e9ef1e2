"""The `sample` fixture: conformance example messages as wire bytes."""

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[3] / "conformance" / "samples"


@pytest.fixture
def sample():
    """Call with a file name in conformance/samples; its bytes as stored, which are the bytes a
    sender puts on the wire (segments ended by CR, no MLLP framing)."""
    def load(name: str) -> bytes:
        return (SAMPLES / name).read_bytes()
    return load
