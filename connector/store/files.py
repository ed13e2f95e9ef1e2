"""Files of the data folder that a transaction refers to (DICOM objects waiting for the archive,
report objects, patient updates in progress), encrypted at rest when the site gives a key.

They carry the patient's name, identifiers and the order's context, so with a `[storage]` key
ring each is sealed with AES-GCM under the ring's current key; the key's id is in the file's
header, so after `telederm keys rotate` adds a key, files sealed under an older one still
open (and `keys rotate --rewrite` seals them again under the new one). A file without the
header is read as it is: the files written before the site set a key stay readable. Files are
mode 0600 and the folders made for them 0700, key or not.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..domain.errors import ConfigError

MAGIC = b"TDENC1"  # header: MAGIC, id length (1 byte), key id, 12-byte nonce; then ciphertext
NONCE_BYTES = 12


class StorageKeyError(ConfigError):
    """A key ring that cannot be read, or a sealed file whose key is not in it."""


class Keyring:
    """The storage keys: id → 32-byte AES key, and the id new files are sealed with (the
    last entry). Text form: one `id:base64` entry a line (or separated by spaces, for an
    environment variable); `#` starts a comment."""

    def __init__(self, keys: dict[str, bytes], current: str):
        self.keys, self.current = keys, current

    @classmethod
    def parse(cls, text: str, where: str) -> "Keyring":
        keys: dict[str, bytes] = {}
        current = ""
        for entry in " ".join(line.split("#", 1)[0] for line in text.splitlines()).split():
            key_id, _, value = entry.partition(":")
            try:
                key = base64.b64decode(value, validate=True)
            except binascii.Error:
                key = b""
            if not key_id or len(key_id.encode()) > 255 or len(key) != 32:
                raise StorageKeyError("a storage key entry is not `id:base64` of 32 bytes",
                                where=where, hint="make one with `telederm keys rotate`")
            keys[key_id] = key
            current = key_id
        if not keys:
            raise StorageKeyError("the storage key ring is empty", where=where,
                            hint="make one with `telederm keys rotate`")
        return cls(keys, current)

    def seal(self, data: bytes) -> bytes:
        key_id = self.current.encode()
        header = MAGIC + bytes([len(key_id)]) + key_id
        nonce = secrets.token_bytes(NONCE_BYTES)
        return header + nonce + AESGCM(self.keys[self.current]).encrypt(nonce, data, header)

    def open(self, blob: bytes, where: str) -> bytes:
        """The clear content of `blob`: itself when it is not sealed."""
        if not blob.startswith(MAGIC):
            return blob
        size = blob[len(MAGIC)]
        end = len(MAGIC) + 1 + size
        key_id = blob[len(MAGIC) + 1:end].decode("utf-8", "replace")
        if key_id not in self.keys:
            raise StorageKeyError(f"the file is sealed with storage key '{key_id}', not in the ring",
                            where=where, hint="restore the key ring that held it")
        nonce = blob[end:end + NONCE_BYTES]
        try:
            return AESGCM(self.keys[key_id]).decrypt(nonce, blob[end + NONCE_BYTES:], blob[:end])
        except InvalidTag:
            raise StorageKeyError("the file does not open with its key: altered or truncated",
                            where=where) from None


def new_key_entry() -> str:
    """A fresh `id:base64` entry for a key ring (the id is random, not a secret)."""
    return f"{secrets.token_hex(4)}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


class DataFiles:
    """How the connector writes and reads its spooled files: sealed with `keyring` when the
    site has one, else in clear."""

    def __init__(self, keyring: Keyring | None = None):
        self.keyring = keyring

    def write(self, path: Path, data: bytes) -> None:
        write_durably(path, self.keyring.seal(data) if self.keyring else data)

    def read(self, path: Path) -> bytes:
        data = Path(path).read_bytes()
        return self.keyring.open(data, where=str(path)) if self.keyring else data

    def rewrite(self, folders: list[Path]) -> int:
        """Seal again, under the current key, every file under `folders` not sealed with it
        (clear files included); returns how many were rewritten. Another process writing
        there meanwhile is harmless: each file is replaced whole."""
        assert self.keyring is not None
        current = MAGIC + bytes([len(self.keyring.current.encode())]) + self.keyring.current.encode()
        count = 0
        for folder in folders:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else ():
                if path.name.endswith(".tmp"):
                    continue
                data = path.read_bytes()
                if data.startswith(current):
                    continue
                self.write(path, self.keyring.open(data, where=str(path)))
                count += 1
        return count


def make_folder(path: Path) -> None:
    """`path` and its missing parents, each made mode 0700 (readable by us only)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # another thread made it meanwhile
            pass


def write_durably(path: Path, data: bytes) -> None:
    """Write a file (mode 0600) and fsync it before the transaction that refers to it commits."""
    make_folder(path.parent)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)  # a tmp left by a crash keeps its old mode through O_CREAT
    os.replace(tmp, path)
