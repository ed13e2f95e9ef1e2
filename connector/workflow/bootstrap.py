"""Composition root: builds the database engine, loads the mappings, creates the archive client."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy.engine import Engine

from ..archive.client import ArchiveClient
from ..config import Config
from ..mappings import Mappings, load_mappings
from ..store.clock import utcnow
from ..store.db import make_engine, migrate


@dataclass
class Services:
    config: Config
    engine: Engine
    mappings: Mappings
    archive: ArchiveClient
    clock: Callable[[], dt.datetime] = utcnow
    # Token the managed Orthanc's plugin uses to notify us (kept in the data folder).
    internal_token: str = ""

    def now(self) -> dt.datetime:
        return self.clock()


def build(config: Config) -> Services:
    engine = make_engine(config.db_url)
    migrate(engine)
    archive = ArchiveClient(config.orthanc.url, config.orthanc.username, config.orthanc.password)
    return Services(config=config, engine=engine, mappings=load_mappings(config), archive=archive,
                    internal_token=internal_token(config.data_dir))


def internal_token(data_dir: Path) -> str:
    """The secret shared with the managed Orthanc's plugin, made once, readable by us only."""
    path = data_dir / "internal_token"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()
