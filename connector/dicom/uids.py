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

from connector import __version__

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


# Who wrote a file or speaks on an association (file meta, A-ASSOCIATE user information): the
# connector, not the toolkit under it, so a peer or an archive that logs or works around an
# implementation's quirks knows which one it met. The class UID names the implementation (it
# changes only when the connector's DICOM behaviour is reworked), the version name the release.
IMPLEMENTATION_CLASS_UID = uid_from("implementation", "TeleDerm Connector")
IMPLEMENTATION_VERSION_NAME = f"TELEDERM_{__version__}"[:16]


# The UIDs of cases, images and reports, each spelt once (dermoscopy's Tracking and Frame of
# Reference UIDs are made in `dermoscopy.py`). Stored objects carry UIDs made by these recipes
# and a re-sent photo or report must find its earlier copy: changing a recipe's parts changes
# every UID it makes.

def study_uid(sender: str, placer_order_number: str) -> str:
    """Study Instance UID of a case: its order's sender and placer order number, so a case
    re-created for the same order (after a restore) keeps its study."""
    return uid_from("study", sender, placer_order_number)


def wrap_study_uid(key: str) -> str:
    """Study Instance UID of files wrapped outside a case (`telederm wrap`): from the
    accession given, else the patient ID."""
    return uid_from("wrap-study", key)


def series_uid(study_uid: str, kind: str, site: str = "", laterality: str = "",
               description: str = "") -> str:
    """Series Instance UID of the images of one kind (`photo`, `dermoscopy`) taken of one body
    site (code and laterality) under one description: each upload of another site or another
    description is a series of its own in the viewer, and the same image sent again (same
    facts, same SOP Instance UID) lands in the same series. Images with none of these facts
    keep the one series per kind that objects stored before sites split series carry."""
    if not (site or laterality or description):
        return uid_from("series", study_uid, kind)
    return uid_from("series", study_uid, kind, site, laterality, description)


def report_series_uid(study_uid: str) -> str:
    """Series Instance UID of the reports of a study (every version in one series)."""
    return uid_from("series", study_uid, "report")


def image_uid(study_uid: str, kind: str, sha256: str) -> str:
    """SOP Instance UID of an image: the same file (by SHA-256 of its bytes, hex) sent twice to
    the same study as the same kind is one instance."""
    return uid_from("image", study_uid, kind, sha256)


def report_uid(study_uid: str, version: int) -> str:
    """SOP Instance UID of a report version's Encapsulated PDF, also its document number
    (MDM TXA-12; TXA-13 of a correction names the previous version's)."""
    return uid_from("report", study_uid, str(version))
