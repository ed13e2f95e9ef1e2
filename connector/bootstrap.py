"""Composition root: builds the database engine, loads the mappings, creates the archive client."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, ContextManager

from .archive.client import ArchiveClient
from .billing.facilities import FacilityMap, load_facilities
from .billing.rules import Rules, load_rules
from .billing.tariffs import TariffTable, load_tariffs
from .config import Config
from .dicom.dermoscopy import load_devices
from .dicom.sites import load_sites
from .domain.errors import ConfigError
from .hl7 import adt, orm, report_in
from .hl7.questionnaire import Questionnaire, load_questionnaire
from .reports.conducts import load_conducts
from .reports.pdf import load_labels
from .domain.moment import Moment
from .store.db import migrate
from .store.uow import Store, UnitOfWork


@dataclass
class Mappings:
    sites: dict
    conducts: dict
    labels: dict
    tariffs: TariffTable
    devices: dict
    rules: Rules
    facilities: FacilityMap
    # HL7 field maps (mappings/hl7/*.toml) by file name, and the order mapping ready for use:
    # with the questionnaire and the site's test mode ([hl7] test_mode).
    hl7: dict
    orm: orm.OrmMapping
    questionnaire: Questionnaire


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


# Every file of mappings/hl7/ and what reads it: start-up loads (so checks) them all, and a
# file nothing reads is an error rather than a setting silently ignored.
HL7_MAPPINGS = {"orm_o01.toml": orm.load_mapping, "adt.toml": adt.load_mapping,
                "report_in.toml": report_in.load_mapping}


def load_hl7_mappings(folder: Path) -> dict:
    """Load and check every `*.toml` of `folder`; ConfigError (file, key, what is wrong) for a
    malformed one, an unknown one, or a missing orm_o01.toml."""
    loaded = {}
    for path in sorted(folder.glob("*.toml")):
        loader = HL7_MAPPINGS.get(path.name)
        if loader is None:
            raise ConfigError(f"unknown HL7 mapping file {path.name}", where=str(path),
                              hint="HL7 mappings are " + ", ".join(sorted(HL7_MAPPINGS))
                                   + "; remove or rename the file")
        loaded[path.name] = loader(path)
    if "orm_o01.toml" not in loaded:
        raise ConfigError("the order mapping is missing", where=str(folder / "orm_o01.toml"),
                          hint="copy mappings/hl7/orm_o01.toml from the distribution")
    return loaded


def load_mappings(config: Config) -> Mappings:
    root = config.mappings_dir
    tariffs = load_tariffs(root / "billing" / "ngap.toml")
    hl7 = load_hl7_mappings(root / "hl7")
    questionnaire = load_questionnaire(root / "questionnaire.toml")
    return Mappings(
        sites=load_sites(root / "body_sites.csv"),
        conducts=load_conducts(root / "conducts.toml"),
        labels=load_labels(root / "reports" / "labels.toml"),
        tariffs=tariffs,
        devices=load_devices(root / "devices.toml"),
        rules=load_rules(root / "billing" / "rules.toml", tariffs=tariffs),
        facilities=load_facilities(root / "billing" / "facilities.toml", tariffs=tariffs),
        hl7=hl7,
        orm=replace(hl7["orm_o01.toml"], questionnaire=questionnaire,
                    test_mode=config.hl7_test_mode),
        questionnaire=questionnaire,
    )


def build(config: Config) -> Services:
    store = Store.open(config.db_url)
    migrate(store.engine)
    archive = ArchiveClient(config.orthanc_url, config.orthanc_username, config.orthanc_password)
    return Services(config=config, store=store, mappings=load_mappings(config), archive=archive,
                    internal_token=internal_token(config.data_dir))


def internal_token(data_dir: Path) -> str:
    """The secret shared with the managed Orthanc's plugin, made once, readable by us only."""
    path = data_dir / "internal_token"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()
