"""`telederm audit verify` and `audit list` on a real SQLite file: the chain is keyed with a key
outside the database and anchored by signed checkpoints outside it, so a deleted tail, an
emptied table, an edited, inserted or re-chained row and a forged checkpoint are all caught;
a case read through the API is in the list."""

from __future__ import annotations

import hashlib
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, select, update

from connector.bootstrap import build
from connector.config import load_config
from connector.entrypoints.api.app import create_app
from connector.store import audit as chain
from connector.store.schema import audit
from tests.support.cli import EXAMPLE_DEVICES, one_error_line, telederm, write_config
from tests.support.inbound import Inbound

TOKEN = "requester-secret-for-audit-tests"


@pytest.fixture
def site(tmp_path):
    """A config file, its services, two cases opened by HL7 orders, and one checkpoint."""
    config = write_config(tmp_path / "telederm.toml", tmp_path / "data", f"""
[[api.tokens]]
name = "ehr-app"
role = "requester"
token = "{TOKEN}"
""")
    services = build(load_config(config, environ=EXAMPLE_DEVICES))
    inbound = Inbound(services, None, None)
    accessions = [inbound.open_case("PL-AUDIT-1"), inbound.open_case("PL-AUDIT-2")]
    _checkpoint(services)
    yield config, services, accessions
    services.store.engine.dispose()


def _checkpoint(services) -> None:
    with services.reading() as uow:
        assert services.anchor.checkpoint(uow, services.moment().iso)


def _rows(services):
    with services.store.engine.connect() as conn:
        return conn.execute(select(audit).order_by(audit.c.id)).all()


def _tampered(config) -> str:
    """The one line `audit verify` prints when it finds the trail tampered with."""
    return one_error_line(telederm("audit", "verify", "--config", config), 1)


def test_verify_says_intact_with_the_checkpoints_it_read(site):
    config, services, _ = site
    result = telederm("audit", "verify", "--config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"audit chain intact: {len(_rows(services))} rows, "
                                    "1 checkpoint(s)")


def test_a_deleted_tail_is_caught_by_the_checkpoint(site):
    config, services, _ = site
    last = _rows(services)[-1]
    with services.store.engine.begin() as conn:
        conn.execute(delete(audit).where(audit.c.id >= last.id - 1))
    assert f"row {last.id}" in _tampered(config) and "deleted" in _tampered(config)


def test_an_emptied_table_is_caught_by_the_checkpoint(site):
    config, services, _ = site
    with services.store.engine.begin() as conn:
        conn.execute(delete(audit))
    assert "deleted" in _tampered(config)


def test_an_edited_row_is_caught_by_the_keyed_chain(site):
    config, services, _ = site
    row = _rows(services)[1]
    with services.store.engine.begin() as conn:
        conn.execute(update(audit).where(audit.c.id == row.id).values(actor="someone-else"))
    assert f"row {row.id} does not verify" in _tampered(config)


def test_an_inserted_row_is_caught_by_the_keyed_chain(site):
    config, services, _ = site
    last = _rows(services)[-1]
    with services.store.engine.begin() as conn:
        conn.execute(insert(audit).values(at=last.at, actor="system", action="case.closed",
                                          detail="{}", prev_hash=last.hash, hash="0" * 64))
    assert f"row {last.id + 1} does not verify" in _tampered(config)


def test_a_chain_rewritten_without_the_key_is_caught(site):
    """Edit a row and recompute every hash after it, as plain SHA-256 (the key is not in the
    database): the first row no longer verifies, and the checkpoint's row differs."""
    config, services, _ = site
    rows = _rows(services)
    prev = chain.GENESIS
    with services.store.engine.begin() as conn:
        for row in rows:
            actor = "forged" if row.id == rows[0].id else row.actor
            body = json.dumps([prev, row.at, actor, row.action, row.accession or "",
                               row.detail], ensure_ascii=False)
            digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
            conn.execute(update(audit).where(audit.c.id == row.id).values(
                actor=actor, prev_hash=prev, hash=digest))
            prev = digest
    line = _tampered(config)
    assert f"row {rows[0].id} does not verify" in line and "1 more problem" in line


def test_a_forged_checkpoint_is_caught(site):
    config, services, _ = site
    path = services.anchor.path
    point = json.loads(path.read_text().splitlines()[-1])
    path.write_text(path.read_text() + json.dumps({**point, "id": 1}) + "\n")
    assert "checkpoint line 2 is not signed" in _tampered(config)


def test_the_audit_key_is_outside_the_database_and_readable_by_the_connector_only(site):
    config, services, _ = site
    key = (services.config.data_dir / "audit.key")
    assert key.stat().st_mode & 0o777 == 0o600
    assert oct(services.anchor.path.stat().st_mode & 0o777) == "0o600"
    database = (services.config.data_dir / "telederm.db").read_bytes()
    assert key.read_bytes().strip() not in database


def test_a_case_read_through_the_api_is_listed_with_who_and_from_where(site):
    config, services, (accession, other) = site
    with TestClient(create_app(services)) as api:
        r = api.get(f"/api/cases/{accession}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
    listed = telederm("audit", "list", "--accession", accession, "--format", "json",
                      "--config", config)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {row["accession"] for row in rows} == {accession}
    (read,) = [row for row in rows if row["action"] == "case.read"]
    assert read["actor"] == "requester:ehr-app"
    assert read["detail"] == {"via": "api", "what": "case", "from": "testclient"}

    table = telederm("audit", "list", "--since", read["at"], "--config", config)
    assert table.returncode == 0, table.stderr
    assert "case.read" in table.stdout and other not in table.stdout
    assert table.stdout.rstrip().endswith("1 row(s)")
    assert "DUPONT" not in listed.stdout + table.stdout


def test_a_list_of_cases_is_in_the_trail_with_its_filters_named_not_their_values(site):
    config, services, (accession, _) = site
    with TestClient(create_app(services)) as api:
        r = api.get("/api/cases", params={"patient_id": "IPP-SECRET-42", "status": "OPEN"},
                    headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
    listed = telederm("audit", "list", "--format", "json", "--config", config)
    assert listed.returncode == 0, listed.stderr
    row = [row for row in json.loads(listed.stdout) if row["action"] == "cases.listed"][-1]
    assert row["actor"] == "requester:ehr-app" and row["accession"] in ("", None)
    assert row["detail"] == {"via": "api", "count": 0, "filters": ["patient_id", "status"],
                             "from": "testclient"}
    assert "IPP-SECRET-42" not in listed.stdout


def test_audit_list_refuses_a_since_that_is_no_date(site):
    config, _, _ = site
    line = one_error_line(telederm("audit", "list", "--since", "yesterday", "--config", config), 2)
    assert "'yesterday' is not a date" in line
