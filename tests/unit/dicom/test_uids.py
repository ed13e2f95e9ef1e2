"""connector.dicom.uids: deterministic 2.25 UIDs."""

from __future__ import annotations

import re
import uuid

import pytest
from pydicom.uid import UID

from connector.dicom.uids import uid_from

_FORM = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")


def test_uid_from_returns_same_uid_when_inputs_repeat():
    assert uid_from("ACC-1", "sha256:abc") == uid_from("ACC-1", "sha256:abc")


def test_uid_from_returns_different_uids_when_inputs_differ():
    assert uid_from("ACC-1", "photo", "1") != uid_from("ACC-1", "photo", "2")
    assert uid_from("study", "ACC-1") != uid_from("series", "ACC-1")


def test_uid_from_keeps_parts_apart_when_concatenations_match():
    assert uid_from("ab", "c") != uid_from("a", "bc")
    assert uid_from("abc") != uid_from("ab", "c")


@pytest.mark.parametrize("parts", [("x",), ("ACC-1", "é" * 500), tuple(str(i) for i in range(50))])
def test_uid_from_is_a_valid_uid_of_at_most_64_chars_when_inputs_vary(parts):
    uid = uid_from(*parts)
    assert _FORM.match(uid)
    assert len(uid) <= 64
    assert UID(uid).is_valid


def test_uid_from_encodes_a_version_8_uuid_when_decoded():
    value = uuid.UUID(int=int(uid_from("ACC-1").removeprefix("2.25.")))
    assert value.version == 8
    assert value.variant == uuid.RFC_4122


def test_uid_from_raises_when_no_parts():
    with pytest.raises(ValueError):
        uid_from()


def test_uid_from_raises_when_a_part_is_not_text():
    with pytest.raises(TypeError):
        uid_from("ACC-1", 3)  # type: ignore[arg-type]
