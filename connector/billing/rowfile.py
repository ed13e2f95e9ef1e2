"""Reading a billing mapping file made of `[[section]]` rows, with a line number per row.

tomllib gives no positions for tables, so the header lines (`[[limit]]`, `[[charge]]`...) are
found by scanning the text: the n-th `[[limit]]` header is the n-th `limit` row. Each row is
validated as a pydantic model (`RowFile.rows`), and every problem of the file is a ConfigError
whose `where` reads `<file>: [[limit]] #2, line 40`, so a site fixing the file knows where to
look. Rows are checked first; the checks across rows (overlaps, cross references) run once every
row is valid, and all their problems are reported together too.

The value types below (`Text`, `Date`, `one_of` ...) are the cells these files share.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, PlainValidator, model_validator

from connector.domain.errors import ConfigError
from connector.domain.model import parse_iso_date
from connector.validation import Problems, SiteModel

M = TypeVar("M", bound=BaseModel)
HINT = "see the key list at the top of the file"


class RowFile:
    """A row file being read: its parsed data, the line of each row, the problems found."""

    def __init__(self, path: str | Path, what: str, *, sections: tuple[str, ...],
                 scalars: tuple[str, ...] = ()):
        """Parse `path`; keys other than the `[[section]]` arrays and top-level `scalars` are
        problems."""
        self.path = Path(path)
        try:
            text = self.path.read_text(encoding="utf-8")
            self.data: dict = tomllib.loads(text)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {what}: {exc}", where=str(self.path),
                              hint="fix the file") from None
        self.problems = Problems(str(self.path), hint=HINT)
        extra = sorted(set(self.data) - set(sections) - set(scalars))
        if extra:
            known = ", ".join([f"[[{s}]]" for s in sections] + list(scalars))
            self.problems.add(f"unknown key {', '.join(extra)}",
                              hint=f"the file holds only {known}")
        for section in sections:
            if not isinstance(self.data.get(section, []), list):
                self.problems.add(f"{section} must be written as [[{section}]] tables",
                                  hint=f"write each row under a [[{section}]] header")
        self.lines: dict[str, list[int]] = {s: [] for s in sections}
        headers = {s: re.compile(rf"^\s*\[\[\s*{re.escape(s)}\s*\]\]") for s in sections}
        for number, line in enumerate(text.splitlines(), 1):
            for section, header in headers.items():
                if header.match(line):
                    self.lines[section].append(number)

    def _raw(self, section: str) -> list:
        value = self.data.get(section, [])
        return value if isinstance(value, list) else []

    def where(self, section: str, index: int) -> str:
        found = self.lines.get(section, [])
        line = f", line {found[index]}" if len(found) == len(self._raw(section)) else ""
        return f"{self.path}: [[{section}]] #{index + 1}{line}"

    def rows(self, section: str, model: type[M]) -> list[M]:
        """Every row of `section` as `model`; a bad row's problems are recorded (each naming
        the row and its line) and the row is left out."""
        out = []
        for index, entry in enumerate(self._raw(section)):
            row = self.problems.validate(model, entry, where=self.where(section, index),
                                         keyed=False)
            if row is not None:
                out.append(row)
        return out

    def add(self, section: str, index: int, text: str, hint: str = "") -> None:
        """A problem of one row found by a check across rows."""
        self.problems.add(text, where=self.where(section, index), hint=hint)

    def add_file(self, text: str, hint: str) -> None:
        """A problem of the file as a whole."""
        self.problems.add(text, hint=hint)

    def raise_any(self) -> None:
        self.problems.raise_any()


# --- cells: each raises ValueError saying what is expected ------------------------------------

def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _date(value: Any) -> dt.date:
    """A TOML date (2022-04-01) or the same as a quoted string; a datetime is refused."""
    if type(value) is dt.date:
        return value
    day = parse_iso_date(value) if isinstance(value, str) else None
    if day is not None:
        return day
    raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


Text = Annotated[str, PlainValidator(_text)]
Flag = Annotated[bool | None, PlainValidator(_flag)]  # None only as a default: see MaybeDate
Date = Annotated[dt.date, PlainValidator(_date)]
# An optional cell: None only as the field's default (TOML has no null), so no union to try.
MaybeDate = Annotated[dt.date | None, PlainValidator(_date)]


def one_of(allowed: tuple):
    """The model type of a cell holding one of `allowed`."""
    def check(value):
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    return Annotated[str, PlainValidator(check)]


def whole(minimum: int, maximum: int | None = None):
    """The model type of a whole number from `minimum` (to `maximum`)."""
    bound = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"

    def check(value):
        if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
            raise ValueError(f"{value!r} must be a whole number {bound}")
        return value
    return Annotated[int, PlainValidator(check)]


def texts(allowed: tuple | None = None, *, some: str = ""):
    """The model type of a list of distinct strings, each in `allowed` (any non-empty string
    when None); `some`: the list may not be empty, and this says what it lists."""
    def check(value):
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip()
                                                  for v in value):
            raise ValueError("must be a list of strings")
        for v in value:
            if allowed is not None and v not in allowed:
                raise ValueError(f"value {v!r} is not one of {', '.join(allowed)}")
        if len(set(value)) != len(value):
            raise ValueError("lists a value twice")
        if some and not value:
            raise ValueError(f"must list at least one {some}")
        return tuple(value)
    return Annotated[tuple[str, ...], PlainValidator(check)]


class Dated(SiteModel):
    """A row that applies from `valid_from` to `valid_to` (inclusive; None = still applies)."""

    valid_from: Date
    valid_to: MaybeDate = None

    @model_validator(mode="after")
    def _in_order(self):
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self


def covers(valid_from: dt.date, valid_to: dt.date | None, day: dt.date) -> bool:
    return valid_from <= day and (valid_to is None or day <= valid_to)


def overlap(a: tuple[dt.date, dt.date | None], b: tuple[dt.date, dt.date | None]) -> dt.date | None:
    """The first day both periods share, or None."""
    a_before = a[1] is not None and a[1] < b[0]
    b_before = b[1] is not None and b[1] < a[0]
    return None if a_before or b_before else max(a[0], b[0])
