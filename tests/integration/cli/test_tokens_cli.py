"""`telederm tokens create|list|revoke`: a token is printed once, kept as a digest only, used by
the API beside the config's tokens with its role, and refused once expired or revoked."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from connector.bootstrap import build
from connector.config import load_config
from connector.entrypoints.api.app import create_app
from tests.support.cli import EXAMPLE_DEVICES, one_error_line, telederm, write_config


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "telederm.toml", tmp_path / "data")


def _create(config, name: str, *args: str) -> str:
    made = telederm("tokens", "create", name, *args, "--config", config)
    assert made.returncode == 0, made.stderr
    assert "not shown again" in made.stderr
    (secret,) = made.stdout.split()
    return secret


def _status(config, secret: str, path: str = "/api/cases", *, days_later: float = 0) -> int:
    services = build(load_config(config, environ=EXAMPLE_DEVICES))
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days_later)
    services.clock = lambda: later
    try:
        with TestClient(create_app(services)) as api:
            return api.get(path, headers={"Authorization": f"Bearer {secret}"}).status_code
    finally:
        services.store.close()


def test_a_created_token_works_with_its_role_until_revoked(config, tmp_path):
    secret = _create(config, "ehr-cardio", "--role", "requester", "--scope", "*")
    assert secret.startswith("tdt_") and len(secret) > 40
    assert _status(config, secret) == 200
    assert _status(config, secret, "/api/stats") == 403  # a requester does not read stats
    assert secret.encode() not in (tmp_path / "data" / "telederm.db").read_bytes()

    (row, total) = telederm("tokens", "list", "--config", config).stdout.splitlines()
    assert row.split()[:2] == ["ehr-cardio", "requester"] and row.split()[-2:] == ["active", "*"]
    assert secret not in row and total == "1 token(s)"

    revoked = telederm("tokens", "revoke", "ehr-cardio", "--config", config)
    assert revoked.returncode == 0, revoked.stderr
    assert _status(config, secret) == 401
    assert telederm("tokens", "list", "--config", config).stdout.split()[-4] == "revoked"
    audited = telederm("audit", "list", "--config", config).stdout
    assert "token.created" in audited and "token.revoked" in audited and secret not in audited


def test_a_token_is_refused_once_expired(config):
    secret = _create(config, "camera-bridge", "--role", "device", "--days", "1")
    assert _status(config, secret, days_later=0.5) == 200
    assert _status(config, secret, days_later=1.5) == 401


@pytest.mark.parametrize("args, where", [
    (["bad name", "--role", "admin"], "(NAME)"),
    (["spec", "--role", "specialist"], "(--practitioner-id)"),
    (["x", "--role", "admin", "--days", "0"], "(--days)"),
    (["x", "--role", "boss"], "--role"),
    (["ehr", "--role", "requester"], "(--scope)"),
    (["ehr", "--role", "requester", "--scope", "750712184 DERM"], "(scope)"),
    (["ehr", "--role", "requester", "--scope", "FAC/a b"], "(scope)"),
    (["boss", "--role", "admin", "--scope", "750712184/DERM"], "(--scope)"),
], ids=["name", "specialist-without-id", "days", "role", "requester-without-scope",
        "scope-with-space", "bad-scope", "admin-with-scope"])
def test_tokens_create_refuses_bad_input_with_one_line(config, args, where):
    line = one_error_line(telederm("tokens", "create", *args, "--config", config), 2)
    assert where in line


def test_a_name_is_used_once_and_revoking_an_unknown_token_says_so(config):
    _create(config, "twice", "--role", "admin")
    again = one_error_line(telederm("tokens", "create", "twice", "--role", "admin",
                                    "--config", config), 2)
    assert "already used" in again
    missing = one_error_line(telederm("tokens", "revoke", "nobody", "--config", config), 2)
    assert "nobody" in missing
