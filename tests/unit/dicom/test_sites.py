"""connector.dicom.sites: the pinned CID 4029 table and the laterality modifiers."""

from __future__ import annotations

import pytest

from connector.dicom.sites import (
    DEFAULT_PATH,
    LATERALITY_MODIFIERS,
    laterality_modifier,
    load_sites,
    lookup,
)
from connector.domain.errors import ConfigError, ImageError
from connector.domain.model import BodySite

# reference/dicom.md section 4.2, meanings verbatim.
REFERENCE_CODES = {
    ("SCT", "39937001"): "Skin",
    ("SCT", "43067004"): "Skin of scalp",
    ("SCT", "73897004"): "Skin of face",
    ("SCT", "68698007"): "Skin of forehead",
    ("SCT", "36141000"): "Skin of cheek",
    ("SCT", "113179006"): "Skin of nose",
    ("SCT", "1902009"): "Skin of ear",
    ("SCT", "43081002"): "Skin of neck",
    ("SCT", "66643007"): "Skin of back",
    ("SCT", "113182001"): "Skin of lower back",
    ("SCT", "181491009"): "Skin of anterior trunk",
    ("SCT", "75093004"): "Skin of abdomen",
    ("SCT", "76261009"): "Skin of axilla",
    ("SCT", "22180002"): "Skin of buttock",
    ("SCT", "371311000"): "Skin of upper extremity",
    ("SCT", "371304004"): "Skin of lower extremity",
    ("SCT", "33712006"): "Skin of hand",
    ("SCT", "70887009"): "Skin of palm of hand",
    ("SCT", "60496002"): "Skin of foot",
    ("SCT", "84607009"): "Skin of heel",
    ("SCT", "770809003"): "Nail unit of finger",
    ("SCT", "770805009"): "Nail unit of toe",
    ("SCT", "113277000"): "Oral mucosa",
    ("DCM", "130323"): "Skin of mid back",
}

HEADER = "scheme,code,meaning_en,label_fr\n"


def _write(tmp_path, text: str):
    path = tmp_path / "sites.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_sites_contains_reference_codes_when_shipped_file_is_read():
    sites = load_sites(DEFAULT_PATH)
    for (scheme, code), meaning in REFERENCE_CODES.items():
        entry = sites[code]
        assert (entry.scheme, entry.meaning_en) == (scheme, meaning)
        assert entry.label_fr.strip()


def test_load_sites_reads_french_labels_when_accents_present():
    assert load_sites()["43067004"].label_fr == "Peau du cuir chevelu"
    assert load_sites()["40069000"].label_fr == "Peau de la paupière inférieure"


def test_lookup_returns_body_site_when_code_known():
    site = lookup(load_sites(), "43067004")
    assert site == BodySite(scheme="SCT", code="43067004", meaning="Skin of scalp")


def test_lookup_raises_image_error_naming_the_file_but_not_its_folder_when_code_unknown(tmp_path):
    path = _write(tmp_path, HEADER + "SCT,43067004,Skin of scalp,Peau du cuir chevelu\n")
    with pytest.raises(ImageError) as caught:
        lookup(load_sites(path), "999999")
    assert caught.value.where == "site"
    assert "unknown body site" in caught.value.text
    assert path.name in caught.value.hint and str(path.parent) not in caught.value.hint


@pytest.mark.parametrize(
    "row, message",
    [
        ("SCT,43067004,Skin of scalp\n", "expected 4 fields"),
        ("XYZ,43067004,Skin of scalp,Peau\n", "unknown coding scheme"),
        ("SCT,T-01000,Skin of scalp,Peau\n", "not a numeric code"),
        ("SCT,43067004,,Peau\n", "English meaning"),
        ("SCT,43067004,Skin of scalp,\n", "French label"),
        ("SCT,39937001,Skin,Peau\n", "listed twice"),
    ],
)
def test_load_sites_raises_config_error_naming_the_line_when_row_is_bad(tmp_path, row, message):
    path = _write(tmp_path, HEADER + "SCT,39937001,Skin,Peau\n" + row)
    with pytest.raises(ConfigError) as caught:
        load_sites(path)
    assert caught.value.where == f"{path}:3"
    assert message in caught.value.text
    assert caught.value.hint


def test_load_sites_counts_blank_lines_when_naming_the_line(tmp_path):
    path = _write(tmp_path, HEADER + "\nSCT,39937001,Skin,Peau\n\nSCT,oops,Skin,Peau\n")
    with pytest.raises(ConfigError) as caught:
        load_sites(path)
    assert caught.value.where == f"{path}:5"


def test_load_sites_raises_config_error_when_header_is_wrong(tmp_path):
    path = _write(tmp_path, "code,scheme,meaning,label\nSCT,39937001,Skin,Peau\n")
    with pytest.raises(ConfigError) as caught:
        load_sites(path)
    assert caught.value.where == f"{path}:1"


def test_load_sites_raises_config_error_when_file_has_no_rows(tmp_path):
    with pytest.raises(ConfigError, match="no rows"):
        load_sites(_write(tmp_path, HEADER))


def test_load_sites_raises_config_error_when_file_is_missing(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_sites(tmp_path / "absent.csv")
    assert caught.value.where == str(tmp_path / "absent.csv")


def test_laterality_table_holds_cid_244_codes_when_read():
    assert {k: (c.scheme, c.code, c.meaning) for k, c in LATERALITY_MODIFIERS.items()} == {
        "R": ("SCT", "24028007", "Right"),
        "L": ("SCT", "7771000", "Left"),
        "B": ("SCT", "51440002", "Bilateral"),
        "U": ("SCT", "66459002", "Unilateral"),
    }


@pytest.mark.parametrize("laterality, code", [("R", "24028007"), ("L", "7771000"),
                                              ("B", "51440002"), ("U", None), ("", None)])
def test_laterality_modifier_claims_a_side_only_when_side_is_known(laterality, code):
    modifier = laterality_modifier(laterality)
    assert (modifier.code if modifier else None) == code


def test_load_sites_names_the_row_line_and_column_of_every_bad_row(tmp_path):
    path = _write(tmp_path, HEADER + "SCT,39937001,Skin,Peau\n"
                  + "XYZ,43067004,Skin of scalp,Peau\n\nSCT,oops,Skin,Peau\n")
    with pytest.raises(ConfigError) as caught:
        load_sites(path)
    scheme, code = caught.value.problems
    assert scheme.where == f"{path}:3" and scheme.text.startswith("scheme: unknown coding scheme")
    assert code.where == f"{path}:5" and code.text.startswith("code: code 'oops'")
