"""Password records for the people who log in to /ui/: scrypt (hashlib), a random salt each.

A record is `scrypt$<n>$<r>$<p>$<salt>$<hash>` (salt and hash in base64): the cost parameters
travel with the hash, so raising them later leaves older records verifiable. Comparison is
constant-time. Unknown logins are checked against a fixed record of the same cost, so a
failed login takes as long whether or not the login exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2 ** 14, 8, 1  # ~16 MiB and a few tens of ms per check on a small server
SALT_BYTES = 16
HASH_BYTES = 32
MAX_LENGTH = 1024  # longer input is refused before hashing (no CPU spent on a megabyte)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=256 * r * (n + p + 2))


def hash_password(password: str) -> str:
    """A new record for `password` (the caller checks it is acceptable: `problem`)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, N, R, P, HASH_BYTES)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify(password: str, record: str | None) -> bool:
    """Whether `password` matches `record`; with `record` None (no such user) the same work
    is done and the answer is False."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, digest = (record or _DUMMY).split("$")
        expected = base64.b64decode(digest, validate=True)
        ok = scheme == "scrypt" and hmac.compare_digest(
            _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p),
                    len(expected)), expected)
    except ValueError:  # a damaged record: nobody logs in with it
        return False
    return ok and record is not None


def problem(password: str) -> str | None:
    """Why a new password is refused (too short, too long), or None."""
    if len(password) < 10:
        return "the password is shorter than 10 characters"
    if len(password) > MAX_LENGTH:
        return f"the password is longer than {MAX_LENGTH} characters"
    return None


_DUMMY = hash_password(secrets.token_urlsafe(16))
