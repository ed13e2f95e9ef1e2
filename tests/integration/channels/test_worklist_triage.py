"""Triage and identity end to end: an order's red flags (questionnaire OBX) raise the case's
worklist priority that `findscu -W` sees through Orthanc and the case list's triage order; a
qualified INS is the worklist's patient id, with the IPP beside it."""

from __future__ import annotations

from connector.dicom.worklist import WorklistFolder
from tests.support.channels import DEADLINE, WORKLIST_KEYS, findscu_worklist
from tests.support.wait import wait_until

BODY = "1841275123456"
NIR = f"{BODY}{97 - int(BODY) % 97:02d}"
INS_OID = "1.2.250.1.213.1.4.8"
DEMO_PID = "PID|1||IPP123456^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI||DUPONT^Hélène^^^^^L||19580312|F"


def with_red_flags(flags: str):
    return lambda text: text + f"OBX|2|CWE|DERM-ALERTES^Signes d'alerte^L||{flags}||||||F\r"


def entry(channels, tmp_path, accession: str, *keys: str):
    def found():
        answers = findscu_worklist(channels.orthanc_dicom_port, tmp_path / accession,
                                   "ScheduledProcedureStepSequence[0].Modality=XC",
                                   *WORKLIST_KEYS, *keys)
        return [a for a in answers if a.AccessionNumber == accession]
    (answer,) = wait_until(found, DEADLINE, f"the XC entry of {accession}")
    return answer


def test_red_flags_raise_the_worklist_priority_and_the_triage_order(channels, tmp_path):
    routine = channels.open_case()
    medium = channels.open_case(edit=with_red_flags("ULCERATION"))
    high = channels.open_case(edit=with_red_flags("ULCERATION~RAPID_GROWTH"))
    expected = {routine["accession"]: "ROUTINE", medium["accession"]: "MEDIUM",
                high["accession"]: "HIGH"}
    for accession, level in expected.items():
        assert entry(channels, tmp_path, accession).RequestedProcedurePriority == level

    listed = channels.api.get("/api/cases", params={"sort": "triage", "limit": 1000}).json()
    ours = [c["accession"] for c in listed if c["accession"] in expected]
    assert ours == [high["accession"], medium["accession"], routine["accession"]]
    assert channels.api.get("/api/cases", params={"sort": "age"}).status_code == 422

    detail = channels.case(high["accession"])
    assert detail["triage"] == {"level": "HIGH", "score": 40,
                                "red_flags": ["red_flags:ULCERATION", "red_flags:RAPID_GROWTH"]}
    (answer,) = detail["questionnaire"]
    assert answer["item"] == "red_flags" and answer["values"] == ["ULCERATION", "RAPID_GROWTH"]
    assert answer["label"] == {"fr": "Signes d'alerte", "en": "Red flags"}
    assert detail["consent"]["source"] == "OBX"

    published = [ds.AccessionNumber for ds in
                 WorklistFolder(channels.services.config.worklist_folder).entries()]
    mine = [a for a in published if a in expected]
    assert mine[:2] == [high["accession"]] * 2  # its XC and DMS entries come first
    assert mine[-2:] == [routine["accession"]] * 2


def test_qualified_ins_is_the_worklist_patient_id_with_the_ipp_beside(channels, tmp_path):
    pid = (f"PID|1||IPP-INS-1^^^CHU_DEMO^PI~{NIR}^^^ASIP-SANTE-INS-NIR&{INS_OID}&ISO^INS||"
           "DUPONT^Hélène^^^^^L||19580312|F" + "|" * 24 + "QUAL")
    case = channels.open_case(edit=lambda text: text.replace(DEMO_PID, pid, 1))
    assert (case["patient"]["id"], case["patient"]["issuer"]) == (NIR, INS_OID)
    answer = entry(channels, tmp_path, case["accession"],
                   "OtherPatientIDsSequence[0].PatientID",
                   "OtherPatientIDsSequence[0].IssuerOfPatientID")
    assert (answer.PatientID, answer.IssuerOfPatientID) == (NIR, INS_OID)
    (other,) = answer.OtherPatientIDsSequence
    assert (other.PatientID, other.IssuerOfPatientID) == ("IPP-INS-1", "CHU_DEMO")
