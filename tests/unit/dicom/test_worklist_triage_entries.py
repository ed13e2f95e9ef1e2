"""Worklist entries carry the case's triage level as Requested Procedure Priority, the patient's
other identifiers and the narrowest character set; published entries read back most urgent
first."""

from __future__ import annotations

import pytest

from connector.dicom.worklist import (WorklistEntry, WorklistFolder, entry_dataset,
                                        sort_key)
from connector.domain.errors import DomainError
from connector.domain.model import Patient, PersonName, Practitioner, Priority

NIR = "279035121518989"
INS_OID = "1.2.250.1.213.1.4.8"


def entry(accession="TD1", *, level="", priority=Priority.ROUTINE, start="20261115093000",
          family="DUPONT", patient=None):
    return WorklistEntry(
        accession=accession, study_uid="1.2.3.4", placer_order_number="P-1",
        patient=patient or Patient("IPP1", PersonName(family, "Hélène"), "CHU"),
        requester=Practitioner("801234567897", PersonName("MARTIN", "Jean")),
        priority=priority, modality="XC", station_ae="TELEDERM_XC", start=start,
        procedure_description="Télé-expertise dermatologique",
        step_description="Photographies cliniques", triage_level=level)


@pytest.mark.parametrize("level,priority,expected", [
    ("MEDIUM", Priority.ROUTINE, "MEDIUM"),
    ("HIGH", Priority.ROUTINE, "HIGH"),
    ("", Priority.URGENT, "HIGH"),       # never triaged: from the order priority
    ("", Priority.STAT, "STAT"),
    ("", Priority.ROUTINE, "ROUTINE"),
])
def test_requested_procedure_priority_is_the_triage_level(level, priority, expected):
    ds = entry(level=level, priority=priority)
    assert entry_dataset(ds).RequestedProcedurePriority == expected


def test_unknown_triage_level_is_refused():
    with pytest.raises(DomainError):
        entry(level="URGENT")


def test_entry_charset_is_latin1_unless_a_name_needs_more():
    assert entry_dataset(entry()).SpecificCharacterSet == "ISO_IR 100"
    assert entry_dataset(entry(family="CŒUR")).SpecificCharacterSet == "ISO_IR 192"


def test_qualified_ins_entry_has_issuer_qualifiers_and_the_ipp_alongside():
    patient = Patient(NIR, PersonName("DUPONT"), INS_OID, ins=NIR, ins_oid=INS_OID,
                      identity_status="QUAL", other_ids=(("IPP1", "CHU"),))
    ds = entry_dataset(entry(patient=patient))
    assert (ds.PatientID, ds.IssuerOfPatientID) == (NIR, INS_OID)
    assert ds.IssuerOfPatientIDQualifiersSequence[0].UniversalEntityID == INS_OID
    (other,) = ds.OtherPatientIDsSequence
    assert (other.PatientID, other.IssuerOfPatientID, other.TypeOfPatientID) == (
        "IPP1", "CHU", "TEXT")


def test_sort_key_puts_the_most_urgent_then_the_oldest_first():
    keys = [("ROUTINE", "20261115080000", "TD1"), ("STAT", "20261115090000", "TD2"),
            ("MEDIUM", "20261115070000", "TD3"), ("HIGH", "20261115100000", "TD4"),
            ("MEDIUM", "20261115060000", "TD5"), ("", "20261115000000", "TD6"),
            ("LOW", "20261115000000", "TD7")]
    ordered = sorted(keys, key=lambda k: sort_key(*k))
    assert [k[2] for k in ordered] == ["TD2", "TD4", "TD5", "TD3", "TD1", "TD7", "TD6"]


def test_folder_entries_come_back_most_urgent_first(tmp_path):
    folder = WorklistFolder(tmp_path / "wl")
    folder.write(entry("TD1", start="20261115080000"))
    folder.write(entry("TD2", level="HIGH", start="20261115090000"))
    folder.write(entry("TD3", priority=Priority.STAT, start="20261115100000"))
    folder.write(entry("TD4", level="MEDIUM", start="20261115070000"))
    (tmp_path / "wl" / "TD9-XC.wl").write_bytes(b"not dicom")
    assert [ds.AccessionNumber for ds in folder.entries()] == ["TD3", "TD2", "TD4", "TD1"]
