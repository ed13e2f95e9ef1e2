"""Facility mapping (mappings/billing/facilities.toml): national code -> the facility's own codes.

Each facility bills through its own chargemaster: FT1-7 carries the facility's charge code
(`charge_code^label^coding_system`), FT1-13 its department (UF / cost centre), and FT1-11/12 the
amount only when the facility's feed wants amounts. FT1-25 keeps the national code. One
deployment may serve several facilities; `default` names the one used when an act's facility
is not given or not listed.

Checked whole at load time: every code billed per act in ngap.toml must be mapped for every
facility (so a DFT never lacks FT1-7), no two mapping rows of a facility may apply to the same
code, role and day, and an error names the file, the row, its line and the reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, PlainValidator, model_validator

from connector.billing import rowfile as rf
from connector.billing.tariffs import ROLES, TariffTable
from connector.domain.errors import DomainError
from connector.domain.model import Charge
from connector.validation import SiteModel

_MAX_CODE = 20  # CE.1 is ST; keep codes short enough for any chargemaster


@dataclass(frozen=True)
class ChargeCode:
    facility: str
    code: str  # national code
    role: str | None  # None: any role
    charge_code: str
    label: str
    department: str  # "" = the facility's department
    valid_from: dt.date | None
    valid_to: dt.date | None

    def applies(self, code: str, role: str, day: dt.date) -> bool:
        return (self.code == code and (self.role is None or self.role == role)
                and (self.valid_from is None or rf.covers(self.valid_from, self.valid_to, day)))


@dataclass(frozen=True)
class FeedLine:
    """What one charge becomes on the facility's feed (FT1 or CSV row)."""

    charge_code: str  # FT1-7.1
    charge_label: str  # FT1-7.2
    coding_system: str  # FT1-7.3
    department: str  # FT1-13
    amount: str  # FT1-11/12 as "23.00", "" when the facility does not take amounts
    currency: str


@dataclass(frozen=True)
class Facility:
    id: str
    label: str
    coding_system: str
    department: str
    send_amounts: bool
    currency: str
    charges: tuple[ChargeCode, ...]
    source: str  # the file, for hints

    def line_for(self, charge: Charge) -> FeedLine:
        """The facility's codes for `charge`; DomainError when no mapping row covers its date."""
        day = dt.date(int(charge.act_date[:4]), int(charge.act_date[4:6]), int(charge.act_date[6:]))
        row = next((r for r in self.charges if r.applies(charge.code, charge.role, day)), None)
        if row is None:
            raise DomainError(f"facility {self.id} has no charge code for {charge.code} "
                              f"({charge.role}) on {charge.act_date}", where="facility",
                              hint=f"add a [[charge]] row to {self.source}")
        cents = charge.amount_cents
        amount = f"{cents // 100}.{cents % 100:02d}" if self.send_amounts else ""
        return FeedLine(row.charge_code, row.label, self.coding_system,
                        row.department or self.department, amount, self.currency)


@dataclass(frozen=True)
class FacilityMap:
    facilities: dict[str, Facility]
    default: str
    source: str

    def get(self, facility_id: str | None = None) -> Facility:
        """The facility with this id, or the default one when the id is empty or not listed."""
        return self.facilities.get(facility_id or "", self.facilities[self.default])


def _currency(value) -> str:
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise ValueError(f"{value!r} is not a 3-letter ISO 4217 code")
    return value


def _short(value: str) -> str:
    if len(value) > _MAX_CODE:
        raise ValueError(f"longer than {_MAX_CODE} characters")
    return value


class _Facility(SiteModel):
    id: rf.Text
    label: rf.Text
    coding_system: rf.Text
    send_amounts: rf.Flag
    department: rf.Text = ""
    currency: Annotated[str, PlainValidator(_currency)] = "EUR"
    note: rf.Text = ""


class _Charge(SiteModel):
    facility: rf.Text
    code: rf.Text
    charge_code: Annotated[rf.Text, AfterValidator(_short)]
    label: rf.Text
    role: rf.one_of(ROLES) = None  # None: any role
    department: rf.Text = ""
    valid_from: rf.MaybeDate = None
    valid_to: rf.MaybeDate = None
    note: rf.Text = ""

    @model_validator(mode="after")
    def _period(self):
        if self.valid_to is not None and self.valid_from is None:
            raise ValueError("valid_to needs a valid_from")
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self

    def charge(self) -> ChargeCode:
        return ChargeCode(self.facility, self.code, self.role, self.charge_code, self.label,
                          self.department, self.valid_from, self.valid_to)


def load_facilities(path: str | Path, *, tariffs: TariffTable) -> FacilityMap:
    """Read and check facilities.toml; a ConfigError names file, row, line and reason of every
    problem."""
    file = rf.RowFile(path, "facility mapping", sections=("facility", "charge"),
                      scalars=("default",))
    rows = file.rows("facility", _Facility)
    charges = [row.charge() for row in file.rows("charge", _Charge)]
    if not file.problems.found and not rows:
        file.add_file("no [[facility]] rows",
                      hint="add a [[facility]] row per facility billed through this connector")
    file.raise_any()
    ids: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.id in ids:
            file.add("facility", i, f"facility {row.id} is already row #{ids[row.id] + 1}")
        ids.setdefault(row.id, i)
    default = file.data.get("default")
    if not isinstance(default, str) or default not in ids:
        file.add_file(f"default {default!r} is not the id of a [[facility]]",
                      hint='write default = "<id of a facility>"')
    per_act = {(t.code, t.role) for t in tariffs.rows if t.billing == "per_act"}
    codes = {t.code for t in tariffs.rows}
    for i, row in enumerate(charges):
        if row.facility not in ids:
            file.add("charge", i, f"facility {row.facility} is not a [[facility]] id")
        if row.code not in codes or (row.role and (row.code, row.role) not in per_act):
            role = f" billed per act by {row.role}" if row.role else ""
            file.add("charge", i, f"no tariff for {row.code}{role} in {tariffs.source}")
        for j, other in enumerate(charges[:i]):
            same = (other.facility, other.code) == (row.facility, row.code) and (
                other.role is None or row.role is None or other.role == row.role)
            always = (dt.date.min, None)
            day = rf.overlap((row.valid_from, row.valid_to) if row.valid_from else always,
                             (other.valid_from, other.valid_to) if other.valid_from else always)
            if same and day is not None:
                file.add("charge", i, f"{row.code} at {row.facility} is already mapped by row "
                         f"#{j + 1}", "end one period the day before the next starts, or tell "
                         "them apart by role")
    facilities = {}
    for i, row in enumerate(rows):
        mine = tuple(r for r in charges if r.facility == row.id)
        for code, role in sorted(per_act):
            if not any(r.code == code and r.role in (None, role) for r in mine):
                file.add("facility", i, f"facility {row.id} maps no charge code for {code} "
                         f"({role})", f"add a [[charge]] row with facility = \"{row.id}\"")
        facilities.setdefault(row.id, Facility(
            row.id, row.label, row.coding_system, row.department, row.send_amounts,
            row.currency, mine, str(file.path)))
    file.raise_any()
    return FacilityMap(facilities, default, str(file.path))
