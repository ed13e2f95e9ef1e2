"""Composition root: builds the database engine, loads the mappings, creates the archive client."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy.engine import Engine

from ..archive.client import ArchiveClient
from ..billing.facilities import FacilityMap, load_facilities
from ..billing.rules import Rules, load_rules
from ..billing.tariffs import TariffTable, load_tariffs
from ..config import Config
from ..dicom.dermoscopy import load_devices
from ..dicom.sites import load_sites
from ..reports.conducts import load_conducts
from ..reports.pdf import load_labels
from ..store.clock import utcnow
from ..store.db import make_engine, migrate


@dataclass
class Mappings:
    sites: dict
    conducts: dict
    labels: dict
    tariffs: TariffTable
    devices: dict
    rules: Rules
    facilities: FacilityMap


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


def load_mappings(config: Config) -> Mappings:
    root = config.mappings_dir
    tariffs = load_tariffs(root / "billing" / "ngap.toml")
    return Mappings(
        sites=load_sites(root / "body_sites.csv"),
        conducts=load_conducts(root / "conducts.toml"),
        labels=load_labels(root / "reports" / "labels.toml"),
        tariffs=tariffs,
        devices=load_devices(root / "devices.toml"),
        rules=load_rules(root / "billing" / "rules.toml", tariffs=tariffs),
        facilities=load_facilities(root / "billing" / "facilities.toml", tariffs=tariffs),
    )


def build(config: Config) -> Services:
    engine = make_engine(config.db_url)
    migrate(engine)
    archive = ArchiveClient(config.orthanc_url, config.orthanc_username, config.orthanc_password)
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
