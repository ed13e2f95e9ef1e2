"""Deterministic DICOM UIDs: the same inputs always give the same UID.

Why: study, series and instance UIDs are derived from stable facts (case accession, content
hash, ...) so that importing the same photo twice produces the same SOP Instance UID and the
archive keeps one copy instead of two. The `2.25` root (PS3.5 B.2) needs no registered
organisation root: the rest is the decimal form of a 128-bit UUID. We build that UUID from a
SHA-256 digest of the inputs and set its version/variant bits the way RFC 9562 prescribes for a
name-based, application-defined UUID (version 8), so the number stays a valid UUID.
"""

from __future__ import annotations

import hashlib

ROOT = "2.25."


def uid_from(*parts: str) -> str:
    """Return `2.25.<decimal>` derived from `parts`; at most 44 characters.

    Parts are length-prefixed before hashing, so ("ab", "c") and ("a", "bc") differ.
    """
    if not parts:
        raise ValueError("uid_from needs at least one part")
    digest = hashlib.sha256()
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(f"uid_from parts must be str, got {type(part).__name__}")
        raw = part.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    b = bytearray(digest.digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x80  # version 8
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122/9562 variant
    return ROOT + str(int.from_bytes(b, "big"))
