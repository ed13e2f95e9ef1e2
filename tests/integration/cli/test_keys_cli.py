"""`telederm keys rotate` and `telederm keys encrypt-store` as a site runs them (connector stopped)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text

from connector.bootstrap import database_key, storage_keyring
from connector.config import load_config
from connector.store.db import make_engine, migrate
from connector.store.files import MAGIC, DataFiles
from tests.support.cli import one_error_line, telederm, write_config
from tests.support.store_samples import TEST_AUDIT_KEY

CLEAR = b"DICM QUIVERLANDE^Ysoldine IPP7Q4K9Z2"


def test_rotate_adds_a_current_key_old_files_stay_readable_and_rewrite_reseals(tmp_path):
    data, ring_file = tmp_path / "data", tmp_path / "keys" / "storage.keys"
    config_path = write_config(tmp_path / "telederm.toml", data,
                               f'[storage]\nkey_file = "{ring_file}"\n')
    made = telederm("keys", "rotate", "--config", config_path)
    assert made.returncode == 0, made.stderr
    assert "1 key(s)" in made.stdout and "the file was made" in made.stdout
    assert ring_file.stat().st_mode & 0o777 == 0o600
    first = storage_keyring(load_config(config_path, environ={}))
    old = data / "images" / "TD1" / "1.2.3.dcm"
    DataFiles(first).write(old, CLEAR)

    rotated = telederm("keys", "rotate", "--config", config_path)
    assert rotated.returncode == 0, rotated.stderr
    second = storage_keyring(load_config(config_path, environ={}))
    assert second.current != first.current and set(first.keys) < set(second.keys)
    assert f"storage key {second.current} is current (2 key(s)" in rotated.stdout
    assert DataFiles(second).read(old) == CLEAR
    assert old.read_bytes()[len(MAGIC) + 1:].startswith(first.current.encode())

    rewritten = telederm("keys", "rotate", "--rewrite", "--config", config_path)
    assert rewritten.returncode == 0, rewritten.stderr
    third = storage_keyring(load_config(config_path, environ={}))
    assert "1 file(s) sealed again" in rewritten.stdout
    assert old.read_bytes()[len(MAGIC) + 1:].startswith(third.current.encode())
    assert DataFiles(third).read(old) == CLEAR and len(third.keys) == 3


def test_rotate_refuses_a_key_ring_from_the_environment_or_none(tmp_path):
    config_path = write_config(tmp_path / "telederm.toml", tmp_path / "data")
    line = one_error_line(telederm("keys", "rotate", "--config", config_path), 2)
    assert "keys rotate writes [storage] key_file" in line


def test_encrypt_store_encrypts_a_plain_store_in_place_once_and_backup_store_copies_it(tmp_path):
    data = tmp_path / "data"
    config_path = write_config(tmp_path / "telederm.toml", data,
                               f'[database]\nkey_file = "{tmp_path / "keys" / "db.key"}"\n')
    plain = make_engine(f"sqlite:///{data / 'telederm.db'}", TEST_AUDIT_KEY)
    migrate(plain)
    with plain.begin() as conn:
        conn.execute(text("INSERT INTO counters (name, value) VALUES ('QUIVERLANDE', 3)"))
    plain.dispose()

    done = telederm("keys", "encrypt-store", "--config", config_path)
    assert done.returncode == 0, done.stderr
    assert "database encrypted" in done.stdout
    assert b"QUIVERLANDE" not in (data / "telederm.db").read_bytes()
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite3.connect(data / "telederm.db").execute("SELECT * FROM sqlite_master").fetchall()
    keyed = make_engine(f"sqlite:///{data / 'telederm.db'}", TEST_AUDIT_KEY,
                        database_key(load_config(config_path, environ={})))
    with keyed.connect() as conn:
        assert conn.execute(text("SELECT value FROM counters")).scalar() == 3
    keyed.dispose()

    copy = tmp_path / "backup" / "telederm-copy.db"
    backed = telederm("keys", "backup-store", "--to", copy, "--config", config_path)
    assert backed.returncode == 0, backed.stderr
    assert b"QUIVERLANDE" not in copy.read_bytes() and copy.stat().st_mode & 0o777 == 0o600
    restored = make_engine(f"sqlite:///{copy}", TEST_AUDIT_KEY,
                           database_key(load_config(config_path, environ={})))
    with restored.connect() as conn:
        assert conn.execute(text("SELECT value FROM counters")).scalar() == 3
    restored.dispose()

    again = one_error_line(telederm("keys", "encrypt-store", "--config", config_path), 1)
    assert "not a plain SQLite file" in again
    no_key = write_config(tmp_path / "nokey.toml", data)
    assert "no database key" in one_error_line(
        telederm("keys", "encrypt-store", "--config", no_key), 2)


def test_keys_come_from_the_environment_before_the_files(tmp_path):
    from connector.store.files import new_key_entry
    entry = new_key_entry()
    config = load_config(None, environ={
        "TELEDERM_DATA_DIR": str(tmp_path), "TELEDERM_DATABASE_KEY": "from-the-vault",
        "TELEDERM_DATABASE_KEY_FILE": str(tmp_path / "unused.key"),
        "TELEDERM_STORAGE_KEY": entry})
    key = database_key(config)
    assert len(key) == 32 and key == database_key(config)
    assert storage_keyring(config).current == entry.split(":")[0]
    assert not (tmp_path / "unused.key").exists()
    plain = load_config(None, environ={"TELEDERM_DATA_DIR": str(tmp_path)})
    assert database_key(plain) is None and storage_keyring(plain) is None
