"""The audit trail's anchor outside the database: signed checkpoints of the chain's head.

The chain in the `audit` table (store/audit.py) is keyed, so its rows cannot be edited and
re-chained without the key; but a table alone cannot show that its last rows were deleted, or
all of them. So the head of the chain (last row id and hash) is written, signed with the same
key, as one JSON line of a file outside the database (`[audit] checkpoint_file`); the outbox
worker does it every CHECKPOINT_SECONDS while the head moves, and the server once more when it
stops. `verify` then checks, beside the chain, that every checkpoint is signed with the key,
that they only move forward, and that the last one's row is still there with its hash.
Rows written after the last checkpoint and deleted before the next are not caught (residual
risk: conformance/security.md); copying the file elsewhere (a WORM share, a log collector)
keeps it out of reach of whoever can write the data folder.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

CHECKPOINT_SECONDS = 10


@dataclass
class Verdict:
    rows: int                                   # rows of the chain checked
    checkpoints: int                            # checkpoint lines read
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


class AuditAnchor:
    """Writes and checks the signed checkpoints of one database's audit chain."""

    def __init__(self, key: bytes, path: Path):
        self.key = key
        self.path = path
        self._last: tuple[int, str] | None = None  # the head last written by this process

    def _sign(self, row_id: int, row_hash: str, at: str) -> str:
        text = f"telederm-audit-checkpoint|{row_id}|{row_hash}|{at}"
        return hmac.new(self.key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def checkpoint(self, uow, at: str) -> bool:
        """Append the chain's head, as of the instant `at`, if it moved since the last
        checkpoint; True if written."""
        head = uow.audit.head()
        if head is None or head == self._last:
            return False
        row_id, row_hash = head
        line = json.dumps({"id": row_id, "hash": row_hash, "at": at,
                           "sig": self._sign(row_id, row_hash, at)}) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._last = head
        return True

    def verify(self, uow) -> Verdict:
        """The chain and the checkpoints together (see the module docstring)."""
        count, broken = uow.audit.verify()
        verdict = Verdict(count, 0)
        if broken is not None:
            verdict.problems.append(
                f"row {broken} does not verify (row {count} of the chain): rows were edited, "
                "inserted or deleted, or the chain was recomputed without the key")
        last = None
        try:
            lines = self.path.read_text(encoding="ascii").splitlines()
        except FileNotFoundError:
            lines = []
        except (OSError, UnicodeDecodeError) as exc:
            verdict.problems.append(f"the checkpoints in {self.path} cannot be read ({exc})")
            lines = []
        for number, line in enumerate(lines, 1):
            verdict.checkpoints += 1
            try:
                point = json.loads(line)
                row_id, row_hash, at, sig = point["id"], point["hash"], point["at"], point["sig"]
                good = hmac.compare_digest(str(sig), self._sign(int(row_id), str(row_hash),
                                                                str(at)))
            except (ValueError, KeyError, TypeError):
                good = False
            if not good:
                verdict.problems.append(f"checkpoint line {number} is not signed with the "
                                        "audit key")
                continue
            if last is not None and row_id < last[0]:
                verdict.problems.append(f"checkpoint line {number} goes back to row {row_id}")
            last = (row_id, row_hash, at)
        if last is not None:
            row_id, row_hash, at = last
            found = uow.audit.hash_of(row_id)
            if found is None:
                verdict.problems.append(f"row {row_id}, anchored at {at}, is missing: the last "
                                        "rows (or all of them) were deleted")
            elif not hmac.compare_digest(found, row_hash):
                verdict.problems.append(f"row {row_id} is not the one anchored at {at}: the "
                                        "chain was rewritten")
        return verdict
