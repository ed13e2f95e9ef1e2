"""Billing wired into the connector, on a real SQLite file and real MLLP peers: final reports,
yearly limits, exclusions, withdrawals, cancellations and teleconsultations reported as done
become charge lines in the store, DFT^P03 at the accounting peer (read back with python-hl7)
and CSV files in a drop folder; the feed's answer (AA / AE) becomes the lines' status."""

from __future__ import annotations

import csv
import io

import pytest

from connector.billing.csvfeed import file_name
from connector.billing.teleexpertise import credit_id
from connector.config import Destination
from connector.domain.errors import StateConflict
from connector.store import cases, outbox
from connector.workflow import post_charges, withdraw_report
from connector.workflow.commands import WithdrawReport
from tests.support.billing import (REQUESTER, SPECIALIST, Billing, RefusingPeer, majoration, order,
                                   payload)
from tests.support.peers import RecordingPeer
from tests.support.services import make_services


def cents(billing: Billing, code: str, role: str, day: str) -> int:
    return billing.services.mappings.tariffs.amount_cents(code, role, day)


def ft1_rows(message) -> list[dict]:
    """Each FT1 of a python-hl7 message, field by field (first component unless noted)."""
    out = []
    for ft1 in message.segments("FT1"):
        def f(n, c=1):
            return ft1.extract_field(1, n, 1, c)
        out.append({"set_id": str(ft1(1)), "id": str(ft1(2)), "date": str(ft1(4)),
                    "type": str(ft1(6)), "code": str(ft1(7)), "qty": str(ft1(10)),
                    "amount": str(ft1(11)), "unit": str(ft1(12)), "dept": str(ft1(13)),
                    "performed_by": f(20), "ordered_by": f(21), "filler": str(ft1(23)),
                    "national": f(25), "system": f(25, 3)})
    return out


def test_final_report_bills_te2_and_rqd_to_both_feeds_and_aa_acknowledges_them(billing):
    accession = billing.open_case("PL-W-1")
    got = billing.answer(accession)
    assert got.dft_control_id == f"DFT{accession}N1"
    lines = billing.lines(accession)
    day = lines[0]["act_date"]
    assert [(r["code"], r["role"], r["type"], r["status"], r["amount_cents"]) for r in lines] == [
        ("TE2", "requis", "CG", "sent", cents(billing, "TE2", "requis", day)),
        ("RQD", "requerant", "CG", "sent", cents(billing, "RQD", "requerant", day))]
    assert {(r["facility"], r["kind"], r["billing_round"], r["patient_id"], r["ordered_by"],
             r["message_control_id"]) for r in lines} == {
        ("TELEDERM", "teleexpertise", 0, "IPP-B-1", REQUESTER, got.dft_control_id)}
    assert [r["performed_by"] for r in lines] == [SPECIALIST.id, REQUESTER]

    billing.drain("accounting", "accounting-files", "ehr")
    (dft,) = billing.accounting.parsed()
    assert str(dft.segment("MSH")(9)) == "DFT^P03^DFT_P03"
    assert str(dft.segment("MSH")(10)) == got.dft_control_id
    assert dft.extract_field("PID", 1, 3, 1, 1) == "IPP-B-1"
    assert ft1_rows(dft) == [
        {"set_id": "1", "id": lines[0]["transaction_id"], "date": f"{day}^{day}", "type": "CG",
         "code": "TE2^Télé-expertise (requis)^NGAP", "qty": "1",
         "amount": f"{lines[0]['amount_cents'] / 100:.2f}&EUR",
         "unit": f"{lines[0]['amount_cents'] / 100:.2f}&EUR", "dept": "",
         "performed_by": SPECIALIST.id, "ordered_by": REQUESTER, "filler": accession,
         "national": "TE2", "system": "NGAP"},
        {"set_id": "2", "id": lines[1]["transaction_id"], "date": f"{day}^{day}", "type": "CG",
         "code": "RQD^Demande de télé-expertise (requérant)^NGAP", "qty": "1",
         "amount": "10.00&EUR", "unit": "10.00&EUR", "dept": "", "performed_by": REQUESTER,
         "ordered_by": REQUESTER, "filler": accession, "national": "RQD", "system": "NGAP"}]
    assert [r["status"] for r in billing.lines(accession)] == ["acknowledged", "acknowledged"]

    # The same batch, as one CSV file in the drop folder.
    path = billing.drop / file_name(got.dft_control_id)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert [(r["transaction_id"], r["transaction_type"], r["national_code"], r["amount"],
             r["performed_by"], r["filler_order_number"]) for r in rows] == [
        (x["id"], x["type"], x["national"], x["amount"].removesuffix("&EUR"), x["performed_by"],
         x["filler"]) for x in ft1_rows(dft)]
    assert sorted(p.name for p in billing.drop.iterdir()) == [path.name]  # no temporary left


def test_replayed_final_report_books_nothing_new(billing):
    accession = billing.open_case("PL-W-2")
    billing.answer(accession)
    before = billing.lines(accession)
    services = billing.services
    with services.unit() as uow:
        case = uow.cases.load(accession)
        again = post_charges.handle(uow, case, SPECIALIST, act_date=before[0]["act_date"])
    assert again is None
    assert billing.lines(accession) == before
    assert len(billing.outbox("accounting")) == 1


def test_refused_dft_leaves_its_charges_refused_with_the_reason(tmp_path):
    refusing, fixed = RefusingPeer("compta").start(), RecordingPeer("compta-fixed").start()
    services = make_services(tmp_path / "data", (
        Destination(name="compta", role="accounting", address=f"127.0.0.1:{refusing.port}"),))
    # The same store once the site has pointed the feed at a system that accepts the batch.
    repaired = make_services(tmp_path / "data", (
        Destination(name="compta", role="accounting", address=f"127.0.0.1:{fixed.port}"),))
    try:
        env = Billing(services, None, refusing, tmp_path / "drop")
        accession = env.open_case("PL-REF-1")
        env.answer(accession)
        env.drain("compta")
        (item,) = env.outbox("compta")
        assert item["status"] == "dead" and "AE" in item["last_error"]
        lines = env.lines(accession)
        assert [r["status"] for r in lines] == ["refused", "refused"]
        assert all("AE" in r["reason"] and "FT1^1^7" in r["reason"] for r in lines)
        assert all("unknown charge code" not in r["reason"] for r in lines)  # peer text not kept

        # An operator re-queues the batch: accepted this time, the lines are acknowledged.
        with repaired.store.engine.begin() as conn:
            assert outbox.retry(conn, item["id"], repaired.now())
        Billing(repaired, None, fixed, tmp_path / "drop").drain("compta")
        assert [r["status"] for r in env.lines(accession)] == ["acknowledged", "acknowledged"]
        assert len(fixed.messages) == 1
    finally:
        services.store.engine.dispose()
        repaired.store.engine.dispose()
        refusing.stop()
        fixed.stop()


def test_fifth_act_of_the_year_for_a_patient_is_not_billable_and_not_sent(billing):
    accessions = [billing.open_case(f"PL-LIM-{n}", patient="IPP-LIM") for n in range(1, 6)]
    for accession in accessions[:4]:
        assert billing.answer(accession).dft_control_id
    fifth = billing.answer(accessions[4])
    assert fifth.dft_control_id is None
    lines = billing.lines(accessions[4])
    assert [(r["code"], r["role"], r["type"], r["status"], r["amount_cents"],
             r["message_control_id"]) for r in lines] == [
        ("TE2", "requis", "", "not_billable", 0, ""),
        ("RQD", "requerant", "", "not_billable", 0, "")]
    assert lines[0]["reason"].startswith("yearly limit reached: 4 tele-expertises per year per "
                                         "requis")
    assert "requérant" in lines[1]["reason"] or "requerant" in lines[1]["reason"]
    assert billing.outbox("accounting")[-1]["accession"] == accessions[3]
    # Another patient with the same doctors is not affected.
    other = billing.open_case("PL-LIM-OTHER", patient="IPP-LIM-2")
    assert billing.answer(other).dft_control_id
    billing.drain("accounting")
    assert len(billing.accounting.messages) == 5
    assert all(accessions[4] not in m for m in billing.accounting.messages)


def test_a_credited_act_does_not_use_the_yearly_quota(billing):
    accessions = [billing.open_case(f"PL-Q-{n}", patient="IPP-Q") for n in range(1, 6)]
    for accession in accessions[:4]:
        billing.answer(accession)
    with billing.services.unit() as uow:
        withdraw_report.handle(WithdrawReport(accessions[0], "wrong patient", "test"), uow)
    assert billing.answer(accessions[4]).dft_control_id
    assert {r["status"] for r in billing.lines(accessions[4])} == {"sent"}


def test_patient_hospitalised_at_the_requesting_facility_bills_nothing(billing):
    accession = billing.open_case("PL-HOSP-1", patient_class="I")
    assert billing.answer(accession).dft_control_id is None
    lines = billing.lines(accession)
    assert [(r["code"], r["status"]) for r in lines] == [("TE2", "not_billable"),
                                                        ("RQD", "not_billable")]
    assert all("hospitalised" in r["reason"] for r in lines)
    assert billing.outbox("accounting") == []


def test_same_site_requester_and_specialist_bill_nothing(billing):
    accession = billing.open_case("PL-SITE-1", facility="TELEDERM")  # MSH-4 = our facility.id
    assert billing.answer(accession).dft_control_id is None
    assert {r["status"] for r in billing.lines(accession)} == {"not_billable"}


def test_withdrawn_report_credits_exactly_what_was_charged_and_tells_the_requester(billing):
    accession = billing.open_case("PL-WD-1")
    billing.answer(accession)
    billing.drain("accounting", "ehr")
    charged = billing.lines(accession)

    with billing.services.unit() as uow:
        got = withdraw_report.handle(WithdrawReport(accession, "wrong patient", "test"), uow)
    assert (got.status, got.version, got.credits) == ("IN_REVIEW", 1, 2)
    assert got.oru_control_id == f"ORU{accession}W1"
    assert got.dft_control_id == f"DFT{accession}N2"
    credits = billing.lines(accession)[2:]
    assert [(c["code"], c["role"], c["type"], c["amount_cents"], c["act_date"],
             c["performed_by"], c["ordered_by"], c["credit_of"], c["transaction_id"])
            for c in credits] == [
        (g["code"], g["role"], "CD", g["amount_cents"], g["act_date"], g["performed_by"],
         g["ordered_by"], g["transaction_id"], credit_id(g["transaction_id"])) for g in charged]
    assert all(c["reason"] == "report withdrawn: wrong patient" for c in credits)

    billing.drain("accounting", "ehr", "accounting-files")
    first, second = billing.accounting.parsed()
    cg, cd = ft1_rows(first), ft1_rows(second)
    assert [r["type"] for r in cd] == ["CD", "CD"]
    assert [r["id"] for r in cd] == [credit_id(r["id"]) for r in cg]
    keep = ("date", "code", "qty", "amount", "unit", "dept", "performed_by", "ordered_by",
            "filler", "national", "system")
    assert [{k: r[k] for k in keep} for r in cd] == [{k: r[k] for k in keep} for r in cg]
    assert {r["status"] for r in billing.lines(accession)} == {"acknowledged"}
    assert (billing.drop / file_name(got.dft_control_id)).is_file()

    # The requester's EHR is told: the same observations, deleted.
    oru = billing.ehr.parsed()[-1]
    assert str(oru.segment("MSH")(10)) == got.oru_control_id
    assert str(oru.segment("OBR")(25)) == "C"
    assert {str(s(11)) for s in oru.segments("OBX")} == {"D"}

    # Withdrawn once: a second withdrawal is a state conflict, and nothing more is credited.
    with pytest.raises(StateConflict), billing.services.unit() as uow:
        withdraw_report.handle(WithdrawReport(accession, "again", "test"), uow)
    assert len(billing.lines(accession)) == 4

    # Answered again: a new act in billing round 1, with new FT1-2 ids.
    again = billing.answer(accession)
    assert (again.version, again.dft_control_id) == (2, f"DFT{accession}N3")
    rebilled = billing.lines(accession)[4:]
    assert [(r["code"], r["type"], r["billing_round"]) for r in rebilled] == [
        ("TE2", "CG", 1), ("RQD", "CG", 1)]
    assert not {r["transaction_id"] for r in rebilled} & {r["transaction_id"] for r in charged}


def test_case_without_report_cannot_be_withdrawn(billing):
    accession = billing.open_case("PL-WD-2")
    with pytest.raises(StateConflict), billing.services.unit() as uow:
        withdraw_report.handle(WithdrawReport(accession, "x", "test"), uow)


def test_cancelled_order_credits_a_charged_act_and_only_cancels_an_uncharged_one(billing):
    plain = billing.open_case("PL-CA-1")
    ack = billing.send(order("PL-CA-1", control="CA"))
    assert ack.code == "AA"
    assert billing.lines(plain) == []
    assert _status(billing, plain) == "CANCELLED"

    charged = billing.open_case("PL-CA-2")
    billing.answer(charged)
    assert billing.send(order("PL-CA-2", control="CA")).code == "AA"
    assert _status(billing, charged) == "CANCELLED"
    lines = billing.lines(charged)
    assert [(r["code"], r["type"]) for r in lines] == [("TE2", "CG"), ("RQD", "CG"),
                                                      ("TE2", "CD"), ("RQD", "CD")]
    assert lines[2]["reason"] == "act cancelled by the requester (ORC-1 CA)"
    # The same cancel again (new MSH-10): accepted, nothing more credited.
    assert billing.send(order("PL-CA-2", control="CA")).code == "AA"
    assert len(billing.lines(charged)) == 4
    billing.drain("accounting")
    assert [str(m.segment("FT1")(6)) for m in billing.accounting.parsed()] == ["CG", "CD"]


def test_cancel_of_an_unknown_order_is_refused_with_err_204(billing):
    ack = billing.send(order("PL-NOPE", control="CA"))
    assert ack.code == "AE"
    (err,) = ack.errors
    assert (err.hl7_code, err.location) == ("204", "ORC^1^2")


def test_cancel_of_a_closed_case_is_a_final_error(billing):
    accession = billing.open_case("PL-CA-3")
    billing.answer(accession)
    from connector.domain.states import CaseEvent
    with billing.services.store.engine.begin() as conn:
        case = cases.load(conn, accession)
        case.apply(CaseEvent.CLOSE)
        cases.save_status(conn, case, "2026-11-24T09:00:00+00:00")
    ack = billing.send(order("PL-CA-3", control="CA"))
    assert ack.code == "AE" and ack.errors[0].location == "ORC^1^1"
    assert [r["type"] for r in billing.lines(accession)] == ["CG", "CG"]


def test_teleconsultation_reported_done_bills_tc_with_its_majorations_at_once(billing):
    attending = "810009999999^DURAND^Marc"
    ack = billing.send(order("PL-TC-1", service="TC^Téléconsultation^NGAP",
                             performed_at="20240603143000", attending=attending,
                             obx=(majoration(1, "MPC"), majoration(2, "MCS"))))
    assert ack.code == "AA", [e.text for e in ack.errors]
    accession = _accession(billing, "PL-TC-1")
    assert _status(billing, accession) == "ANSWERED"
    lines = billing.lines(accession)
    assert [(r["code"], r["role"], r["type"], r["amount_cents"], r["act_date"], r["kind"],
             r["performed_by"], r["ordered_by"]) for r in lines] == [
        ("TC", "doctor", "CG", 2300, "20240603", "teleconsultation", "810009999999", REQUESTER),
        ("MPC", "doctor", "CG", 200, "20240603", "teleconsultation", "810009999999", REQUESTER),
        ("MCS", "doctor", "CG", 500, "20240603", "teleconsultation", "810009999999", REQUESTER)]
    assert billing.outbox("worklist") == []  # an act already done takes no images
    billing.drain("accounting")
    (dft,) = billing.accounting.parsed()
    assert [(r["national"], r["type"], r["date"], r["performed_by"], r["amount"], r["filler"])
            for r in ft1_rows(dft)] == [
        ("TC", "CG", "20240603^20240603", "810009999999", "23.00&EUR", accession),
        ("MPC", "CG", "20240603^20240603", "810009999999", "2.00&EUR", accession),
        ("MCS", "CG", "20240603^20240603", "810009999999", "5.00&EUR", accession)]
    assert dft.segment("FT1").extract_field(1, 20, 1, 2) == "DURAND"

    # Reported again under another MSH-10: a duplicate order, never a second charge.
    again = billing.send(order("PL-TC-1", service="TC^Téléconsultation^NGAP",
                               performed_at="20240603143000", attending=attending,
                               obx=(majoration(1, "MPC"),)))
    assert again.code == "AE" and again.errors[0].hl7_code == "205"
    assert len(billing.lines(accession)) == 3

    # Cancelled by the EHR: credited.
    assert billing.send(order("PL-TC-1", control="CA", service="TC^^NGAP")).code == "AA"
    assert [r["type"] for r in billing.lines(accession)] == ["CG"] * 3 + ["CD"] * 3


def test_gp_teleconsultation_today_bills_tcg_and_refuses_a_majoration_it_does_not_take(billing):
    ack = billing.send(order("PL-TC-2", service="TCG^Téléconsultation MG^NGAP",
                             obx=(majoration(1, "MCG"), majoration(2, "MCS"))))
    assert ack.code == "AA", [e.text for e in ack.errors]
    lines = billing.lines(_accession(billing, "PL-TC-2"))
    # No OBR-7: the act is dated by ORC-9 (20261124075500); no PV1-7: performed by ORC-12.
    assert [(r["code"], r["status"], r["act_date"], r["performed_by"]) for r in lines] == [
        ("TCG", "sent", "20261124", REQUESTER),
        ("MCG", "sent", "20261124", REQUESTER),
        ("MCS", "not_billable", "20261124", REQUESTER)]
    assert lines[2]["reason"] == "only MCG combines with TCG (GP teleconsultation)"


def test_teleconsultation_with_an_unknown_majoration_is_refused_at_its_obx(billing):
    ack = billing.send(order("PL-TC-3", service="TC^^NGAP", performed_at="20240603",
                             obx=(majoration(1, "XYZ"),)))
    assert ack.code == "AE"
    (err,) = ack.errors
    assert (err.hl7_code, err.location) == ("103", "OBX^1^5")
    assert _accession(billing, "PL-TC-3") is None


def test_teleconsultation_without_a_tariff_for_its_date_is_not_accepted_now(billing):
    # TC's amount after 2024-12-21 is not in ngap.toml: nothing is guessed, the EHR may resend.
    ack = billing.send(order("PL-TC-4", service="TC^^NGAP", performed_at="20260105"))
    assert ack.code == "AR"
    assert ack.errors[0].hl7_code == "207" and "no TC tariff" in ack.errors[0].text
    assert _accession(billing, "PL-TC-4") is None


def test_teleconsultation_with_embedded_images_is_refused(billing):
    obx = "OBX|1|ED|PHOTO^Photo^L||^IM^JPEG^Base64^/9j/4AAQ"
    ack = billing.send(order("PL-TC-5", service="TC^^NGAP", performed_at="20240603",
                             obx=(obx,)))
    assert ack.code == "AE" and ack.errors[0].location == "OBX^1^5"


def test_a_specialist_not_on_file_for_credits_keeps_the_name_sent_with_the_charge(billing):
    """Credits carry the performing doctor as charged (name and authority stored per line)."""
    ack = billing.send(order("PL-TC-6", service="TC^^NGAP", performed_at="20240603",
                             attending="810007777777^PETIT^Anne^^^^^^"
                                       "ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO"))
    assert ack.code == "AA", [e.text for e in ack.errors]
    accession = _accession(billing, "PL-TC-6")
    billing.send(order("PL-TC-6", control="CA", service="TC^^NGAP"))
    billing.drain("accounting")
    cg, cd = billing.accounting.parsed()
    assert str(cd.segment("FT1")(20)) == str(cg.segment("FT1")(20))
    assert "1.2.250.1.71.4.2.1" in str(cd.segment("FT1")(20))
    assert billing.lines(accession)[0]["performed_by_name"] == "PETIT^Anne"


def _status(billing: Billing, accession: str) -> str:
    with billing.services.store.engine.connect() as conn:
        return cases.load(conn, accession).status.value


def _accession(billing: Billing, placer: str) -> str | None:
    with billing.services.store.engine.connect() as conn:
        return cases.find_by_placer(conn, "DPI_HOPITAL|CHU_DEMO", placer)


def test_payload_of_a_csv_item_is_the_rendered_batch(billing):
    accession = billing.open_case("PL-CSV-1")
    got = billing.answer(accession)
    (item,) = billing.outbox("accounting-files")
    assert item["kind"] == "billing.csv"
    body = payload(item)
    assert body["control_id"] == got.dft_control_id
    billing.drain("accounting-files")
    assert (billing.drop / file_name(got.dft_control_id)).read_bytes() == \
        body["text"].encode("utf-8")
