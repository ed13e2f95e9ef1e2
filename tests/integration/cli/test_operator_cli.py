"""Commands an operator relies on, run as a user runs them (a real subprocess): exit codes a
script can trust (`hl7 send` refused, `status` with problems, `import` of nothing), `cases` and
`messages` without patient data unless asked (and then audited), and `config check` warnings.
HL7 goes over real sockets to the connector's own intake on a real SQLite store; `status` asks
a real Orthanc."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from connector.bootstrap import build
from connector.config import load_config
from connector.runtime import worker
from connector.store.schema import audit
from tests.support.cli import EXAMPLE_DEVICES, one_error_line, telederm, write_config
from tests.support.inbound import Inbound, msh, order, segment, wire
from tests.support.peers import IntakePeer, RecordingPeer
from tests.support.wait import wait_until

NAME = "DUPONT"


@pytest.fixture
def site(tmp_path):
    """A config with an EHR peer that gets order status, the connector's intake listening,
    and its services."""
    ehr = RecordingPeer("ehr").start()
    config = write_config(tmp_path / "telederm.toml", tmp_path / "data", f"""
[[destinations]]
name = "ehr"
role = "requester"
address = "127.0.0.1:{ehr.port}"
order_status = "ORM^O01"
""")
    services = build(load_config(config, environ=EXAMPLE_DEVICES))
    intake = IntakePeer(services).start()
    yield config, services, intake, ehr
    intake.stop()
    ehr.stop()
    services.store.engine.dispose()


def _write(tmp_path, name: str, raw: bytes):
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def test_hl7_send_exits_1_naming_the_file_when_the_peer_answers_AE(site, tmp_path):
    config, services, intake, _ = site
    good = _write(tmp_path, "good.hl7", order("PL-OK"))
    bad = _write(tmp_path, "bad.hl7", wire(msh("ORM^O01^ORM_O01", "BAD-1"), "PV1|1|O",
                                           segment("ORC", {1: "NW", 2: "PL-BAD^DPI"})))
    accepted = telederm("hl7", "send", good, "--to", f"127.0.0.1:{intake.port}")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith(f"{good}: AA ")

    both = telederm("hl7", "send", good, bad, "--to", f"127.0.0.1:{intake.port}")
    line = one_error_line(both, 1)
    assert "bad.hl7" in line and "AE" in line
    assert f"{good}: AA" in both.stdout and f"{bad}: AE" in both.stdout  # both were sent


def test_cases_list_and_show_hide_the_patient_unless_asked_and_audit_it(site):
    config, services, intake, _ = site
    inbound = Inbound(services, None, None)
    accession = inbound.open_case("PL-CASES")
    inbound.open_case("PL-CASES-2", priority="S")

    listed = telederm("cases", "list", "--config", config)
    assert listed.returncode == 0, listed.stderr
    assert accession in listed.stdout and "PL-CASES" in listed.stdout
    assert listed.stdout.rstrip().endswith("2 of 2 case(s)")
    assert NAME not in listed.stdout and "IPP-1" not in listed.stdout
    only = telederm("cases", "list", "--priority", "stat", "--config", config)
    assert "PL-CASES-2" in only.stdout and accession not in only.stdout

    shown = telederm("cases", "show", accession, "--config", config)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["accession"] == accession and detail["placer_order_number"] == "PL-CASES"
    assert NAME not in shown.stdout and "IPP-1" not in shown.stdout
    assert "--show-patient-data" in detail["patient"]
    revealed = telederm("cases", "show", accession, "--show-patient-data", "--config", config)
    assert json.loads(revealed.stdout)["patient"]["name"] == "DUPONT^Hélène"
    with services.store.engine.connect() as conn:
        rows = conn.execute(select(audit.c.actor, audit.c.action, audit.c.accession)
                            .where(audit.c.action == "case.shown")).all()
    assert [(r.action, r.accession) for r in rows] == [("case.shown", accession)]
    assert rows[0].actor.startswith("cli:")

    missing = one_error_line(telederm("cases", "show", "TD-0000-999999", "--config", config), 2)
    assert "TD-0000-999999" in missing and "cases list" in missing


def test_messages_list_and_show_inbound_and_outbound_with_acks_without_patient_data(site):
    config, services, intake, ehr = site
    accession = Inbound(services, None, None).open_case("PL-MSG", control_id="CTRL-MSG-1")

    listed = telederm("messages", "list", "--config", config)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    inbound = next(line for line in lines if "CTRL-MSG-1" in line)
    assert inbound.startswith("in-1 ") and "ORM^O01" in inbound and " AA " in inbound
    outbound = [line for line in lines if line.startswith("out-")]
    assert outbound and all(" pending " in line and accession in line for line in outbound)
    assert NAME not in listed.stdout and "IPP-1" not in listed.stdout

    wait_until(lambda: worker.run_once(services) == 0 and len(ehr.messages) >= 1, 30,
               "the order status to reach the EHR")
    out_id = outbound[-1].split()[0]
    sent = json.loads(telederm("messages", "show", out_id, "--config", config).stdout)
    assert sent["status"] == "done" and sent["ack"] == "accepted" and sent["peer"] == "ehr"
    assert sent["segments"][0] == "MSH" and "PID" in sent["segments"]

    shown = telederm("messages", "show", "in-1", "--config", config)
    assert shown.returncode == 0, shown.stderr
    got = json.loads(shown.stdout)
    assert (got["type"], got["control_id"], got["ack"]) == ("ORM^O01", "CTRL-MSG-1", "AA")
    assert got["ack_sent"].startswith("MSH|") and "MSA|AA|CTRL-MSG-1" in got["ack_sent"]
    assert got["segments"][:2] == ["MSH", "PID"]
    assert NAME not in shown.stdout and "IPP-1" not in shown.stdout

    revealed = json.loads(telederm("messages", "show", "in-1", "--show-patient-data",
                                   "--config", config).stdout)
    assert "PID|1||IPP-1" in revealed["message"]
    with services.store.engine.connect() as conn:
        actions = conn.execute(select(audit.c.action, audit.c.detail)
                               .where(audit.c.action == "message.shown")).all()
    assert len(actions) == 1 and json.loads(actions[0].detail) == {"message": "in-1"}

    missing = one_error_line(telederm("messages", "show", "in-999", "--config", config), 2)
    assert "in-999" in missing


def test_messages_in_and_out_are_logged_at_info_by_type_and_control_id_only(site, caplog):
    config, services, intake, ehr = site
    with caplog.at_level(logging.INFO):
        Inbound(services, None, None).open_case("PL-LOG", control_id="CTRL-LOG-1")
        wait_until(lambda: worker.run_once(services) == 0 and len(ehr.messages) >= 1, 30,
                   "the order status to reach the EHR")
    text = caplog.text
    assert "ORM^O01 CTRL-LOG-1" in text
    sent = [r.getMessage() for r in caplog.records if r.name == "connector.worker"
            and "to ehr: accepted" in r.getMessage()]
    assert len(sent) == 1 and sent[0].startswith("ORM^O01 ST")
    assert NAME not in text and "Hélène" not in text and "IPP-1" not in text


def test_import_exits_2_with_one_line_when_the_folder_holds_no_file(tmp_path, site):
    config, *_ = site
    (tmp_path / "empty").mkdir()
    line = one_error_line(telederm("import", tmp_path / "empty", "--accession", "NO-SUCH",
                                   "--config", config), 2)
    assert "holds no file" in line and "empty" in line


def test_status_exits_1_with_one_line_per_problem_and_0_when_all_is_well(tmp_path, orthanc):
    down = write_config(tmp_path / "down.toml", tmp_path / "data")
    result = telederm("status", "--config", down)
    line = one_error_line(result, 1)
    assert line == "telederm: orthanc is unreachable"
    assert json.loads(result.stdout)["problems"] == ["orthanc is unreachable"]

    up = tmp_path / "up.toml"
    up.write_text(f"""data_dir = "{tmp_path / 'data'}"
[orthanc]
managed = false
url = "{orthanc.url}"
username = "{orthanc.username}"
password = "{orthanc.password}"
""", encoding="utf-8")
    well = telederm("status", "--config", up)
    assert well.returncode == 0, well.stderr
    assert json.loads(well.stdout)["problems"] == []


def test_config_check_warns_of_a_known_password_no_device_and_no_destination(tmp_path):
    config = tmp_path / "telederm.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[orthanc]\npassword = "change-me"\n',
                      encoding="utf-8")
    result = telederm("config", "check", "--config", config)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 6, result.stdout
    assert "orthanc.password is 'change-me'" in warnings[0]
    assert "no [[orthanc.modalities]]" in warnings[1]
    assert "no [[destinations]]" in warnings[2]
    assert "no [reports] signing_key/signing_cert" in warnings[3]
    assert "the SQLite store is not encrypted" in warnings[4]
    assert "written in clear" in warnings[5]

    keys = tmp_path / "keys"
    assert telederm("keys", "init", "--out", keys).returncode == 0

    fixed = write_config(tmp_path / "fixed.toml", tmp_path / "data", f"""
[[orthanc.modalities]]
name = "dermatoscope"
ae_title = "DERMOCAM"
host = "127.0.0.1"
port = 104
[[destinations]]
name = "ehr"
role = "requester"
address = "127.0.0.1:6661"
[reports]
signing_key = "{keys / 'signing-key.pem'}"
signing_cert = "{keys / 'signing-cert.pem'}"
[database]
key_file = "{keys / 'database.key'}"
[storage]
key_file = "{keys / 'storage.keys'}"
""")
    quiet = telederm("config", "check", "--config", fixed)
    assert [line for line in quiet.stdout.splitlines() if line.startswith("warning: ")] == []


def test_config_check_warns_of_an_api_on_the_network_over_plain_http(tmp_path, pki):
    plain = tmp_path / "plain.toml"
    plain.write_text(f'data_dir = "{tmp_path / "data"}"\n[http]\nlisten = "0.0.0.0:8780"\n',
                     encoding="utf-8")
    result = telederm("config", "check", "--config", plain)
    assert result.returncode == 0, result.stderr
    assert "[http] listen = 0.0.0.0:8780 is reachable from the network over plain HTTP" in (
        result.stdout)
    tls = tmp_path / "tls.toml"
    tls.write_text(plain.read_text(encoding="utf-8") + f'cert_file = "{pki.server_cert}"\n'
                   f'key_file = "{pki.server_key}"\n', encoding="utf-8")
    result = telederm("config", "check", "--config", tls)
    assert result.returncode == 0, result.stderr
    assert "plain HTTP" not in result.stdout


def test_config_check_warns_of_a_specialist_token_bound_to_no_practitioner(tmp_path):
    tokens = ('[[api.tokens]]\nname = "shared-derm"\nrole = "specialist"\ntoken = "s1"\n'
              '[[api.tokens]]\nname = "dr-leroy"\nrole = "specialist"\ntoken = "s2"\n'
              'practitioner_id = "810001234567"\n')
    config = write_config(tmp_path / "telederm.toml", tmp_path / "data", tokens)
    result = telederm("config", "check", "--config", config)
    assert result.returncode == 0, result.stderr
    bound = [line for line in result.stdout.splitlines() if "bound to no practitioner" in line]
    assert len(bound) == 1 and "shared-derm" in bound[0], result.stdout
