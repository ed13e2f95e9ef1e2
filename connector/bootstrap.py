"""Composition root: builds the database engine, loads the mappings, creates the archive client."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager

from .archive.client import ArchiveClient
from .audit import AuditAnchor
from .config import Config
from .domain.errors import ConfigError
from .mappings import Mappings, load_mappings
from .domain.moment import Moment
from .store.audit import ATNA_LINE
from .store.db import migrate
from .store.files import DataFiles, Keyring, new_key_entry
from .store.uow import Store, UnitOfWork

if TYPE_CHECKING:  # pyhanko costs every command ~0.4 s to import: only a signing site pays it
    from .reports.signing import ReportSigner


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class Services:
    """What the steps and channels are given: configuration, mappings, the store, the archive
    client and the clock (tests give a fixed one)."""

    config: Config
    store: Store
    mappings: Mappings
    archive: ArchiveClient
    anchor: AuditAnchor  # the audit chain's signed checkpoints (connector/audit.py)
    clock: Callable[[], dt.datetime] = utcnow
    # Token the managed Orthanc's plugin uses to notify us: made fresh by each start, kept in
    # memory and in the config of the Orthanc that start launches (runtime/server.py), never
    # carried over to the next run.
    internal_token: str = ""
    # Signs each report PDF with the facility's key ([reports] signing_key); None: unsigned.
    signer: ReportSigner | None = None
    # Writes and reads the files spooled in data_dir, sealed when [storage] has a key.
    files: DataFiles = field(default_factory=DataFiles)

    def now(self) -> dt.datetime:
        return self.clock()

    def moment(self) -> Moment:
        return Moment(self.clock())

    def unit(self, moment: Moment | None = None, *, urgent: bool = False
             ) -> ContextManager[UnitOfWork]:
        """A unit of work at `moment` (now by default): commits when its block ends."""
        return self.store.unit(moment or self.moment(), self, urgent=urgent)

    def reading(self) -> ContextManager[UnitOfWork]:
        """A read-only unit (no moment, no transaction held for writers)."""
        return self.store.reading(self)


def build(config: Config) -> Services:
    config = with_orthanc_password(config)
    key = audit_key(config)
    store = Store.open(config.db_url, key, database_key(config))
    if config.audit.syslog:
        store.audit_line = ATNA_LINE
    migrate(store.engine)
    archive = ArchiveClient(config.orthanc.url, config.orthanc.username, config.orthanc.password)
    anchor = AuditAnchor(key, config.audit.checkpoint_file
                         or config.data_dir / "audit-checkpoints.jsonl")
    return Services(config=config, store=store, mappings=load_mappings(config), archive=archive,
                    anchor=anchor, internal_token=secrets.token_urlsafe(32),
                    signer=signer(config), files=DataFiles(storage_keyring(config)))


def signer(config: Config) -> ReportSigner | None:
    """The report signer from `[reports]`, loaded at start-up so a bad key stops it there."""
    reports = config.reports
    if reports.signing_key is None or reports.signing_cert is None:
        return None
    from .reports.signing import ReportSigner

    return ReportSigner(reports.signing_key, reports.signing_cert, reports.key_password)


def audit_key(config: Config) -> bytes:
    """The key the audit chain is signed with, never stored in the database: `[audit] key`
    (TELEDERM_AUDIT_KEY), else the key file, made on first start."""
    if config.audit.key:
        return config.audit.key.encode("utf-8")
    return secret_file(config.audit.key_file or config.data_dir / "audit.key").encode("ascii")


# SQLCipher's own default work factor; derived once a process, not on every connection.
DATABASE_KEY_ROUNDS = 256_000


def database_key(config: Config) -> bytes | None:
    """The 32-byte key the SQLite store is encrypted with: derived from `[database] key`
    (TELEDERM_DATABASE_KEY), else from the key file (made on first start when named and
    missing); None without either (plain SQLite) and for PostgreSQL."""
    if not config.db_url.startswith("sqlite:"):
        return None
    secret = config.database.key or (secret_file(config.database.key_file)
                                     if config.database.key_file else "")
    if not secret:
        return None
    return hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), b"telederm-database",
                               DATABASE_KEY_ROUNDS)


def storage_keyring(config: Config) -> Keyring | None:
    """The key ring of the spooled files: `[storage] key` (TELEDERM_STORAGE_KEY), else the
    key file (made with one key on first start when named and missing); None without either."""
    storage = config.storage
    if storage.key:
        return Keyring.parse(storage.key, where="TELEDERM_STORAGE_KEY")
    if storage.key_file is None:
        return None
    if not storage.key_file.exists():
        write_secret(storage.key_file, new_key_entry() + "\n")
    return Keyring.parse(storage.key_file.read_text(), where=str(storage.key_file))


def rotate_storage_key(config: Config) -> tuple[Keyring, bool]:
    """A new current key at the end of `[storage] key_file`, the others kept (files sealed
    with them still open); the key file is made with one key when missing (`made` True).
    Refuses a key ring from the environment, which the connector cannot write."""
    storage = config.storage
    if storage.key or storage.key_file is None:
        raise ConfigError("keys rotate writes [storage] key_file" + (
            "; the key ring comes from TELEDERM_STORAGE_KEY: append a new id:base64 entry "
            "to it yourself" if storage.key else ": set it (a file outside data_dir)"),
            where="storage.key_file")
    if not storage.key_file.exists():
        return storage_keyring(config), True
    text = storage.key_file.read_text()
    tmp = storage.key_file.with_name(storage.key_file.name + ".new")
    tmp.unlink(missing_ok=True)
    write_secret(tmp, text + ("\n" if text and not text.endswith("\n") else "")
                 + new_key_entry() + "\n")
    ring = Keyring.parse(tmp.read_text(), where=str(tmp))  # the new ring reads, or nothing moves
    os.replace(tmp, storage.key_file)
    return ring, False


def with_orthanc_password(config: Config) -> Config:
    """`config` with the managed Orthanc's password filled in when the site set none: a
    random one made on first start and kept in `data_dir/orthanc_password`, so no install
    runs on a password everyone knows. An external Orthanc's password is the site's own."""
    if config.orthanc.password or not config.orthanc.managed:
        return config
    password = secret_file(config.data_dir / "orthanc_password")
    return config.model_copy(
        update={"orthanc": config.orthanc.model_copy(update={"password": password})})


def secret_file(path: Path) -> str:
    """The random secret in `path`, made on first use with mode 0600 (readable by us only)."""
    if not path.exists():
        write_secret(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def write_secret(path: Path, text: str) -> None:
    """Create `path` holding `text`, mode 0600; another process that made it meanwhile wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(text)
