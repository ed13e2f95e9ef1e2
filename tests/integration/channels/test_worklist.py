"""Modality worklist: each open case is an XC and a DMS entry that DCMTK `findscu -W` finds
through the managed Orthanc's ModalityWorklists plugin; entries leave when the case is answered."""

from __future__ import annotations

from connector.workflow import publish_worklist
from tests.support.channels import DEADLINE, WORKLIST_KEYS, demo_jpeg, findscu_worklist
from tests.support.wait import wait_until


def entries_for(channels, tmp_path, accession: str, modality: str):
    answers = findscu_worklist(channels.orthanc_dicom_port, tmp_path / modality,
                               f"ScheduledProcedureStepSequence[0].Modality={modality}",
                               *WORKLIST_KEYS)
    return [a for a in answers if a.AccessionNumber == accession]


def test_open_case_is_found_by_findscu_when_querying_modality_xc(channels, tmp_path):
    case = channels.open_case()
    accession = case["accession"]
    (entry,) = wait_until(lambda: entries_for(channels, tmp_path, accession, "XC"), DEADLINE,
                          "the XC worklist entry")
    assert entry.StudyInstanceUID == case["study_instance_uid"]
    assert (entry.PatientID, str(entry.PatientName)) == ("IPP123456", "DUPONT^Hélène")
    assert entry.IssuerOfPatientID == case["patient"]["issuer"]
    assert (entry.PatientBirthDate, entry.PatientSex) == ("19580312", "F")
    assert entry.RequestedProcedureID == accession
    assert entry.RequestedProcedureDescription
    assert entry.RequestedProcedurePriority == "ROUTINE"
    assert str(entry.ReferringPhysicianName) == str(entry.RequestingPhysician) == "MARTIN^Jean"
    (step,) = entry.ScheduledProcedureStepSequence
    assert step.Modality == "XC"
    assert step.ScheduledStationAETitle == "TELEDERM_XC"
    assert step.ScheduledProcedureStepID == f"{accession}-XC"
    assert len(step.ScheduledProcedureStepStartDate) == 8
    assert step.ScheduledProcedureStepStartTime
    assert step.ScheduledProcedureStepDescription


def test_open_case_has_a_dms_entry_too_when_querying_modality_dms(channels, tmp_path):
    accession = channels.open_case()["accession"]
    (entry,) = wait_until(lambda: entries_for(channels, tmp_path, accession, "DMS"), DEADLINE,
                          "the DMS worklist entry")
    (step,) = entry.ScheduledProcedureStepSequence
    assert (step.Modality, step.ScheduledStationAETitle, step.ScheduledProcedureStepID) == (
        "DMS", "TELEDERM_DMS", f"{accession}-DMS")


def test_stat_order_is_published_with_stat_priority_when_obr5_is_s(channels, tmp_path):
    case = channels.open_case(edit=lambda text: text.replace(
        "Télé-expertise dermatologie^L|R|", "Télé-expertise dermatologie^L|S|"))
    assert case["priority"] == "stat"
    (entry,) = wait_until(lambda: entries_for(channels, tmp_path, case["accession"], "XC"),
                          DEADLINE, "the STAT entry")
    assert entry.RequestedProcedurePriority == "STAT"


def test_publishing_again_rewrites_the_same_two_files_when_the_job_is_replayed(channels):
    accession = channels.open_case()["accession"]
    folder = channels.services.config.worklist_folder
    wait_until(lambda: len(list(folder.glob(f"{accession}-*.wl"))) == 2, DEADLINE,
               "both entry files")
    payload = f'{{"accession": "{accession}", "modality": "XC"}}'.encode()
    assert publish_worklist.perform(channels.services, payload) == "written"
    assert sorted(p.name for p in folder.glob(f"{accession}-*")) == [
        f"{accession}-DMS.wl", f"{accession}-XC.wl"]


def test_entries_are_withdrawn_when_the_case_is_answered(channels, tmp_path):
    accession = channels.open_case()["accession"]
    wait_until(lambda: entries_for(channels, tmp_path, accession, "XC"), DEADLINE, "the entry")
    r = channels.api.post(f"/api/cases/{accession}/images",
                          files={"file": ("p.jpg", demo_jpeg(), "image/jpeg")})
    assert r.status_code == 201, r.text
    wait_until(lambda: channels.case(accession)["status"] == "READY", DEADLINE,
               "the case to be READY")
    r = channels.api.post(f"/api/cases/{accession}/report", json={
        "text": "Naevus bénin.", "conduct": "no_visit",
        "specialist": {"id": "810001234567", "name": "LEROY^Claire"}})
    assert r.status_code == 201, r.text
    wait_until(lambda: not entries_for(channels, tmp_path, accession, "XC")
               and not entries_for(channels, tmp_path, accession, "DMS"), DEADLINE,
               "the entries to be withdrawn")
    assert [a["detail"] for a in channels.audit_actions("worklist.retired")
            if a["accession"] == accession]
