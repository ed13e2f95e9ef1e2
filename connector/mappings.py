"""The site's mapping files (`mappings/`), loaded and checked together: with config.py, what a
site changes. Start-up and `telederm config check` load them all, so a problem is found before
a message needs the file; every problem in every file is reported at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .billing.facilities import FacilityMap, load_facilities
from .billing.rules import Rules, load_rules
from .billing.tariffs import TariffTable, load_tariffs
from .config import Config
from .dicom.dermoscopy import load_devices
from .dicom.sites import load_sites
from .hl7 import adt, orm, report_in
from .hl7.questionnaire import Questionnaire, load_questionnaire
from .reports.conducts import load_conducts
from .reports.pdf import load_labels
from .routing import Routing, load_routing
from .statistics import StatisticsMap, load_statistics
from .validation import Problems

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
    routing: Routing
    statistics: StatisticsMap  # mappings/statistics.toml: how figures read the answers


# Every file of mappings/hl7/ and what reads it: start-up loads (so checks) them all, and a
# file nothing reads is an error rather than a setting silently ignored.
HL7_MAPPINGS = {"orm_o01.toml": orm.load_mapping, "adt.toml": adt.load_mapping,
                "report_in.toml": report_in.load_mapping}


def load_hl7_mappings(folder: Path) -> dict:
    """Load and check every `*.toml` of `folder`; ConfigError (file, key, what is wrong) for a
    malformed one, an unknown one, or a missing orm_o01.toml."""
    problems = Problems(str(folder))
    loaded = {}
    for path in sorted(folder.glob("*.toml")):
        loader = HL7_MAPPINGS.get(path.name)
        if loader is None:
            problems.add(f"unknown HL7 mapping file {path.name}", where=str(path),
                         hint="HL7 mappings are " + ", ".join(sorted(HL7_MAPPINGS))
                              + "; remove or rename the file")
            continue
        loaded[path.name] = problems.run(loader, path)
    if not (folder / "orm_o01.toml").is_file():
        problems.add("the order mapping is missing", where=str(folder / "orm_o01.toml"),
                     hint="copy mappings/hl7/orm_o01.toml from the distribution")
    problems.raise_any()
    return loaded


def load_mappings(config: Config) -> Mappings:
    root = config.mappings_dir
    problems = Problems(str(root))
    tariffs = problems.run(load_tariffs, root / "billing" / "ngap.toml")
    hl7 = problems.run(load_hl7_mappings, root / "hl7")
    questionnaire = problems.run(load_questionnaire, root / "questionnaire.toml")
    loaded = dict(
        sites=problems.run(load_sites, root / "body_sites.csv"),
        conducts=problems.run(load_conducts, root / "conducts.toml"),
        labels=problems.run(load_labels, root / "reports" / "labels.toml"),
        devices=problems.run(load_devices, root / "devices.toml"),
        routing=problems.run(load_routing, root / "routing.toml",
                             specialist_destinations=tuple(
                                 d.name for d in config.destinations_for("specialist"))),
    )
    for device_id, device in (loaded["devices"] or {}).items():
        if device.example and not config.images.example_devices:
            problems.add(f"dermatoscope {device_id} is the shipped example (placeholder serial "
                         f"{device.serial!r}): its values would be archived in every "
                         "dermoscopic image", where=str(root / "devices.toml"),
                         key=f"devices.{device_id}",
                         hint="replace the table with your own dermatoscope (and drop its "
                              "`example = true`), or delete it if the site has none")
    if tariffs is not None:  # rules and facilities name tariff codes
        billing = root / "billing"
        loaded["rules"] = problems.run(load_rules, billing / "rules.toml", tariffs=tariffs)
        loaded["facilities"] = problems.run(load_facilities, billing / "facilities.toml",
                                            tariffs=tariffs)
    if loaded["conducts"] is not None:  # the figures name conduct codes
        loaded["statistics"] = problems.run(load_statistics, root / "statistics.toml",
                                            conducts=loaded["conducts"])
    problems.raise_any()
    return Mappings(
        tariffs=tariffs, hl7=hl7, questionnaire=questionnaire, **loaded,
        orm=replace(hl7["orm_o01.toml"], questionnaire=questionnaire,
                    test_mode=config.hl7.test_mode),
    )
