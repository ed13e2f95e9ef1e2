"""Reading a billing mapping file made of `[[section]]` rows, with a line number per row.

tomllib gives no positions for tables, so the header lines (`[[limit]]`, `[[charge]]`...) are
found by scanning the text, as `tariffs.py` does: the n-th `[[limit]]` header is the n-th
`limit` row. Every error raised while reading a row is a ConfigError whose `where` reads
`<file>: [[limit]] #2, line 40`, so a site fixing the file knows where to look.

The field readers below raise ValueError with the reason; `RowFile.check` adds file and row.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from connector.domain.errors import ConfigError
from connector.domain.model import parse_iso_date

T = TypeVar("T")


@dataclass(frozen=True)
class RowFile:
    path: Path
    data: dict
    lines: dict[str, list[int]]  # section -> header line numbers, in order

    def rows(self, section: str) -> list:
        value = self.data.get(section, [])
        if not isinstance(value, list):
            raise ConfigError(f"{section} must be written as [[{section}]] tables",
                              where=str(self.path),
                              hint=f"write each row under a [[{section}]] header")
        return value

    def where(self, section: str, index: int) -> str:
        found = self.lines.get(section, [])
        line = f", line {found[index]}" if len(found) == len(self.rows(section)) else ""
        return f"{self.path}: [[{section}]] #{index + 1}{line}"

    def error(self, section: str, index: int, text: str, hint: str = "") -> ConfigError:
        return ConfigError(text, where=self.where(section, index),
                           hint=hint or "see the key list at the top of the file")

    def check(self, section: str, reader: Callable[[dict], T]) -> list[T]:
        """Read every row of `section` with `reader`; a ValueError becomes a ConfigError
        naming the file, the row and its line."""
        out = []
        for index, entry in enumerate(self.rows(section)):
            try:
                if not isinstance(entry, dict):
                    raise ValueError("row is not a table")
                out.append(reader(entry))
            except ValueError as exc:
                raise self.error(section, index, str(exc)) from None
        return out


def read_rows(path: str | Path, what: str, *, sections: tuple[str, ...],
              scalars: tuple[str, ...] = ()) -> RowFile:
    """Parse `path`; refuse keys other than the `[[section]]` arrays and top-level `scalars`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {what}: {exc}", where=str(path),
                          hint="fix the file") from None
    extra = sorted(set(data) - set(sections) - set(scalars))
    if extra:
        known = ", ".join([f"[[{s}]]" for s in sections] + list(scalars))
        raise ConfigError(f"unknown key {', '.join(extra)}", where=str(path),
                          hint=f"the file holds only {known}")
    lines: dict[str, list[int]] = {s: [] for s in sections}
    headers = {s: re.compile(rf"^\s*\[\[\s*{re.escape(s)}\s*\]\]") for s in sections}
    for number, line in enumerate(text.splitlines(), 1):
        for section, header in headers.items():
            if header.match(line):
                lines[section].append(number)
    return RowFile(path, data, lines)


# --- field readers: return the value or raise ValueError with the reason -----------------------

def keys(entry: dict, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(entry) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"unknown key {', '.join(unknown)}")
    missing = [k for k in required if k not in entry]
    if missing:
        raise ValueError(f"missing key {', '.join(missing)}")


def text(entry: dict, key: str, default: str | None = None) -> str:
    if key not in entry and default is not None:
        return default
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string")
    return value.strip()


def choice(entry: dict, key: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    value = entry.get(key, default)
    if value not in allowed:
        raise ValueError(f"{key} {value!r} is not one of {', '.join(allowed)}")
    return value


def choices(entry: dict, key: str, allowed: tuple[str, ...] | None,
            default: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """A list of strings, each in `allowed` (any non-empty string when `allowed` is None)."""
    if key not in entry and default is not None:
        return default
    value = entry.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{key} must be a list of strings")
    if allowed is not None:
        for v in value:
            if v not in allowed:
                raise ValueError(f"{key} value {v!r} is not one of {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ValueError(f"{key} lists a value twice")
    return tuple(value)


def boolean(entry: dict, key: str, default: bool | None = None) -> bool:
    if key not in entry and default is not None:
        return default
    value = entry.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def integer(entry: dict, key: str, *, minimum: int, maximum: int | None = None) -> int:
    value = entry.get(key)
    if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        raise ValueError(f"{key} {value!r} must be a whole number {bound}")
    return value


def date(entry: dict, key: str) -> dt.date:
    """A TOML date (2022-04-01) or the same as a quoted string; a datetime is refused."""
    value = entry[key]
    if type(value) is dt.date:
        return value
    day = parse_iso_date(value) if isinstance(value, str) else None
    if day is not None:
        return day
    raise ValueError(f"{key} {value!r} is not a date written YYYY-MM-DD")


def period(entry: dict) -> tuple[dt.date, dt.date | None]:
    """valid_from (required) and valid_to (optional, inclusive), in order."""
    valid_from = date(entry, "valid_from")
    valid_to = date(entry, "valid_to") if "valid_to" in entry else None
    if valid_to is not None and valid_to < valid_from:
        raise ValueError(f"valid_to {valid_to} is before valid_from {valid_from}")
    return valid_from, valid_to


def covers(valid_from: dt.date, valid_to: dt.date | None, day: dt.date) -> bool:
    return valid_from <= day and (valid_to is None or day <= valid_to)


def overlap(a: tuple[dt.date, dt.date | None], b: tuple[dt.date, dt.date | None]) -> dt.date | None:
    """The first day both periods share, or None."""
    a_before = a[1] is not None and a[1] < b[0]
    b_before = b[1] is not None and b[1] < a[0]
    return None if a_before or b_before else max(a[0], b[0])
