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

from connector.billing import rowfile as rf
from connector.billing.tariffs import ROLES, TariffTable
from connector.domain.errors import ConfigError, DomainError
from connector.domain.model import Charge

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


def load_facilities(path: str | Path, *, tariffs: TariffTable) -> FacilityMap:
    file = rf.read_rows(path, "facility mapping", sections=("facility", "charge"),
                        scalars=("default",))
    facilities_rows = file.check("facility", _facility_fields)
    if not facilities_rows:
        raise ConfigError("no [[facility]] rows", where=str(file.path),
                          hint="add a [[facility]] row per facility billed through this connector")
    ids: dict[str, int] = {}
    for i, fields in enumerate(facilities_rows):
        if fields["id"] in ids:
            raise file.error("facility", i, f"facility {fields['id']} is already row "
                             f"#{ids[fields['id']] + 1}")
        ids[fields["id"]] = i
    default = file.data.get("default")
    if not isinstance(default, str) or default not in ids:
        raise ConfigError(f"default {default!r} is not the id of a [[facility]]",
                          where=str(file.path), hint='write default = "<id of a facility>"')
    charges = file.check("charge", _charge_row)
    per_act = {(t.code, t.role) for t in tariffs.rows if t.billing == "per_act"}
    codes = {t.code for t in tariffs.rows}
    for i, row in enumerate(charges):
        if row.facility not in ids:
            raise file.error("charge", i, f"facility {row.facility} is not a [[facility]] id")
        if row.code not in codes or (row.role and (row.code, row.role) not in per_act):
            role = f" billed per act by {row.role}" if row.role else ""
            raise file.error("charge", i, f"no tariff for {row.code}{role} in {tariffs.source}")
        for j, other in enumerate(charges[:i]):
            same = (other.facility, other.code) == (row.facility, row.code) and (
                other.role is None or row.role is None or other.role == row.role)
            always = (dt.date.min, None)
            day = rf.overlap((row.valid_from, row.valid_to) if row.valid_from else always,
                             (other.valid_from, other.valid_to) if other.valid_from else always)
            if same and day is not None:
                raise file.error("charge", i, f"{row.code} at {row.facility} is already mapped "
                                 f"by row #{j + 1}", "end one period the day before the next "
                                 "starts, or tell them apart by role")
    facilities = {}
    for i, fields in enumerate(facilities_rows):
        mine = tuple(r for r in charges if r.facility == fields["id"])
        for code, role in sorted(per_act):
            if not any(r.code == code and r.role in (None, role) for r in mine):
                raise file.error("facility", i, f"facility {fields['id']} maps no charge code "
                                 f"for {code} ({role})",
                                 f"add a [[charge]] row with facility = \"{fields['id']}\"")
        facilities[fields["id"]] = Facility(charges=mine, source=str(file.path), **fields)
    return FacilityMap(facilities, default, str(file.path))


def _facility_fields(entry: dict) -> dict:
    rf.keys(entry, ("id", "label", "coding_system", "send_amounts"),
            ("department", "currency", "note"))
    fields = {
        "id": rf.text(entry, "id"),
        "label": rf.text(entry, "label"),
        "coding_system": rf.text(entry, "coding_system"),
        "department": rf.text(entry, "department") if "department" in entry else "",
        "send_amounts": rf.boolean(entry, "send_amounts"),
        "currency": rf.text(entry, "currency", default="EUR"),
    }
    if len(fields["currency"]) != 3 or not fields["currency"].isalpha():
        raise ValueError(f"currency {fields['currency']!r} is not a 3-letter ISO 4217 code")
    return fields


def _charge_row(entry: dict) -> ChargeCode:
    rf.keys(entry, ("facility", "code", "charge_code", "label"),
            ("role", "department", "valid_from", "valid_to", "note"))
    if "valid_to" in entry and "valid_from" not in entry:
        raise ValueError("valid_to needs a valid_from")
    valid_from, valid_to = rf.period(entry) if "valid_from" in entry else (None, None)
    charge_code = rf.text(entry, "charge_code")
    if len(charge_code) > _MAX_CODE:
        raise ValueError(f"charge_code is longer than {_MAX_CODE} characters")
    return ChargeCode(
        facility=rf.text(entry, "facility"), code=rf.text(entry, "code"),
        role=rf.choice(entry, "role", ROLES) if "role" in entry else None,
        charge_code=charge_code, label=rf.text(entry, "label"),
        department=rf.text(entry, "department") if "department" in entry else "",
        valid_from=valid_from, valid_to=valid_to)
