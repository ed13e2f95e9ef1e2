"""conformance/dicom-conformance-statement.md names every attribute the connector writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydicom.datadict import dictionary_description
from pydicom.dataset import Dataset

from connector.dicom.dermoscopy import Device, DermoscopyParams, to_dermoscopy
from connector.dicom.pdf import encapsulate_pdf
from connector.dicom.sites import load_sites, lookup
from connector.dicom.uids import uid_from
from connector.dicom.wrap import wrap_photo
from connector.domain.model import PersonName

STATEMENT = Path(__file__).resolve().parents[3] / "conformance" / "dicom-conformance-statement.md"


def _section(number: str) -> str:
    """The text of one '### <number> ...' section of the statement."""
    text = STATEMENT.read_text(encoding="utf-8")
    start = text.index(f"### {number} ")
    end = text.find("\n### ", start + 1)
    return text[start:end if end != -1 else None]


def _missing(ds: Dataset, text: str, skip: Dataset | None = None) -> list[str]:
    """Top-level public attributes of `ds` (not already in `skip`) the text does not name."""
    names = []
    for elem in ds:
        if elem.tag.is_private or (skip is not None and elem.tag in skip):
            continue
        name = dictionary_description(elem.tag)
        if name not in text:
            names.append(f"{name} {elem.tag}")
    return names


@pytest.fixture
def photo(patient, plain_jpeg):
    digest = hashlib.sha256(plain_jpeg).hexdigest()
    return wrap_photo(plain_jpeg, patient=patient, study_uid=uid_from("study", "A1"),
                      accession="A1", series_uid=uid_from("series", "A1", "photo"),
                      sop_uid=uid_from("image", "A1", digest), instance_number=1,
                      study_datetime="20240315093000", content_datetime="20240315094512",
                      referring=PersonName("MARTIN", "Jean"), site=lookup(load_sites(), "43067004"),
                      laterality="R", description="lésion", source_sha256=digest,
                      institution="CHU Test")


def test_statement_names_every_vl_photographic_attribute_when_all_options_are_used(photo):
    assert _missing(photo, _section("2.3")) == [], "update section 2.3 of the statement"


def test_statement_names_every_dermoscopy_attribute_when_contact_and_tracked(photo):
    device = Device("DermLite", "DL5", "SN-1", ["1.0"])
    params = DermoscopyParams("POLARIZED", "CONTACT", 10, immersion_media=["WATER"],
                              emitter_color_temperature=4500, tracking_id="L1")
    dms = to_dermoscopy(photo, device, params)
    assert _missing(dms, _section("2.4"), skip=photo) == [], "update section 2.4"


def test_statement_names_every_pdf_attribute_when_sources_are_given(patient):
    ds = encapsulate_pdf(b"%PDF-1.4\n%%EOF\n", patient=patient, study_uid=uid_from("s"),
                         accession="A1", series_uid=uid_from("se"), sop_uid=uid_from("r"),
                         instance_number=1, title="Avis", content_datetime="20240315094512",
                         source_images=[("1.2.840.10008.5.1.4.1.1.77.1.4", uid_from("i"))])
    text = _section("2.5") + _section("2.3")  # Patient/Study rows are shared with 2.3
    assert _missing(ds, text) == [], "update section 2.5"


def test_statement_lists_the_sop_classes_written_when_read():
    text = _section("2.1")
    for uid in ("1.2.840.10008.5.1.4.1.1.77.1.4", "1.2.840.10008.5.1.4.1.1.77.1.7",
                "1.2.840.10008.5.1.4.1.1.104.1"):
        assert uid in text
