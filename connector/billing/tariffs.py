"""Dated national tariffs (mappings/billing/ngap.toml).

Amounts change by date (2019, 2022, 2026...) and an act is billed at the tariff of the day it
was performed, so re-billing an old act must find the old row. The file is checked whole at
load time, and an error names the file, the `[[tariff]]` row and the reason, so a site fixing
it knows where to look; a missing row for an act date is a DomainError at billing time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import PlainValidator

from connector.billing import rowfile
from connector.domain.errors import DomainError
from connector.domain.model import ActKind, ChargeRole, valid_date

ROLES = tuple(r.value for r in ChargeRole)
KINDS = tuple(k.value for k in ActKind)
STATUSES = ("in_force", "scheduled")
BILLINGS = ("per_act", "yearly_lump")
_AMOUNT = re.compile(r"^\d{1,6}(\.\d{1,2})?$")


@dataclass(frozen=True)
class Tariff:
    code: str
    label_fr: str
    role: str
    kind: str
    amount_cents: int
    valid_from: dt.date
    valid_to: dt.date | None  # inclusive; None = still applies
    status: str
    billing: str
    source: str
    note: str = ""

    def covers(self, day: dt.date) -> bool:
        return rowfile.covers(self.valid_from, self.valid_to, day)


@dataclass(frozen=True)
class TariffTable:
    rows: tuple[Tariff, ...]
    source: str  # the file it came from, for hints

    def find(self, code: str, role: str, act_date: str) -> Tariff:
        """The row for `code` billed by `role` on `act_date` (YYYYMMDD)."""
        if not valid_date(act_date):
            raise DomainError("act date is not a valid YYYYMMDD date", where="act_date")
        day = dt.date(int(act_date[:4]), int(act_date[4:6]), int(act_date[6:]))
        for row in self.rows:
            if row.code == code and row.role == role and row.covers(day):
                return row
        raise DomainError(f"no {code} tariff for role {role} on {act_date}", where="act_date",
                          hint=f"add a row covering this date to {self.source}")

    def amount_cents(self, code: str, role: str, act_date: str) -> int:
        """The per-act amount; a yearly lump is paid by the insurer, so asking is an error."""
        row = self.find(code, role, act_date)
        if row.billing != "per_act":
            raise DomainError(f"{code} for role {role} on {act_date} is a yearly lump paid by "
                              "the insurer, not a per-act charge", where="act_date")
        return row.amount_cents


def _cents(value) -> int:
    """Euros from a decimal string; floats are refused because they round."""
    if not isinstance(value, str) or not _AMOUNT.match(value):
        raise ValueError(f"{value!r} is not a quoted decimal string of euros like \"20.00\"")
    return int(Decimal(value) * 100)


class _Row(rowfile.Dated):
    """One [[tariff]] row, as written."""

    code: rowfile.Text
    label_fr: rowfile.Text
    role: rowfile.one_of(ROLES)
    kind: rowfile.one_of(KINDS)
    amount: Annotated[int, PlainValidator(_cents)]  # in cents
    status: rowfile.one_of(STATUSES)
    billing: rowfile.one_of(BILLINGS) = "per_act"
    source: rowfile.Text
    note: rowfile.Text = ""

    def tariff(self) -> Tariff:
        return Tariff(self.code, self.label_fr, self.role, self.kind, self.amount,
                      self.valid_from, self.valid_to, self.status, self.billing, self.source,
                      self.note)


def load_tariffs(path: str | Path) -> TariffTable:
    """Read and check ngap.toml; every bad row is a ConfigError naming file, row and line."""
    file = rowfile.RowFile(path, "tariffs", sections=("tariff",))
    rows = [row.tariff() for row in file.rows("tariff", _Row)]
    if not file.problems.found and not rows:
        file.add_file("no [[tariff]] rows", hint="add dated [[tariff]] rows")
    file.raise_any()
    _check_overlaps(rows, file)
    file.raise_any()
    return TariffTable(tuple(rows), str(file.path))


def _check_overlaps(rows: list[Tariff], file: rowfile.RowFile) -> None:
    """Two periods of one (code, role) may not share a day: the act date would be ambiguous."""
    seen: dict[tuple[str, str], list[tuple[int, Tariff]]] = {}
    for index, row in enumerate(rows):
        for other_index, other in seen.get((row.code, row.role), []):
            day = rowfile.overlap((row.valid_from, row.valid_to), (other.valid_from, other.valid_to))
            if day is not None:
                file.add("tariff", index, f"{row.code} for role {row.role} overlaps row "
                         f"#{other_index + 1} (both apply on {day})",
                         hint="end one period the day before the next starts")
        seen.setdefault((row.code, row.role), []).append((index, row))
