"""`telederm users add|list|disable`: people who log in to /ui/, made and listed from the
command line; every bad input is one line and exit 2, and nothing is written then."""

from __future__ import annotations

import pytest

from tests.support.cli import one_error_line, telederm, write_config

PASSWORD = "a long enough passphrase"


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "telederm.toml", tmp_path / "var")


def _users(config) -> list[str]:
    listed = telederm("users", "list", "--config", config)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.splitlines()


def test_users_add_list_and_disable_when_input_is_good(config):
    added = telederm("users", "add", "jdupont", "--role", "specialist", "--name", "DUPONT^Jean",
                     "--id", "810001234567", "--password-stdin", "--config", config,
                     stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "user jdupont added (specialist)"
    (row, total) = _users(config)
    assert row.split() == ["jdupont", "specialist", "DUPONT^Jean", "810001234567", "active",
                           "*"]
    assert total == "1 user(s)"
    assert PASSWORD not in row
    disabled = telederm("users", "disable", "jdupont", "--config", config)
    assert disabled.returncode == 0, disabled.stderr
    assert _users(config)[0].split()[-2] == "disabled"


@pytest.mark.parametrize("args, stdin, where", [
    (["bad login", "--role", "admin", "--name", "A"], PASSWORD, "(LOGIN)"),
    (["x", "--role", "admin", "--name", "A"], "short", "(password)"),
    (["x", "--role", "specialist", "--name", "DUPONT^Jean"], PASSWORD, "(--id)"),
    (["x", "--role", "admin", "--name", "DUP|ONT"], PASSWORD, "(--name)"),
    (["x", "--role", "admin", "--name", " "], PASSWORD, "(--name)"),
    (["x", "--role", "boss", "--name", "A"], PASSWORD, "--role"),
    (["x", "--role", "admin"], PASSWORD, "--name"),
    (["x", "--role", "requester", "--name", "A"], PASSWORD, "(--scope)"),
    (["x", "--role", "requester", "--name", "A", "--scope", "750712184/a b"], PASSWORD,
     "(scope)"),
], ids=["login", "short-password", "specialist-without-id", "hl7-delimiter", "empty-name",
        "unknown-role", "no-name", "requester-without-scope", "bad-scope"])
def test_users_add_refuses_bad_input_with_one_line(config, args, stdin, where):
    result = telederm("users", "add", *args, "--password-stdin", "--config", config,
                      stdin=stdin + "\n")
    assert where in one_error_line(result, 2)
    assert _users(config) == ["0 user(s)"]


def test_users_add_refuses_a_login_already_taken(config):
    args = ("users", "add", "admin1", "--role", "admin", "--name", "MARTIN^Paul",
            "--password-stdin", "--config", config)
    assert telederm(*args, stdin=PASSWORD + "\n").returncode == 0
    assert "already taken" in one_error_line(telederm(*args, stdin=PASSWORD + "\n"), 2)
    assert len(_users(config)) == 2


def test_users_disable_refuses_an_unknown_login(config):
    assert "no user 'nobody'" in one_error_line(
        telederm("users", "disable", "nobody", "--config", config), 2)
