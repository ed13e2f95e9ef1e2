"""Composition root: builds the database engine, loads the mappings, creates the archive client."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

from .archive.client import ArchiveClient
from .config import Config
from .mappings import Mappings, load_mappings
from .reports.signing import ReportSigner
from .domain.moment import Moment
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
    clock: Callable[[], dt.datetime] = utcnow
    # Token the managed Orthanc's plugin uses to notify us (kept in the data folder).
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
    store = Store.open(config.db_url)
    migrate(store.engine)
    archive = ArchiveClient(config.orthanc.url, config.orthanc.username, config.orthanc.password)
    return Services(config=config, store=store, mappings=load_mappings(config), archive=archive,
                    internal_token=internal_token(config.data_dir), signer=signer(config))


def signer(config: Config) -> ReportSigner | None:
    """The report signer from `[reports]`, loaded at start-up so a bad key stops it there."""
    reports = config.reports
    if reports.signing_key is None or reports.signing_cert is None:
        return None
    return ReportSigner(reports.signing_key, reports.signing_cert, reports.key_password)


def internal_token(data_dir: Path) -> str:
    """The secret shared with the managed Orthanc's plugin, made once, readable by us only."""
    path = data_dir / "internal_token"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()
