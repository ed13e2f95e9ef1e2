"""Issue #4 item 2, inbound: orders NW/CA/XO (ORM, OMG, OMI), identity updates and merges (ADT
A08, A31, A40) and reports from a reporting system (ORU^R01, MDM^T02/T10), each through the
listener's handler on a real SQLite store, with real MLLP peers for what goes out."""

from __future__ import annotations

import base64
import json

import pytest

from connector.demo import demo_photo
from connector.store.schema import patients
from tests.support.inbound import REQUESTER, adt, mdm, msh, order, oru, pid, segment, wire
from tests.support.services import archive_holds

NEW_REQUESTER = "809876543210^BERNARD^Anne^^^DR^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO"


def err(ack) -> tuple[str, str, str]:
    (e,) = ack.errors
    return ack.code, e.hl7_code, e.location


# --- orders -----------------------------------------------------------------------------------

@pytest.mark.parametrize("message_type", ["ORM^O01^ORM_O01", "OMG^O19^OMG_O19",
                                          "OMI^O23^OMI_O23"])
def test_new_order_opens_a_case_in_each_order_message(inbound, message_type):
    extra = ("IPC|TD-IGNORED|RP1|1.2.3.4.5|SPS1|XC",) if message_type.startswith("OMI") else ()
    ack = inbound.send(order("PL-NW", message_type=message_type, priority="S", extra=extra))
    assert ack.code == "AA", ack.errors
    case = inbound.case(inbound.accession("PL-NW"))
    assert (case["status"], case["priority"]) == ("OPEN", "stat")


def test_cancel_cancels_the_case(inbound):
    accession = inbound.open_case("PL-CA")
    assert inbound.send(order("PL-CA", control="CA")).code == "AA"
    assert inbound.case(accession)["status"] == "CANCELLED"


def minimal_cancel(placer: str = "", accession: str = "") -> bytes:
    """A cancel as many placers send it: MSH and ORC only, no ORC-12, no PID, no OBR."""
    orc = {1: "CA", 2: f"{placer}^DPI_HOPITAL" if placer else "", 3: accession}
    return wire(msh("ORM^O01^ORM_O01", f"CA-MIN-{placer or accession}"), segment("ORC", orc))


@pytest.mark.parametrize("by", ["placer", "filler", "both"])
def test_cancel_without_orc12_is_accepted_and_cancels_the_case(inbound, by):
    accession = inbound.open_case(f"PL-CAMIN-{by}")
    placer = f"PL-CAMIN-{by}" if by != "filler" else ""
    ack = inbound.send(minimal_cancel(placer, accession if by != "placer" else ""))
    assert (ack.code, ack.errors) == ("AA", ())
    assert inbound.case(accession)["status"] == "CANCELLED"
    (cancelled,) = [a for a in inbound.audit("case.cancelled") if a["accession"] == accession]
    assert cancelled["actor"] == "hl7:DPI_HOPITAL|CHU_DEMO"


def test_cancel_naming_no_order_or_another_one_is_refused_at_the_number(inbound):
    accession = inbound.open_case("PL-CAMIN-X")
    other = inbound.open_case("PL-CAMIN-Y")
    assert err(inbound.send(minimal_cancel())) == ("AE", "101", "ORC^1^2")
    assert err(inbound.send(minimal_cancel("PL-CAMIN-NONE"))) == ("AE", "204", "ORC^1^2")
    assert err(inbound.send(minimal_cancel(accession="TD99999999"))) == ("AE", "204", "ORC^1^3")
    assert err(inbound.send(minimal_cancel("PL-CAMIN-X", other))) == ("AE", "204", "ORC^1^3")
    assert {inbound.case(a)["status"] for a in (accession, other)} == {"OPEN"}


def test_change_updates_question_priority_requester_and_is_audited(inbound):
    accession = inbound.open_case("PL-XO", images=1, message_type="OMG^O19^OMG_O19")
    before = len(inbound.outbox("worklist.publish", accession))
    ack = inbound.send(order("PL-XO", control="XO", message_type="OMG^O19^OMG_O19",
                             question="Lésion ulcérée depuis 2 semaines",
                             notes=("Saignement au contact.",), priority="A",
                             requester=NEW_REQUESTER, patient_class="I"))
    assert ack.code == "AA", ack.errors
    case = inbound.case(accession)
    assert case["status"] == "READY"  # images and state untouched
    assert case["question"] == "Lésion ulcérée depuis 2 semaines\nSaignement au contact."
    assert case["priority"] == "urgent"
    assert (case["requester"]["id"], case["requester"]["name"]) == ("809876543210",
                                                                    "BERNARD^Anne")
    assert case["requester"]["rpps"] == "09876543210"
    (changed,) = inbound.audit("order.changed")
    assert changed["accession"] == accession and changed["actor"] == "hl7:DPI_HOPITAL|CHU_DEMO"
    assert changed["detail"]["changed"] == ["patient_hospitalised", "priority", "question",
                                            "requester"]
    assert "ulcérée" not in json.dumps(changed["detail"], ensure_ascii=False)
    # The worklist entries are written again from the changed case (XC and DMS).
    assert len(inbound.outbox("worklist.publish", accession)) == before + 2
    inbound.drain("worklist")
    assert {j["status"] for j in inbound.outbox("worklist.publish", accession)} == {"done"}


def test_change_in_orm_reads_the_priority_from_obr27_and_can_change_nothing(inbound):
    accession = inbound.open_case("PL-XO2")
    assert inbound.send(order("PL-XO2", control="XO", priority="S")).code == "AA"
    assert inbound.case(accession)["priority"] == "stat"
    assert inbound.send(order("PL-XO2", control="XO", priority="S")).code == "AA"
    assert [a["detail"]["changed"] for a in inbound.audit("order.changed")] == [["priority"], []]


def test_change_with_other_demographics_is_refused_as_an_identity_conflict(inbound):
    """An order is no identity feed: an XO whose name or birth date differ from the patient's
    record is AE at that PID field, changes nothing and is an identity incident."""
    accession = inbound.open_case("PL-XO3")
    refused = [(order("PL-XO3", control="XO", name="DUPONT-MOREL^Hélène", question="autre",
                      control_id="XO3-NAME"), "PID^1^5"),
               (wire(msh("ORM^O01^ORM_O01", "XO3-BIRTH"),
                     pid("IPP-1", birth="19580313"),
                     *order("PL-XO3", control="XO", question="autre").decode()
                     .split("\r")[2:]), "PID^1^7")]
    for raw, location in refused:
        assert err(inbound.send(raw)) == ("AE", "207", location)
    case = inbound.case(accession)
    assert (case["patient"]["name"], case["patient"]["birth_date"], case["question"]) == (
        "DUPONT^Hélène", "19580312", "Lésion pigmentée")
    assert inbound.audit("order.changed") == []
    with inbound.services.reading() as uow:
        identity = uow.queries.health(True)["identity"]
    assert [(i["control_id"], i["location"]) for i in identity["latest_conflicts"]] == [
        ("XO3-BIRTH", "PID^1^7"), ("XO3-NAME", "PID^1^5")]
    # The same traits: the change is applied.
    assert inbound.send(order("PL-XO3", control="XO", question="autre")).code == "AA"
    assert inbound.case(accession)["question"] == "autre"


def test_change_attaches_the_images_it_embeds(inbound):
    accession = inbound.open_case("PL-XO-IMG")
    photo = base64.b64encode(demo_photo(False)).decode("ascii")
    ack = inbound.send(order("PL-XO-IMG", control="XO", extra=(
        f"OBX|1|ED|PHOTO^Photo clinique^L||^IM^JPEG^Base64^{photo}||||||F",)))
    assert ack.code == "AA", ack.errors
    case = inbound.case(accession)
    assert case["status"] == "IMAGES_PENDING" and len(case["images"]) == 1


def test_change_errors(inbound):
    # Unknown order: 204 at ORC-2.
    assert err(inbound.send(order("PL-NOPE", control="XO"))) == ("AE", "204", "ORC^1^2")
    # Answered case: state conflict, final (AE 207 at ORC-1).
    answered = inbound.open_case("PL-XO-ANS", images=1)
    assert inbound.send(oru(accession=answered)).code == "AA"
    assert err(inbound.send(order("PL-XO-ANS", control="XO", priority="S"))) == (
        "AE", "207", "ORC^1^1")
    assert inbound.case(answered)["priority"] == "routine"
    # Cancelled case: same.
    inbound.open_case("PL-XO-CA")
    inbound.send(order("PL-XO-CA", control="CA"))
    assert err(inbound.send(order("PL-XO-CA", control="XO"))) == ("AE", "207", "ORC^1^1")
    # Another patient: refused at PID-3, nothing changed.
    other = inbound.open_case("PL-XO-PAT")
    assert err(inbound.send(order("PL-XO-PAT", control="XO", patient="IPP-OTHER",
                                  question="autre"))) == ("AE", "207", "PID^1^3")
    assert inbound.case(other)["question"] == "Lésion pigmentée"
    assert inbound.audit("order.changed") == []


def test_resent_change_gets_the_stored_ack_and_is_applied_once(inbound):
    inbound.open_case("PL-XO-DUP")
    raw = order("PL-XO-DUP", control="XO", priority="S", control_id="XO-DUP-1")
    first, again = inbound.send_raw(raw), inbound.send_raw(raw)
    assert first == again and b"MSA|AA|XO-DUP-1" in first
    assert len(inbound.audit("order.changed")) == 1


# --- identity ---------------------------------------------------------------------------------

@pytest.mark.parametrize("trigger", ["A08", "A31"])
def test_patient_update_changes_every_case_and_queues_the_archive_update(inbound, trigger):
    with_images = inbound.open_case("PL-ID-1", images=1)
    without = inbound.open_case("PL-ID-2")
    ack = inbound.send(adt(trigger, name="MARTIN^Hélène", birth="19580313", sex="F"))
    assert ack.code == "AA", ack.errors
    for accession in (with_images, without):
        patient = inbound.case(accession)["patient"]
        assert (patient["name"], patient["birth_date"]) == ("MARTIN^Hélène", "19580313")
    # Only a case with something in the archive needs its study rewritten; both cases still
    # take images, so both get their worklist entries written again.
    (job,) = inbound.outbox("archive.update_patient")
    assert (job["accession"], job["destination"], job["status"]) == (with_images, "archive",
                                                                    "pending")
    assert json.loads(job["payload"]) == {"accession": with_images}  # no patient data queued
    assert len(inbound.outbox("worklist.publish", without)) == 4
    audits = inbound.audit("patient.updated")
    assert sorted(a["accession"] for a in audits) == sorted([with_images, without])
    assert audits[0]["detail"] == {"event": trigger, "changed": ["family", "birth_date"]}
    text = json.dumps([a["detail"] for a in audits], ensure_ascii=False)
    assert "MARTIN" not in text and "IPP-1" not in text and "19580313" not in text


def test_patient_update_without_change_queues_nothing(inbound):
    inbound.open_case("PL-ID-SAME", images=1)
    assert inbound.send(adt("A08")).code == "AA"
    assert inbound.outbox("archive.update_patient") == []
    assert inbound.audit("patient.updated")[0]["detail"]["changed"] == []


def test_update_for_a_patient_without_case_is_accepted_and_changes_nothing(inbound):
    accession = inbound.open_case("PL-ID-OTHER")
    ack = inbound.send(adt("A08", patient="IPP-UNKNOWN", name="INCONNU^Paul"))
    assert ack.code == "AA"
    assert inbound.case(accession)["patient"]["name"] == "DUPONT^Hélène"
    assert inbound.outbox("archive.update_patient") == []
    (row,) = inbound.audit("patient.unknown")
    assert row["accession"] is None and row["detail"]["event"] == "A08"
    assert "IPP-UNKNOWN" not in json.dumps(row) and "INCONNU" not in json.dumps(row)


def test_qualified_identity_finds_the_record_kept_under_the_local_identifier(inbound):
    """PAM-FR: an A31 qualifies the identity, so its PID-3 INS becomes the patient id and the
    IPP comes as another identifier; the record stored under the IPP is the one updated."""
    accession = inbound.open_case("PL-INS", images=1)
    ins = "279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
    raw = adt("A31").decode().replace("^PI||", f"^PI~{ins}||", 1)
    raw = raw.replace("|19580312|F", "|19580312|F" + "|" * 24 + "QUAL", 1)
    ack = inbound.send(raw.encode())
    assert ack.code == "AA", ack.errors
    patient = inbound.case(accession)["patient"]
    assert (patient["id"], patient["issuer"]) == ("279035121518989", "1.2.250.1.213.1.4.8")
    # the IPP still finds the patient (any identifier does), now keyed on the INS
    assert {c["patient"]["id"] for c in inbound.cases_of("IPP-1")} == {"279035121518989"}
    (job,) = inbound.outbox("archive.update_patient")  # Orthanc gets the new PatientID too
    assert job["accession"] == accession
    changed = inbound.audit("patient.updated")[0]["detail"]["changed"]
    assert {"patient_id", "issuer", "ins", "identity_status"} <= set(changed)


def test_merge_moves_the_prior_patients_cases_to_the_surviving_patient(inbound):
    prior_a = inbound.open_case("PL-MRG-1", images=1, patient="IPP-OLD", name="DUPOND^Hélène")
    prior_b = inbound.open_case("PL-MRG-2", patient="IPP-OLD", name="DUPOND^Hélène")
    own = inbound.open_case("PL-MRG-3", patient="IPP-1")
    ack = inbound.send(adt("A40", patient="IPP-1", name="DUPONT^Hélène", prior="IPP-OLD"))
    assert ack.code == "AA", ack.errors
    # the prior identifier now finds the surviving patient
    assert {c["patient"]["id"] for c in inbound.cases_of("IPP-OLD")} == {"IPP-1"}
    assert sorted(c["accession"] for c in inbound.cases_of("IPP-1")) == sorted(
        [prior_a, prior_b, own])
    assert inbound.case(prior_a)["patient"]["name"] == "DUPONT^Hélène"
    with inbound.services.store.engine.connect() as conn:
        ids = [r.patient_id for r in conn.execute(patients.select())]
    assert ids == ["IPP-1"]  # the prior record is gone
    (job,) = inbound.outbox("archive.update_patient")
    assert job["accession"] == prior_a
    assert sorted(a["accession"] for a in inbound.audit("patient.merged")) == sorted(
        [prior_a, prior_b])


def test_merge_into_an_unknown_surviving_patient_renames_the_record(inbound):
    accession = inbound.open_case("PL-MRG-REN", images=1, patient="IPP-OLD")
    assert inbound.send(adt("A40", patient="IPP-NEW", name="DUPONT^Hélène",
                            prior="IPP-OLD")).code == "AA"
    assert inbound.case(accession)["patient"]["id"] == "IPP-NEW"
    assert {c["patient"]["id"] for c in inbound.cases_of("IPP-OLD")} == {"IPP-NEW"}
    assert [j["accession"] for j in inbound.outbox("archive.update_patient")] == [accession]


def test_merge_of_an_unknown_prior_patient_is_accepted_and_updates_the_survivor(inbound):
    accession = inbound.open_case("PL-MRG-UNK")
    ack = inbound.send(adt("A40", patient="IPP-1", name="DUPONT^Hélène Marie",
                           prior="IPP-NEVER-SEEN"))
    assert ack.code == "AA"
    assert inbound.case(accession)["patient"]["name"] == "DUPONT^Hélène Marie"
    (ignored,) = inbound.audit("patient.merge_ignored")
    assert ignored["detail"]["event"] == "A40"
    assert "IPP-NEVER-SEEN" not in json.dumps(ignored)


def test_identity_errors(inbound):
    inbound.open_case("PL-ID-ERR")
    merge_without_mrg = wire(msh("ADT^A40^ADT_A39", "A40-NO-MRG", app="SIH_IDENTITE"),
                             "EVN|A40", pid())
    assert err(inbound.send(merge_without_mrg)) == ("AE", "100", "MRG^1")
    assert err(inbound.send(adt("A08", birth="19581332"))) == ("AE", "102", "PID^1^7")
    assert err(inbound.send(adt("A01"))) == ("AR", "201", "MSH^1^9^2")
    assert inbound.case(inbound.accession("PL-ID-ERR"))["patient"]["birth_date"] == "19580312"


def test_resent_update_gets_the_stored_ack_and_one_archive_job(inbound):
    inbound.open_case("PL-ID-DUP", images=1)
    raw = adt("A31", name="MARTIN^Hélène", control_id="A31-DUP")
    assert inbound.send_raw(raw) == inbound.send_raw(raw)
    assert len(inbound.outbox("archive.update_patient")) == 1


# --- reports from the reporting system --------------------------------------------------------

def test_oru_records_the_final_report_as_the_api_does(inbound):
    accession = inbound.open_case("PL-ORU", images=1)
    ack = inbound.send(oru(accession=accession, placer="PL-ORU",
                           text=("Naevus bénin.", "Surveillance annuelle."), conduct="biopsy"))
    assert ack.code == "AA", ack.errors
    case = inbound.case(accession)
    assert case["status"] == "ANSWERED"
    (report,) = case["reports"]
    assert (report["version"], report["status"], report["conduct"], report["specialist"]) == (
        1, "F", "biopsy", "810001234567")
    assert [c["code"] for c in case["charges"]] == ["TE2", "RQD"]
    inbound.drain("ehr")
    (sent,) = inbound.ehr.parsed()
    texts = [str(s[5]) for s in sent.segments("OBX") if str(s[2]) == "TX"]
    assert texts == ["Naevus bénin.", "Surveillance annuelle."]
    assert {str(s[11]) for s in sent.segments("OBX")} == {"F"}


def test_oru_by_placer_order_number_and_correction_amends(inbound):
    accession = inbound.open_case("PL-ORU-C", images=1)
    assert inbound.send(oru(placer="PL-ORU-C")).code == "AA"
    ack = inbound.send(oru(placer="PL-ORU-C", text=("Naevus bénin, à exciser.",),
                           status="C", conduct="biopsy"))
    assert ack.code == "AA", ack.errors
    case = inbound.case(accession)
    assert case["status"] == "AMENDED"
    assert [(r["version"], r["status"]) for r in case["reports"]] == [(1, "F"), (2, "C")]
    assert len(case["charges"]) == 2  # a correction is not billed again
    inbound.drain("ehr")
    final, corrected = inbound.ehr.parsed()
    assert {str(s[11]) for s in corrected.segments("OBX")} == {"C"}
    assert [str(s[5]) for s in corrected.segments("OBX") if str(s[2]) == "TX"] == [
        "Naevus bénin, à exciser."]


def test_a_correction_for_a_case_not_answered_yet_is_its_first_report(inbound):
    accession = inbound.open_case("PL-ORU-C0", images=1)
    assert inbound.send(oru(accession=accession, status="C")).code == "AA"
    case = inbound.case(accession)
    assert case["status"] == "ANSWERED" and case["reports"][0]["status"] == "F"


def test_mdm_t02_answers_and_t10_replaces(inbound):
    accession = inbound.open_case("PL-MDM", images=1)
    ack = inbound.send(mdm("T02", accession=accession))
    assert ack.code == "AA", ack.errors
    case = inbound.case(accession)
    assert case["status"] == "ANSWERED"
    assert case["reports"][0]["conduct"] == "see_report"  # none sent: the mapping's default
    ack = inbound.send(mdm("T10", accession=accession, text="Lésion à réexaminer."))
    assert ack.code == "AA", ack.errors
    case = inbound.case(accession)
    assert case["status"] == "AMENDED"
    assert [r["status"] for r in case["reports"]] == ["F", "C"]


def test_the_same_report_resent_changes_nothing(inbound):
    accession = inbound.open_case("PL-ORU-DUP", images=1)
    raw = oru(accession=accession, control_id="ORU-DUP-1")
    first = inbound.send_raw(raw)
    assert inbound.send_raw(raw) == first  # same MSH-10: the stored ACK
    # Same report under a new MSH-10: accepted, no second version.
    assert inbound.send(oru(accession=accession, control_id="ORU-DUP-2")).code == "AA"
    assert len(inbound.case(accession)["reports"]) == 1
    assert len(inbound.audit("report.resent")) == 1


def test_a_report_before_the_images_are_stable_is_ae_saying_why_and_taken_once_ready(inbound):
    accession = inbound.open_case("PL-ORU-EARLY", images=1, stable=False)
    raw = oru(accession=accession, control_id="ORU-EARLY-1")
    early = inbound.send(raw)
    assert err(early) == ("AE", "207", "OBR^1^3")
    assert "not stable yet (it is IMAGES_PENDING)" in early.errors[0].text
    assert inbound.case(accession)["reports"] == []
    assert archive_holds(inbound.services, accession) == "READY"
    assert inbound.send(oru(accession=accession, control_id="ORU-EARLY-2")).code == "AA"
    assert [r["status"] for r in inbound.case(accession)["reports"]] == ["F"]
    with inbound.services.reading() as uow:  # the PDF shows the case's photo as a thumbnail
        assert uow.reports.latest(accession).pdf.count(b"/Subtype /Image") == 1


def test_report_errors(inbound):
    open_case = inbound.open_case("PL-ORU-OPEN")            # no image yet
    answered = inbound.open_case("PL-ORU-ANS", images=1)
    inbound.send(oru(accession=answered))
    cancelled = inbound.open_case("PL-ORU-CA", images=1)
    inbound.send(order("PL-ORU-CA", control="CA"))

    assert err(inbound.send(oru(accession="TD99999999"))) == ("AE", "204", "OBR^1^3")
    assert err(inbound.send(oru(placer="PL-NOWHERE"))) == ("AE", "204", "ORC^1^2")
    assert err(inbound.send(oru(accession=answered, placer="PL-ORU-OPEN"))) == (
        "AE", "204", "ORC^1^2")
    assert err(inbound.send(oru(accession=open_case))) == ("AE", "207", "OBR^1^3")
    assert err(inbound.send(oru(accession=cancelled))) == ("AE", "207", "OBR^1^3")
    # A different final report for an answered case: it must come as a correction.
    assert err(inbound.send(oru(accession=answered, text=("Autre avis.",)))) == (
        "AE", "207", "OBR^1^3")
    assert err(inbound.send(oru(accession=answered, text=()))) == ("AE", "101", "OBX^1^5")
    assert err(inbound.send(oru(accession=answered, status="P"))) == ("AE", "103", "OBX^1^11")
    assert err(inbound.send(mdm("T02", accession=answered, completion="IP").replace(
        b"|F\r", b"|\r"))) == ("AE", "103", "TXA^1^17")
    unsupported = wire(msh("MDM^T04^MDM_T02", "MDM-T04"), "EVN|T04", pid())
    assert err(inbound.send(unsupported)) == ("AR", "201", "MSH^1^9^2")
    assert err(inbound.send(wire(msh("SIU^S12^SIU_S12", "SIU-1")))) == ("AR", "200", "MSH^1^9^1")
    assert [r["status"] for r in inbound.case(answered)["reports"]] == ["F"]
    assert inbound.case(open_case)["status"] == "OPEN"
    assert inbound.case(cancelled)["reports"] == []
    # A refused report's ACK is final: the same message resent gets it again.
    raw = oru(accession="TD99999999", control_id="ORU-404")
    assert inbound.send_raw(raw) == inbound.send_raw(raw)


def test_requester_in_reports_is_untouched(inbound):
    """The reporting system's ORC-12/OBR-16 (if any) never replace the requester."""
    accession = inbound.open_case("PL-ORU-REQ", images=1)
    inbound.send(oru(accession=accession))
    assert inbound.case(accession)["requester"]["id"] == REQUESTER.split("^")[0]
