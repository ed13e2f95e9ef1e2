"""connector.dicom.uids: deterministic 2.25 UIDs."""

from __future__ import annotations

import re
import uuid

import pytest
from pydicom.uid import UID

from connector.dicom.uids import (image_uid, report_series_uid, report_uid, series_uid, study_uid,
                                  uid_from, wrap_study_uid)

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


# Cases, images and reports already stored carry UIDs these recipes made: a re-sent photo or
# report must find its earlier copy, so the values are pinned, not recomputed.
_STUDY = "2.25.215554954759824199324525408376922992456"


def test_study_uid_is_the_one_stored_cases_carry_when_the_order_repeats():
    assert study_uid("DPI_CHU|CHU_NIMES", "CMD-2026-0042") == _STUDY


def test_wrap_study_uid_is_the_one_earlier_wraps_carry_when_the_key_repeats():
    assert wrap_study_uid("ACC-1") == "2.25.129960881845783150809867093008230179462"


def test_series_uids_are_the_ones_stored_objects_carry_when_the_study_repeats():
    assert series_uid(_STUDY, "photo") == "2.25.92484075467463042695004937266551759083"
    assert series_uid(_STUDY, "photo", "66643007", "L") == \
        "2.25.328929812382829673232335047083246216242"
    assert report_series_uid(_STUDY) == "2.25.198709408796016026467894319981991866252"


def test_series_uid_differs_when_the_site_laterality_description_or_kind_differ():
    uids = {series_uid(_STUDY, "photo"), series_uid(_STUDY, "photo", "66643007", "L"),
            series_uid(_STUDY, "photo", "66643007", "R"),
            series_uid(_STUDY, "photo", "66643007", "L", "Dos"),
            series_uid(_STUDY, "dermoscopy", "66643007", "L"),
            series_uid(_STUDY, "photo", "", "", "Dos")}
    assert len(uids) == 6


def test_image_uid_is_the_one_stored_images_carry_when_the_file_repeats():
    assert image_uid(_STUDY, "photo", "ab" * 32) == "2.25.196143554339945890350703495878706436627"


def test_report_uid_is_the_one_stored_reports_carry_when_the_version_repeats():
    assert report_uid(_STUDY, 2) == "2.25.102826768374514908986988013490548917452"
