"""Composition root: builds the database engine, loads the mappings, creates the archive client."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

from .archive.client import ArchiveClient
from .audit import AuditAnchor
from .config import Config
from .mappings import Mappings, load_mappings
from .reports.signing import ReportSigner
from .domain.moment import Moment
from .store.audit import ATNA_LINE
from .store.db import migrate
from .store.uow import Store, UnitOfWork


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
    store = Store.open(config.db_url, key)
    if config.audit.syslog:
        store.audit_line = ATNA_LINE
    migrate(store.engine)
    archive = ArchiveClient(config.orthanc.url, config.orthanc.username, config.orthanc.password)
    anchor = AuditAnchor(key, config.audit.checkpoint_file
                         or config.data_dir / "audit-checkpoints.jsonl")
    return Services(config=config, store=store, mappings=load_mappings(config), archive=archive,
                    anchor=anchor, internal_token=secrets.token_urlsafe(32),
                    signer=signer(config))


def signer(config: Config) -> ReportSigner | None:
    """The report signer from `[reports]`, loaded at start-up so a bad key stops it there."""
    reports = config.reports
    if reports.signing_key is None or reports.signing_cert is None:
        return None
    return ReportSigner(reports.signing_key, reports.signing_cert, reports.key_password)


def audit_key(config: Config) -> bytes:
    """The key the audit chain is signed with, never stored in the database: `[audit] key`
    (TELEDERM_AUDIT_KEY), else the key file, made on first start."""
    if config.audit.key:
        return config.audit.key.encode("utf-8")
    return secret_file(config.audit.key_file or config.data_dir / "audit.key").encode("ascii")


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
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile: read theirs
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()
