"""The billing feed end to end on real parts: acts evaluated by the engine with the shipped
rules, DFT^P03 sent over MLLP to a real accounting peer (read back with python-hl7, field by
field), the same batches dropped as CSV files, and the reconciliation of what was recorded."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest

from connector.billing import csvfeed
from connector.billing.csvfeed import file_name
from connector.billing.engine import (Act, PriorAct, credits_for, evaluate, labels_for,
                                      load_shipped, pending)
from connector.billing.facilities import load_facilities
from connector.billing.reconcile import reconcile, render_csv
from connector.domain.model import Order, Patient, PersonName, Practitioner
from connector.hl7.client import check_delivery, send_message
from connector.hl7.dft import build_dft
from tests.support.peers import RecordingPeer

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings" / "billing"
NGAP, RULES = load_shipped(MAPPINGS)
FACILITIES = load_facilities(MAPPINGS / "facilities.toml", tariffs=NGAP)
REQ = Practitioner("801234567897", PersonName("MARTIN", "Jean"), "1.2.250.1.71.4.2.1")
SPEC = Practitioner("810001234567", PersonName("LEROY", "Claire"), "1.2.250.1.71.4.2.1")
PATIENT = Patient("IPP123456", PersonName("DUPONT", "Hélène"), issuer="CHU_DEMO",
                  birth_date="19580312", sex="F")
ORDER = Order(sender="DPI_HOPITAL", placer_order_number="PL-1", patient=PATIENT, requester=REQ,
              question="Mélanome ?")


class Feed:
    """What post_charges will do, in memory: record once, send a DFT, drop a CSV, keep status."""

    def __init__(self, peer_port: int, drop: Path):
        self.port, self.drop = peer_port, drop
        self.rows: dict[str, dict] = {}  # transaction id -> charge row, as the store keeps it
        self.batches = 0

    def post(self, accession: str, charges, facility_id: str, now: str) -> str | None:
        new = pending(charges, set(self.rows))
        if not new:
            return None
        self.batches += 1
        control_id = f"DFT{accession}N{self.batches}"
        facility = FACILITIES.get(facility_id)
        args = dict(control_id=control_id, now=now, order=ORDER, accession=accession,
                    charges=new, facility=facility, labels=labels_for(new, NGAP))
        for c in new:
            self.rows[c.transaction_id] = {
                "transaction_id": c.transaction_id, "accession": accession, "code": c.code,
                "role": c.role, "type": c.type, "amount_cents": c.amount_cents,
                "act_date": c.act_date, "performed_by": c.performed_by.id, "status": "sent",
                "reason": ""}
        text = build_dft(sending=("TELEDERM", "TELEDERM"), receiving=("COMPTA", "CHU_DEMO"),
                         **args)
        ack = send_message("127.0.0.1", self.port, text, timeout=10)
        check_delivery(ack, control_id)
        csvfeed.drop(self.drop, control_id=control_id, text=csvfeed.render_csv(**args))
        for c in new:
            self.rows[c.transaction_id]["status"] = "acknowledged"
        return control_id

    def not_billable(self, accession: str, act: Act, evaluation) -> None:
        for n in evaluation.not_billable:
            key = f"{accession}|{n.code}|{n.role}"
            self.rows[key] = {"transaction_id": key, "accession": accession, "code": n.code,
                              "role": n.role, "type": "", "amount_cents": 0,
                              "act_date": act.act_date, "performed_by": act.specialist.id,
                              "status": "not_billable", "reason": n.reason}


def te(accession: str, day: dt.date, **extra) -> Act:
    return Act(kind="teleexpertise", date=day, patient=PATIENT.id, requester=REQ, specialist=SPEC,
               requester_site="EHPAD-LES-PINS", specialist_site="CHU-DERMATO",
               patient_hospitalised=False, accession=accession, **extra)


@pytest.fixture
def feed(tmp_path):
    peer = RecordingPeer("accounting").start()
    yield Feed(peer.port, tmp_path / "drop"), peer
    peer.stop()


def test_acts_reach_the_accounting_peer_and_the_drop_folder_exactly_once(feed):
    feed, peer = feed
    ft1s = []

    # 1. A tele-expertise answered on 2026-01-05: TE2 23 € + RQD 10 € for TELEDERM (amounts).
    a1 = te("TD-2026-000001", dt.date(2026, 1, 5))
    e1 = evaluate(a1, tariffs=NGAP, rules=RULES)
    sent = feed.post(a1.accession, e1.charges, "TELEDERM", "20260105101500")
    assert sent == "DFTTD-2026-000001N1"
    # The same final report replayed, then corrected: nothing new is sent.
    assert feed.post(a1.accession, evaluate(a1, tariffs=NGAP, rules=RULES).charges, "TELEDERM",
                     "20260105101600") is None
    corrected = te("TD-2026-000001", dt.date(2026, 1, 7))
    assert feed.post(a1.accession, evaluate(corrected, tariffs=NGAP, rules=RULES).charges,
                     "TELEDERM", "20260107090000") is None

    # 2. A second act, then cancelled after billing: CG then CD for exactly what was charged.
    a2 = te("TD-2026-000002", dt.date(2026, 1, 12))
    e2 = evaluate(a2, tariffs=NGAP, rules=RULES)
    feed.post(a2.accession, e2.charges, "TELEDERM", "20260112110000")
    feed.post(a2.accession, credits_for(e2.charges), "TELEDERM", "20260113080000")
    assert feed.post(a2.accession, credits_for(e2.charges), "TELEDERM", "20260113080100") is None

    # 3. A fifth act of the year with the same doctors and patient: not billable, not sent.
    prior = tuple(PriorAct("teleexpertise", dt.date(2026, 1, d), REQ.id, SPEC.id)
                  for d in (5, 6, 7, 8))
    a3 = te("TD-2026-000003", dt.date(2026, 1, 20), prior_acts=prior)
    e3 = evaluate(a3, tariffs=NGAP, rules=RULES)
    assert e3.charges == []
    feed.not_billable(a3.accession, a3, e3)

    # 4. A specialist teleconsultation with MPC + MCS at a facility that prices acts itself.
    a4 = Act(kind="teleconsultation", date=dt.date(2024, 6, 3), patient=PATIENT.id,
             requester=REQ, specialist=SPEC, requester_site="", specialist_site="",
             patient_hospitalised=False, majorations=("MPC", "MCS"), accession="TD-2024-000004")
    feed.post(a4.accession, evaluate(a4, tariffs=NGAP, rules=RULES).charges, "EXAMPLE_CHU",
              "20240603160000")

    # What the accounting peer received, field by field.
    msgs = peer.parsed()
    assert [str(m.segment("MSH")(10)) for m in msgs] == [
        "DFTTD-2026-000001N1", "DFTTD-2026-000002N2", "DFTTD-2026-000002N3",
        "DFTTD-2024-000004N4"]
    for m in msgs:
        assert str(m.segment("MSH")(9)) == "DFT^P03^DFT_P03" and str(m.segment("EVN")(1)) == "P03"
        assert m.extract_field("PID", 1, 3, 1, 1) == "IPP123456"
        assert str(m.segment("PV1")(2)) == "O"
        for ft1 in m.segments("FT1"):
            f = lambda n, c=1: ft1.extract_field(1, n, 1, c)  # noqa: E731
            ft1s.append((str(m.segment("MSH")(10)), str(ft1(2)), str(ft1(4)), str(ft1(6)),
                         str(ft1(7)), str(ft1(11)), str(ft1(13)), f(20), f(21), str(ft1(23)),
                         f(25)))
    te2, rqd = e1.charges
    te2b, rqdb = e2.charges
    cd_te2, cd_rqd = credits_for(e2.charges)
    tc_lines = evaluate(a4, tariffs=NGAP, rules=RULES).charges
    assert ft1s == [
        ("DFTTD-2026-000001N1", te2.transaction_id, "20260105^20260105", "CG",
         "TE2^Télé-expertise (requis)^NGAP", "23.00&EUR", "", SPEC.id, REQ.id,
         "TD-2026-000001", "TE2"),
        ("DFTTD-2026-000001N1", rqd.transaction_id, "20260105^20260105", "CG",
         "RQD^Demande de télé-expertise (requérant)^NGAP", "10.00&EUR", "", REQ.id, REQ.id,
         "TD-2026-000001", "RQD"),
        ("DFTTD-2026-000002N2", te2b.transaction_id, "20260112^20260112", "CG",
         "TE2^Télé-expertise (requis)^NGAP", "23.00&EUR", "", SPEC.id, REQ.id,
         "TD-2026-000002", "TE2"),
        ("DFTTD-2026-000002N2", rqdb.transaction_id, "20260112^20260112", "CG",
         "RQD^Demande de télé-expertise (requérant)^NGAP", "10.00&EUR", "", REQ.id, REQ.id,
         "TD-2026-000002", "RQD"),
        ("DFTTD-2026-000002N3", cd_te2.transaction_id, "20260112^20260112", "CD",
         "TE2^Télé-expertise (requis)^NGAP", "23.00&EUR", "", SPEC.id, REQ.id,
         "TD-2026-000002", "TE2"),
        ("DFTTD-2026-000002N3", cd_rqd.transaction_id, "20260112^20260112", "CD",
         "RQD^Demande de télé-expertise (requérant)^NGAP", "10.00&EUR", "", REQ.id, REQ.id,
         "TD-2026-000002", "RQD"),
        ("DFTTD-2024-000004N4", tc_lines[0].transaction_id, "20240603^20240603", "CG",
         "TLC-TC^Téléconsultation spécialiste^99CHU", "", "UF4510", SPEC.id, REQ.id,
         "TD-2024-000004", "TC"),
        ("DFTTD-2024-000004N4", tc_lines[1].transaction_id, "20240603^20240603", "CG",
         "MAJ-MPC^Majoration MPC^99CHU", "", "UF4510", SPEC.id, REQ.id, "TD-2024-000004", "MPC"),
        ("DFTTD-2024-000004N4", tc_lines[2].transaction_id, "20240603^20240603", "CG",
         "MAJ-MCS^Majoration MCS^99CHU", "", "UF4510", SPEC.id, REQ.id, "TD-2024-000004", "MCS"),
    ]
    assert len({line[1] for line in ft1s}) == len(ft1s)  # every FT1-2 once

    # The drop folder holds one CSV per DFT, named after its control id, with the same lines.
    names = sorted(p.name for p in feed.drop.iterdir())
    assert names == sorted(file_name(str(m.segment("MSH")(10))) for m in msgs)
    dropped = []
    for m in msgs:
        path = feed.drop / file_name(str(m.segment("MSH")(10)))
        dropped += [(r["control_id"], r["transaction_id"], r["transaction_type"],
                     r["national_code"], r["amount"], r["department"])
                    for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"),
                                                        newline=""))]
    assert dropped == [(line[0], line[1], line[3], line[10],
                        line[5].removesuffix("&EUR"), line[6]) for line in ft1s]

    # The reconciliation of January 2026 matches what the peer acknowledged.
    report = reconcile(feed.rows.values(), date_from="2026-01-01", date_to="2026-01-31").to_dict()
    assert report["acts"] == 3 and report["lines"] == 8
    assert report["by_status"] == {"sent": 0, "acknowledged": 6, "pending": 0,
                                   "undelivered": 0, "refused": 0, "not_billable": 2}
    assert report["total"] == {"charges": 4, "credits": 2, "charged": "66.00",
                               "credited": "33.00", "net": "33.00"}
    assert report["by_code"]["TE2"]["net"] == "23.00" and report["by_code"]["RQD"]["net"] == "10.00"
    assert report["by_doctor"][SPEC.id]["net"] == "23.00"
    assert report["by_doctor"][REQ.id]["net"] == "10.00"
    assert sorted(report["not_billable"].values()) == [1, 1]
    peer_net = sum((1 if line[3] == "CG" else -1) * int(line[5].removesuffix("&EUR")
                                                        .replace(".", ""))
                   for line in ft1s if line[0].startswith("DFTTD-2026"))
    assert f"{peer_net // 100}.{peer_net % 100:02d}" == report["total"]["net"]
    assert "total,,6,4,2,66.00,33.00,33.00" in render_csv(
        reconcile(feed.rows.values(), date_from="2026-01-01", date_to="2026-01-31"))
