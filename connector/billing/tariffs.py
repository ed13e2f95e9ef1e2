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

from connector.domain.errors import ConfigError, DomainError
from connector.billing import rowfile
from connector.domain.model import ActKind, ChargeRole, valid_date

ROLES = tuple(r.value for r in ChargeRole)
KINDS = tuple(k.value for k in ActKind)
STATUSES = ("in_force", "scheduled")
BILLINGS = ("per_act", "yearly_lump")
_REQUIRED = ("code", "label_fr", "role", "kind", "amount", "valid_from", "status", "source")
_OPTIONAL = ("valid_to", "billing", "note")
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
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


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


def load_tariffs(path: str | Path) -> TariffTable:
    file = rowfile.read_rows(path, "tariffs", sections=("tariff",))
    if not file.rows("tariff"):
        raise ConfigError("no [[tariff]] rows", where=str(file.path),
                          hint="add dated [[tariff]] rows")
    rows = file.check("tariff", _row)

    def where(index: int) -> str:
        return file.where("tariff", index)

    _check_overlaps(rows, where)
    return TariffTable(tuple(rows), str(file.path))


def _row(entry) -> Tariff:
    """One row, or ValueError with the reason (the caller adds file and row)."""
    rowfile.keys(entry, _REQUIRED, _OPTIONAL)
    for key in ("code", "label_fr", "source", "note"):
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            raise ValueError(f"{key} must be a non-empty string")
    role = rowfile.choice(entry, "role", ROLES)
    kind = rowfile.choice(entry, "kind", KINDS)
    status = rowfile.choice(entry, "status", STATUSES)
    billing = rowfile.choice(entry, "billing", BILLINGS, default="per_act")
    valid_from = rowfile.date(entry, "valid_from")
    valid_to = rowfile.date(entry, "valid_to") if "valid_to" in entry else None
    if valid_to is not None and valid_to < valid_from:
        raise ValueError(f"valid_to {valid_to} is before valid_from {valid_from}")
    return Tariff(entry["code"].strip(), entry["label_fr"].strip(), role, kind,
                  _cents(entry["amount"]), valid_from, valid_to, status, billing,
                  entry["source"].strip(), entry.get("note", "").strip())


def _cents(value) -> int:
    """Euros from a decimal string; floats are refused because they round."""
    if not isinstance(value, str) or not _AMOUNT.match(value):
        raise ValueError(f"amount {value!r} is not a quoted decimal string of euros like \"20.00\"")
    return int(Decimal(value) * 100)


def _check_overlaps(rows: list[Tariff], where) -> None:
    """Two periods of one (code, role) may not share a day: the act date would be ambiguous."""
    seen: dict[tuple[str, str], list[tuple[int, Tariff]]] = {}
    for index, row in enumerate(rows):
        for other_index, other in seen.get((row.code, row.role), []):
            ends_before = other.valid_to is not None and other.valid_to < row.valid_from
            starts_after = row.valid_to is not None and row.valid_to < other.valid_from
            if not (ends_before or starts_after):
                raise ConfigError(
                    f"{row.code} for role {row.role} overlaps row #{other_index + 1} "
                    f"(both apply on {max(row.valid_from, other.valid_from)})",
                    where=where(index), hint="end one period the day before the next starts")
        seen.setdefault((row.code, row.role), []).append((index, row))
