"""Body sites: a pinned copy of CID 4029 "Dermatology Anatomic Site" and the laterality modifiers.

Why: CID 4029 membership changes between DICOM editions, so the connector ships its own pinned
subset (`mappings/body_sites.csv`, edition in `mappings/README.md`) instead of trusting whatever
toolkit table is installed. Laterality is not pre-coordinated in CID 4029; it travels as a
modifier (CID 244) next to the site code and as Image Laterality (reference/dicom.md 4.2).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from connector.domain.errors import ConfigError, ImageError
from connector.domain.model import BodySite

COLUMNS = ("scheme", "code", "meaning_en", "label_fr")
SCHEMES = frozenset({"SCT", "DCM", "FMA"})  # the designators CID 4029 uses
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "mappings" / "body_sites.csv"
_CODE = re.compile(r"^[0-9]{1,16}$")  # SCT, DCM and FMA codes are all numeric; SH allows 16


@dataclass(frozen=True)
class Code:
    """A coded concept (coding scheme designator, code value, code meaning)."""

    scheme: str
    code: str
    meaning: str


# CID 244 "Laterality": the modifier that goes with the site code in the Anatomic Region item.
LATERALITY_MODIFIERS: dict[str, Code] = {
    "R": Code("SCT", "24028007", "Right"),
    "L": Code("SCT", "7771000", "Left"),
    "B": Code("SCT", "51440002", "Bilateral"),
    "U": Code("SCT", "66459002", "Unilateral"),
}


@dataclass(frozen=True)
class SiteEntry:
    """One row of body_sites.csv: the DICOM code plus the French label shown to users."""

    scheme: str
    code: str
    meaning_en: str
    label_fr: str

    def body_site(self) -> BodySite:
        return BodySite(scheme=self.scheme, code=self.code, meaning=self.meaning_en)


class SiteTable(dict[str, SiteEntry]):
    """Sites keyed by code, remembering the file they came from (for error hints)."""

    def __init__(self, entries: dict[str, SiteEntry], source: str):
        super().__init__(entries)
        self.source = source


def load_sites(path: str | Path = DEFAULT_PATH) -> SiteTable:
    """Read and validate a body-site CSV; any bad row raises ConfigError naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("the body-site file does not exist", where=str(path),
                          hint="restore mappings/body_sites.csv from the release") from None
    except UnicodeDecodeError:
        raise ConfigError("the body-site file is not UTF-8 text", where=str(path),
                          hint="save the file as UTF-8") from None

    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise ConfigError(f"the header must be {','.join(COLUMNS)}", where=f"{path}:1",
                          hint="fix the first line of the file")

    entries: dict[str, SiteEntry] = {}
    first_seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        entry = _parse_row(row, f"{path}:{line}")
        if entry.code in entries:
            raise ConfigError(f"code {entry.code} is listed twice (first on line "
                              f"{first_seen[entry.code]})", where=f"{path}:{line}",
                              hint="keep one row per code")
        entries[entry.code] = entry
        first_seen[entry.code] = line
    if not entries:
        raise ConfigError("the body-site file has no rows", where=str(path),
                          hint="restore mappings/body_sites.csv from the release")
    return SiteTable(entries, source=str(path))


def _parse_row(row: list[str], where: str) -> SiteEntry:
    if len(row) != len(COLUMNS):
        raise ConfigError(f"expected {len(COLUMNS)} fields, found {len(row)}", where=where,
                          hint=f"each row needs {','.join(COLUMNS)}; quote values with commas")
    scheme, code, meaning, label = (cell.strip() for cell in row)
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown coding scheme {scheme!r}", where=where,
                          hint=f"use one of {', '.join(sorted(SCHEMES))}")
    if not _CODE.match(code):
        raise ConfigError(f"code {code!r} is not a numeric code of at most 16 digits",
                          where=where, hint="copy the code value from CID 4029")
    if not meaning or len(meaning) > 64:
        raise ConfigError("the English meaning must be 1 to 64 characters", where=where,
                          hint="copy the code meaning from CID 4029")
    if not label:
        raise ConfigError("the French label is empty", where=where,
                          hint="write the label shown to users")
    return SiteEntry(scheme, code, meaning, label)


def lookup(sites: dict[str, SiteEntry], code: str) -> BodySite:
    """Return the BodySite for `code`; an unknown code raises ImageError (where="site")."""
    entry = sites.get(code.strip())
    if entry is None:
        source = getattr(sites, "source", "mappings/body_sites.csv")
        raise ImageError(f"unknown body site code {code!r}", where="site",
                         hint=f"choose a code listed in {source}")
    return entry.body_site()


def laterality_modifier(laterality: str) -> Code | None:
    """The CID 244 modifier for R, L or B; None for U (unpaired/unknown) or empty.

    DICOM's Image Laterality U means "unpaired", which SNOMED "Unilateral" does not express,
    so no modifier is claimed for it; the table keeps U for callers that know it is one side.
    """
    if laterality in ("R", "L", "B"):
        return LATERALITY_MODIFIERS[laterality]
    return None
