"""Password records: scrypt with a random salt, parameters kept with the hash, constant-time
check; a missing or damaged record never lets anyone in."""

from __future__ import annotations

import base64

from connector.entrypoints.ui import passwords


def test_verify_accepts_the_password_when_it_matches_its_record():
    record = passwords.hash_password("correct horse battery")
    assert passwords.verify("correct horse battery", record)


def test_verify_refuses_when_the_password_differs():
    record = passwords.hash_password("correct horse battery")
    assert not passwords.verify("correct horse batterY", record)
    assert not passwords.verify("", record)


def test_record_holds_its_parameters_and_a_fresh_salt_when_made():
    first, second = (passwords.hash_password("same password") for _ in range(2))
    scheme, n, r, p, salt, digest = first.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", passwords.N, passwords.R, passwords.P)
    assert len(base64.b64decode(salt)) == passwords.SALT_BYTES
    assert len(base64.b64decode(digest)) == passwords.HASH_BYTES
    assert first != second and first.split("$")[4] != second.split("$")[4]
    assert "same password" not in first


def test_verify_uses_the_parameters_of_the_record_when_they_differ_from_today():
    salt = b"0123456789abcdef"
    digest = passwords._scrypt("older password", salt, 2 ** 12, 8, 1, 32)
    record = f"scrypt${2 ** 12}$8$1${base64.b64encode(salt).decode()}$" \
             f"{base64.b64encode(digest).decode()}"
    assert passwords.verify("older password", record)


def test_verify_refuses_when_there_is_no_record_or_it_is_damaged():
    assert not passwords.verify("anything", None)
    record = passwords.hash_password("correct horse battery")
    assert not passwords.verify("correct horse battery", record.replace("scrypt", "md5"))
    assert not passwords.verify("correct horse battery", record[:-8] + "!!!!!!!!")
    assert not passwords.verify("correct horse battery", "scrypt$x$8$1$AA==$AA==")


def test_verify_refuses_a_password_too_long_without_hashing_it():
    record = passwords.hash_password("x" * 20)
    assert not passwords.verify("x" * (passwords.MAX_LENGTH + 1), record)


def test_problem_names_passwords_too_short_or_too_long():
    assert "shorter" in passwords.problem("short")
    assert "longer" in passwords.problem("x" * (passwords.MAX_LENGTH + 1))
    assert passwords.problem("a long enough passphrase") is None
