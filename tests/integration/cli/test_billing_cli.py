"""`telederm billing explain` and `telederm billing report` as a user runs them (a real
subprocess), and the billing lines of `telederm config check`; the report reads a real SQLite
store filled through the connector's own workflow steps."""

from __future__ import annotations

import csv
import io
import json

from connector.billing.engine import explain
from connector.billing.reconcile import reconcile
from connector.config import load_config
from connector.domain.model import PersonName, Practitioner
from connector.store import cases, queries
from connector.workflow import record_report, withdraw_report
from connector.workflow.commands import RecordReport, WithdrawReport
from connector.entrypoints import hl7_intake
from connector.bootstrap import build
from connector.runtime import worker
from tests.support.cli import EXAMPLE_DEVICES, one_error_line, telederm, write_config
from tests.support.peers import RecordingPeer
from tests.support.services import archive_holds
from tests.support.wait import wait_until

ACT = {"kind": "teleexpertise", "date": "2026-03-02", "patient": "P1", "requester": "R1",
       "specialist": "S1", "requester_site": "EHPAD", "specialist_site": "CHU",
       "patient_hospitalised": False,
       "prior_acts": [{"kind": "teleexpertise", "date": f"2026-02-0{d}", "requester": "R1",
                       "specialist": "S1"} for d in (1, 2, 3, 4)]}


def test_billing_explain_prints_what_the_act_would_bill_as_json(tmp_path):
    path = tmp_path / "act.json"
    path.write_text(json.dumps(dict(ACT, prior_acts=[])), encoding="utf-8")
    result = telederm("billing", "explain", path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "charges": [{"code": "TE2", "role": "requis", "amount": "23.00", "type": "CG"},
                    {"code": "RQD", "role": "requerant", "amount": "10.00", "type": "CG"}],
        "not_billable": []}


def test_billing_explain_gives_the_reason_when_the_yearly_limit_is_reached(tmp_path):
    path = tmp_path / "act.json"
    path.write_text(json.dumps(ACT), encoding="utf-8")
    result = telederm("billing", "explain", path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out == explain(ACT) and out["charges"] == []
    assert [(n["code"], n["role"]) for n in out["not_billable"]] == [("TE2", "requis"),
                                                                    ("RQD", "requerant")]
    assert all(n["reason"].startswith("yearly limit reached") for n in out["not_billable"])


def test_billing_explain_uses_the_mappings_of_the_config(tmp_path):
    config = write_config(tmp_path / "telederm.toml", tmp_path / "data")
    path = tmp_path / "act.json"
    path.write_text(json.dumps(dict(ACT, prior_acts=[])), encoding="utf-8")
    result = telederm("billing", "explain", path, "--config", config)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["charges"][0]["code"] == "TE2"


def test_billing_explain_exits_2_with_one_line_naming_the_bad_field(tmp_path):
    path = tmp_path / "act.json"
    path.write_text(json.dumps(dict(ACT, date="02/03/2026")), encoding="utf-8")
    assert "(date)" in one_error_line(telederm("billing", "explain", path), 2)
    path.write_text(json.dumps(dict(ACT, colour="red")), encoding="utf-8")
    assert "colour" in one_error_line(telederm("billing", "explain", path), 2)
    path.write_text("{not json", encoding="utf-8")
    assert "is not JSON" in one_error_line(telederm("billing", "explain", path), 2)
    line = one_error_line(telederm("billing", "explain", tmp_path / "absent.json"), 2)
    assert "absent.json" in line
    assert "ACT.json" in one_error_line(telederm("billing", "explain"), 2)


def test_billing_report_exits_2_with_one_line_when_a_date_is_malformed(tmp_path):
    config = write_config(tmp_path / "telederm.toml", tmp_path / "data")
    line = one_error_line(telederm("billing", "report", "--from", "2026-13-01", "--to",
                                   "2026-12-31", "--config", config), 2)
    assert "--from" in line
    line = one_error_line(telederm("billing", "report", "--from", "2026-02-01", "--to",
                                   "2026-01-01", "--config", config), 2)
    assert "--to" in line


def _fill_store(config_path, deliver=None):
    """Three acts through the workflow: two answered tele-expertises for one patient (one
    withdrawn, so credited), one whose patient is hospitalised (not billable); then
    `deliver(services)`, when given, before the charge rows are read."""
    services = build(load_config(config_path, environ=EXAMPLE_DEVICES))
    specialist = Practitioner("810001234567", PersonName("LEROY", "Claire"))
    accessions = []
    for n, patient_class in ((1, "O"), (2, "O"), (3, "I")):
        raw = (f"MSH|^~\\&|DPI|CHU_DEMO|TELEDERM|TELEDERM|20261124080000||ORM^O01^ORM_O01|C{n}|P|"
               f"2.5\rPID|1||IPP-CLI^^^CHU_DEMO^PI||DUPONT^Hélène||19580312|F\r"
               f"PV1|1|{patient_class}\r"
               f"ORC|NW|PL-CLI-{n}||||||||||801234567897^MARTIN^Jean\r"
               "OBX|1|CWE|CONSENT^Consentement^L||Y||||||F\r").encode()
        assert b"MSA|AA" in hl7_intake.handle(services, raw, "test")
        with services.store.engine.connect() as conn:
            accession = cases.find_by_placer(conn, "DPI|CHU_DEMO", f"PL-CLI-{n}")
        archive_holds(services, accession)
        with services.unit() as uow:
            record_report.handle(RecordReport(accession, "Avis.", "no_visit", specialist, "test"),
                                 uow)
        accessions.append(accession)
    with services.unit() as uow:
        withdraw_report.handle(WithdrawReport(accessions[1], "doublon", "test"), uow)
    if deliver is not None:
        deliver(services)
    with services.store.engine.connect() as conn:
        rows = queries.charge_rows(conn)
    services.store.engine.dispose()
    return rows


def test_billing_report_counts_nothing_as_billed_when_no_accounting_destination_got_it(tmp_path):
    config = write_config(tmp_path / "telederm.toml", tmp_path / "data")
    rows = _fill_store(config)
    day = rows[0]["act_date"]
    iso = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    result = telederm("billing", "report", "--from", iso, "--to", iso, "--config", config)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == reconcile(rows, date_from=iso, date_to=iso).to_dict()
    te2 = rows[0]["amount_cents"]
    assert report["acts"] == 3
    assert report["by_status"] == {"sent": 0, "acknowledged": 0, "pending": 0,
                                   "undelivered": 6, "refused": 0, "not_billable": 2}
    assert report["total"]["net"] == "0.00"
    assert report["not_delivered"]["charges"] == 4 and report["not_delivered"]["credits"] == 2
    net = te2 + 1000
    assert report["not_delivered"]["net"] == f"{net // 100}.{net % 100:02d}"
    ((reason, count),) = report["not_billable"].items()  # one exclusion, both roles
    assert count == 2 and "hospitalised" in reason

    as_csv = telederm("billing", "report", "--from", iso, "--to", iso, "--csv",
                      "--config", config)
    assert as_csv.returncode == 0, as_csv.stderr
    table = list(csv.reader(io.StringIO(as_csv.stdout, newline="")))
    assert table[0] == ["section", "key", "lines", "charges", "credits", "charged", "credited",
                        "net"]
    assert ["not_delivered", "", "6", "4", "2"] == table[[r[0] for r in table].index(
        "not_delivered")][:5]

    # A period without acts: everything zero.
    empty = telederm("billing", "report", "--from", "2020-01-01", "--to", "2020-01-31",
                     "--config", config)
    assert json.loads(empty.stdout)["lines"] == 0


def test_billing_report_counts_what_the_peer_acknowledged_and_not_a_discarded_dft(tmp_path):
    peer = RecordingPeer("accounting").start()
    try:
        config = write_config(tmp_path / "telederm.toml", tmp_path / "data", f"""
[[destinations]]
name = "accounting"
role = "accounting"
address = "127.0.0.1:{peer.port}"
""")

        def deliver(services):
            with services.reading() as uow:
                (credit,) = [i for i in uow.outbox.items() if i["kind"] == "hl7.send"][:1]
            discarded = telederm("queue", "discard", credit["id"], "--reason", "test",
                                 "--config", config)
            assert discarded.returncode == 0, discarded.stderr
            wait_until(lambda: worker.run_once(services) == 0, 30, "the DFTs to be delivered")

        rows = _fill_store(config, deliver)
    finally:
        peer.stop()
    assert len(peer.messages) == 2  # the two charge batches; the credit batch was discarded
    day = rows[0]["act_date"]
    iso = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    report = json.loads(telederm("billing", "report", "--from", iso, "--to", iso,
                                 "--config", config).stdout)
    assert report["by_status"] == {"sent": 0, "acknowledged": 4, "pending": 0,
                                   "undelivered": 2, "refused": 0, "not_billable": 2}
    te2 = rows[0]["amount_cents"]
    net = 2 * (te2 + 1000)
    assert report["total"] == {"charges": 4, "credits": 0, "charged": f"{net // 100}."
                               f"{net % 100:02d}", "credited": "0.00",
                               "net": f"{net // 100}.{net % 100:02d}"}
    assert report["not_delivered"]["credits"] == 2


def test_config_check_shows_the_billing_rules_and_facilities(tmp_path):
    config = write_config(tmp_path / "telederm.toml", tmp_path / "data", """
[facility]
id = "EXAMPLE_CHU"
[[destinations]]
name = "compta-files"
role = "accounting"
transport = "file"
address = "drop"
""")
    result = telederm("config", "check", "--config", config)
    assert result.returncode == 0, result.stderr
    billing_line = result.stdout.splitlines()[1]
    assert billing_line.startswith("billing ok: ")
    assert "limits" in billing_line and "'EXAMPLE_CHU', 'TELEDERM'" in billing_line
    assert billing_line.endswith("billed as EXAMPLE_CHU")
    assert load_config(config, environ=EXAMPLE_DEVICES).destinations[0].folder == tmp_path / "drop"
