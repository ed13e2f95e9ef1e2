"""Billing end to end on the running connector: orders over MLLP, photos and reports over HTTP,
a real Orthanc, a real SQLite file, a real accounting MLLP peer (messages read back with
python-hl7, field by field), a CSV drop folder, and `telederm billing report` run as a user
would, against what the peer acknowledged."""

from __future__ import annotations

import csv
import io
import json
import secrets
import subprocess
import sys

import httpx
import pytest

from connector.billing.csvfeed import file_name
from connector.billing.teleexpertise import credit_id
from connector.config import ApiSection, ApiToken, Destination
from connector.demo import demo_order, demo_photo, local_config
from connector.hl7.client import send_message
from connector.runtime.server import RunningConnector
from tests.support.cli import clean_env
from tests.support.orthanc import throwaway
from tests.support.peers import RecordingPeer
from tests.support.wait import wait_until

DEADLINE = 60
SPECIALIST = {"id": "810001234567", "name": "LEROY^Claire"}
REQUESTER = "801234567897"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("billing-e2e")
    token, requester_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    drop = work / "drop"
    config = throwaway(local_config(work, ehr_port=ehr.port, accounting_port=accounting.port,
                                    token=token, stable_age=1))
    config = config.model_copy(update={"destinations": config.destinations + (
        Destination(name="accounting-files", role="accounting", transport="file",
                    address=str(drop)),),
        "api": ApiSection(tokens=config.api.tokens + (
            ApiToken(name="ward", role="requester", token=requester_token),))})
    running = RunningConnector(config).start()
    api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    yield Env(running, api, ehr, accounting, work, drop, requester_token)
    api.close()
    running.stop()
    ehr.stop()
    accounting.stop()


class Env:
    def __init__(self, running, api, ehr, accounting, work, drop, requester_token):
        self.running, self.api, self.ehr, self.accounting = running, api, ehr, accounting
        self.work, self.drop, self.requester_token = work, drop, requester_token

    def send(self, text: str):
        return send_message("127.0.0.1", self.running.hl7_port, text)

    def answered_case(self, placer: str, patient: str) -> str:
        """Order over MLLP, one photo over HTTP, the specialist's final report."""
        text = demo_order(f"M-{placer}", placer).replace("IPP123456^", f"{patient}^", 1)
        assert self.send(text).code == "AA"
        (case,) = self.api.get("/api/cases", params={"placer_order_number": placer}).json()
        accession = case["accession"]
        r = self.api.post(f"/api/cases/{accession}/images",
                          files={"file": ("p.jpg", demo_photo(False), "image/jpeg")})
        assert r.status_code == 201, r.text
        wait_until(lambda: self.case(accession)["status"] == "READY", 60, "the case to be READY")
        r = self.api.post(f"/api/cases/{accession}/report", json={
            "text": "Naevus bénin.", "conduct": "no_visit", "specialist": SPECIALIST})
        assert r.status_code == 201, r.text
        return accession

    def case(self, accession: str) -> dict:
        return self.api.get(f"/api/cases/{accession}").json()

    def dfts(self, accession: str) -> list:
        return [m for m in self.accounting.parsed()
                if m.segment("FT1").extract_field(1, 23, 1, 1) == accession]

    def settled(self, accession: str) -> bool:
        """Every charge line of the case acknowledged (or not billable), nothing pending."""
        detail = self.case(accession)
        return (all(o["status"] == "done" for o in detail["outbox"]
                    if o["kind"] in ("hl7.send", "billing.csv"))
                and all(c["status"] in ("acknowledged", "not_billable")
                        for c in detail["charges"]))


def ft1s(message) -> list[dict]:
    out = []
    for ft1 in message.segments("FT1"):
        def f(n, c=1, s=1):
            return ft1.extract_field(1, n, 1, c, s)
        out.append({"set_id": f(1), "id": f(2), "from": f(4), "to": f(4, 2),
                    "posted": f(5), "type": f(6), "code": f(7), "label": f(7, 2),
                    "system": f(7, 3), "qty": f(10), "amount": f(11), "currency": f(11, 1, 2),
                    "unit": f(12), "dept": f(13), "performed_by": f(20),
                    "performed_family": f(20, 2), "ordered_by": f(21), "ordered_family": f(21, 2),
                    "filler": f(23), "national": f(25), "national_label": f(25, 2),
                    "national_system": f(25, 3)})
    return out


def test_final_report_reaches_the_accounting_peer_and_the_drop_folder_and_is_acknowledged(env):
    accession = env.answered_case("PL-BILL-1", "IPP-BILL-1")
    wait_until(lambda: env.dfts(accession), DEADLINE, "the DFT at the accounting peer")
    wait_until(lambda: env.settled(accession), DEADLINE, "the charges acknowledged")
    charges = env.case(accession)["charges"]
    assert [(c["code"], c["role"], c["type"], c["status"]) for c in charges] == [
        ("TE2", "requis", "CG", "acknowledged"), ("RQD", "requerant", "CG", "acknowledged")]
    day, control_id = charges[0]["act_date"], charges[0]["message_control_id"]
    assert control_id == f"DFT{accession}N1"

    (dft,) = env.dfts(accession)
    msh = dft.segment("MSH")
    assert (str(msh(9)), str(msh(10)), str(msh(12)), str(msh(3)), str(msh(4))) == (
        "DFT^P03^DFT_P03", control_id, "2.5", "TELEDERM_DEMO", "TELEDERM")
    assert str(dft.segment("EVN")(1)) == "P03"
    assert dft.extract_field("PID", 1, 3, 1, 1) == "IPP-BILL-1"
    assert dft.extract_field("PID", 1, 5, 1, 1) == "DUPONT"
    assert str(dft.segment("PV1")(2)) == "O"
    posted = str(dft.segment("EVN")(2))
    te2 = charges[0]["amount"]
    assert ft1s(dft) == [
        {"set_id": "1", "id": charges[0]["transaction_id"], "from": day, "to": day,
         "posted": posted, "type": "CG", "code": "TE2", "label": "Télé-expertise (requis)",
         "system": "NGAP", "qty": "1", "amount": te2, "currency": "EUR", "unit": te2,
         "dept": "", "performed_by": SPECIALIST["id"], "performed_family": "LEROY",
         "ordered_by": REQUESTER, "ordered_family": "MARTIN", "filler": accession,
         "national": "TE2", "national_label": "Télé-expertise (requis)",
         "national_system": "NGAP"},
        {"set_id": "2", "id": charges[1]["transaction_id"], "from": day, "to": day,
         "posted": posted, "type": "CG", "code": "RQD",
         "label": "Demande de télé-expertise (requérant)", "system": "NGAP", "qty": "1",
         "amount": "10.00", "currency": "EUR", "unit": "10.00", "dept": "",
         "performed_by": REQUESTER, "performed_family": "MARTIN", "ordered_by": REQUESTER,
         "ordered_family": "MARTIN", "filler": accession, "national": "RQD",
         "national_label": "Demande de télé-expertise (requérant)", "national_system": "NGAP"}]

    # The drop folder got the same batch as a CSV file named after the DFT's MSH-10.
    path = env.drop / file_name(control_id)
    wait_until(path.exists, DEADLINE, "the CSV file")
    rows = list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
    assert [(r["control_id"], r["line"], r["transaction_id"], r["transaction_type"],
             r["act_date"], r["posted_at"], r["charge_code"], r["national_code"], r["amount"],
             r["currency"], r["performed_by"], r["ordered_by"], r["filler_order_number"],
             r["patient_id"]) for r in rows] == [
        (control_id, x["set_id"], x["id"], x["type"], x["from"], x["posted"], x["code"],
         x["national"], x["amount"], x["currency"], x["performed_by"], x["ordered_by"],
         x["filler"], "IPP-BILL-1") for x in ft1s(dft)]


def test_fifth_act_for_the_same_patient_and_specialist_is_not_billable_and_not_sent(env):
    accessions = [env.answered_case(f"PL-LIM-{n}", "IPP-BILL-LIM") for n in range(1, 6)]
    for accession in accessions:
        wait_until(lambda: env.settled(accession), DEADLINE, f"{accession} settled")
    for accession in accessions[:4]:
        assert len(env.dfts(accession)) == 1
    assert env.dfts(accessions[4]) == []
    fifth = env.case(accessions[4])
    assert fifth["status"] == "ANSWERED"
    assert [(c["code"], c["status"], c["type"], c["message_control_id"])
            for c in fifth["charges"]] == [("TE2", "not_billable", "", ""),
                                           ("RQD", "not_billable", "", "")]
    assert fifth["charges"][0]["reason"] == ("yearly limit reached: 4 tele-expertises per year "
                                             "per requis for the same patient")
    assert "requérant" in fifth["charges"][1]["reason"]
    assert all(o["kind"] != "billing.csv" for o in fifth["outbox"])


def test_withdrawn_report_credits_exactly_what_was_charged(env):
    accession = env.answered_case("PL-WD-1", "IPP-BILL-WD")
    wait_until(lambda: env.settled(accession), DEADLINE, "the charges acknowledged")

    as_requester = env.api.post(f"/api/cases/{accession}/report/withdraw",
                                json={"reason": "wrong patient"},
                                headers={"Authorization": f"Bearer {env.requester_token}"})
    assert as_requester.status_code == 403
    empty = env.api.post(f"/api/cases/{accession}/report/withdraw", json={"reason": ""})
    assert empty.status_code == 422 and empty.json()["field"] == "reason"

    r = env.api.post(f"/api/cases/{accession}/report/withdraw", json={"reason": "wrong patient"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got == {"accession": accession, "status": "IN_REVIEW", "version": 1,
                   "oru_control_id": f"ORU{accession}W1",
                   "dft_control_id": f"DFT{accession}N2", "credits": 2}
    again = env.api.post(f"/api/cases/{accession}/report/withdraw", json={"reason": "again"})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")

    wait_until(lambda: len(env.dfts(accession)) == 2, DEADLINE, "the credit DFT")
    wait_until(lambda: env.settled(accession), DEADLINE, "the credits acknowledged")
    charged, credited = (ft1s(m) for m in env.dfts(accession))
    assert [c["type"] for c in credited] == ["CD", "CD"]
    assert [c["id"] for c in credited] == [credit_id(c["id"]) for c in charged]
    same = ("from", "to", "code", "label", "system", "qty", "amount", "currency", "unit", "dept",
            "performed_by", "performed_family", "ordered_by", "ordered_family", "filler",
            "national", "national_label", "national_system")
    assert [{k: c[k] for k in same} for c in credited] == [{k: c[k] for k in same}
                                                          for c in charged]
    lines = env.case(accession)["charges"]
    assert [(c["type"], c["status"], c["reason"]) for c in lines[2:]] == [
        ("CD", "acknowledged", "report withdrawn: wrong patient")] * 2

    # The requester's EHR was told the report is withdrawn (OBX-11 D).
    wait_until(lambda: any(str(m.segment("MSH")(10)) == got["oru_control_id"]
                           for m in env.ehr.parsed()), DEADLINE, "the withdrawal ORU")
    (oru,) = [m for m in env.ehr.parsed() if str(m.segment("MSH")(10)) == got["oru_control_id"]]
    assert {str(s(11)) for s in oru.segments("OBX")} == {"D"}
    assert str(oru.segment("OBR")(3)) == accession


def test_teleconsultation_reported_done_by_the_ehr_is_billed_at_once(env):
    text = demo_order("M-TC-1", "PL-TC-1").replace("IPP123456^", "IPP-BILL-TC^", 1)
    text = text.replace("TELEDERM^Télé-expertise dermatologie^L|R||",
                        "TC^Téléconsultation^NGAP|R||20240603")  # OBR-4 and OBR-7
    text += ("OBX|1|CE|MAJORATION^Majoration NGAP^L||MPC^^NGAP\r"
             "OBX|2|CE|MAJORATION^Majoration NGAP^L||MCS^^NGAP\r")
    ack = env.send(text)
    assert ack.code == "AA", [e.text for e in ack.errors]
    (case,) = env.api.get("/api/cases", params={"placer_order_number": "PL-TC-1"}).json()
    assert case["status"] == "ANSWERED"
    accession = case["accession"]
    wait_until(lambda: env.settled(accession) and env.dfts(accession), DEADLINE, "the TC DFT")
    (dft,) = env.dfts(accession)
    assert [(x["national"], x["type"], x["from"], x["amount"], x["performed_by"], x["filler"])
            for x in ft1s(dft)] == [
        ("TC", "CG", "20240603", "23.00", REQUESTER, accession),
        ("MPC", "CG", "20240603", "2.00", REQUESTER, accession),
        ("MCS", "CG", "20240603", "5.00", REQUESTER, accession)]


def test_billing_report_totals_match_what_the_peer_acknowledged(env):
    # Wait until everything queued so far is delivered and acknowledged.
    env.answered_case("PL-REPORT-1", "IPP-BILL-REPORT")
    accessions = [c["accession"] for c in env.api.get("/api/cases").json()]
    for accession in accessions:
        wait_until(lambda: env.settled(accession), DEADLINE, f"{accession} settled")
    not_billable = sum(c["status"] == "not_billable" for a in accessions
                       for c in env.case(a)["charges"])
    config = env.work / "telederm.toml"
    config.write_text(f'data_dir = "{env.work}"\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "connector.entrypoints.cli", "billing", "report",
                             "--from", "2000-01-01", "--to", "2099-12-31", "--config",
                             str(config)], capture_output=True, text=True, env=clean_env(),
                            timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    acknowledged = [x for m in env.accounting.parsed() for x in ft1s(m)]

    def cents(x):
        return int(x["amount"].replace(".", ""))

    charged = sum(cents(x) for x in acknowledged if x["type"] == "CG")
    credited = sum(cents(x) for x in acknowledged if x["type"] == "CD")
    assert report["by_status"]["acknowledged"] == len(acknowledged)
    assert report["by_status"]["sent"] == report["by_status"]["refused"] == 0
    assert report["total"]["charges"] == sum(x["type"] == "CG" for x in acknowledged)
    assert report["total"]["credits"] == sum(x["type"] == "CD" for x in acknowledged)
    assert report["total"]["charged"] == f"{charged // 100}.{charged % 100:02d}"
    assert report["total"]["credited"] == f"{credited // 100}.{credited % 100:02d}"
    for code in {x["national"] for x in acknowledged}:
        net = sum((1 if x["type"] == "CG" else -1) * cents(x) for x in acknowledged
                  if x["national"] == code)
        assert report["by_code"][code]["net"] == f"{net // 100}.{net % 100:02d}"
    assert report["by_status"]["not_billable"] == not_billable
