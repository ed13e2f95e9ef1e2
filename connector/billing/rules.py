"""Billing rules as data (mappings/billing/rules.toml): what an act bills and what stops it.

Four kinds of rows, each dated (`valid_from`, optional inclusive `valid_to`) and sourced:

- `[[line]]`        which code each role bills for an act of a kind (tele-expertise requis TE2,
                    requérant RQD...), optionally only for a tele-expertise level (1/2, before
                    2022-04-01) or only when the teleconsultation doctor is / is not a GP.
- `[[combination]]` which majorations may be billed with a base code (none with tele-expertise;
                    MPC and MCS with TC; MCG with TCG) and the reason given when one may not.
- `[[limit]]`       at most `max` acts of `codes` per calendar year, per patient, per doctor
                    (`per` = the specialist or the requester), for one role.
- `[[exclusion]]`   a condition of the act (`patient_hospitalised`, `same_site`) under which the
                    listed kinds/roles bill nothing, with the reason.

The file is checked whole at load time, against the tariff table too (every code must have a
tariff for its role and kind); an error names the file, the row, its line and the reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import PlainValidator, model_validator

from connector.billing import rowfile as rf
from connector.billing.tariffs import KINDS, ROLES, TariffTable
from connector.domain.model import ActKind

SECTIONS = ("line", "combination", "limit", "exclusion")
CONDITIONS = ("patient_hospitalised", "same_site")
DOCTORS = ("specialist", "requester")
LEVELS = (1, 2)


@dataclass(frozen=True)
class LineRule:
    kind: str
    code: str
    role: str
    valid_from: dt.date
    valid_to: dt.date | None
    level: int | None  # only for this tele-expertise level; None = any
    gp: bool | None  # only when specialist_is_gp is this value; None = either
    source: str

    def applies(self, kind: str, day: dt.date, level: int | None, gp: bool | None) -> bool:
        return (self.kind == kind and rf.covers(self.valid_from, self.valid_to, day)
                and (self.level is None or self.level == level)
                and (self.gp is None or gp is None or self.gp == gp))


@dataclass(frozen=True)
class Combination:
    id: str
    codes: tuple[str, ...]  # base codes this row is about
    majorations: tuple[str, ...]  # the only majorations billable with them (may be empty)
    valid_from: dt.date
    valid_to: dt.date | None
    reason: str
    source: str


@dataclass(frozen=True)
class Limit:
    id: str
    kind: str
    role: str
    codes: tuple[str, ...]
    max: int  # acts per calendar year, per patient, per doctor
    per: str  # specialist | requester: whose acts are counted
    valid_from: dt.date
    valid_to: dt.date | None
    reason: str
    source: str

    def covers(self, day: dt.date) -> bool:
        return rf.covers(self.valid_from, self.valid_to, day)


@dataclass(frozen=True)
class Exclusion:
    id: str
    when: str  # one of CONDITIONS
    kinds: tuple[str, ...]
    roles: tuple[str, ...]
    valid_from: dt.date
    valid_to: dt.date | None
    reason: str
    source: str


@dataclass(frozen=True)
class Rules:
    lines: tuple[LineRule, ...]
    combinations: tuple[Combination, ...]
    limits: tuple[Limit, ...]
    exclusions: tuple[Exclusion, ...]
    source: str  # the file, for hints

    def lines_for(self, kind: str, day: dt.date, level: int | None, gp: bool | None,
                  role: str | None = None) -> list[LineRule]:
        return [r for r in self.lines if r.applies(kind, day, level, gp)
                and (role is None or r.role == role)]

    def billable_from(self, kind: str) -> dt.date | None:
        """The first day any line of this kind applies: before it, the act is not billable."""
        return min((r.valid_from for r in self.lines if r.kind == kind), default=None)

    def needs_level(self, kind: str, day: dt.date) -> bool:
        """True when the lines of this kind on this day depend on the act's level."""
        return any(r.level is not None for r in self.lines
                   if r.kind == kind and rf.covers(r.valid_from, r.valid_to, day))

    def combination_for(self, code: str, day: dt.date) -> Combination | None:
        return next((c for c in self.combinations if code in c.codes
                     and rf.covers(c.valid_from, c.valid_to, day)), None)

    def majorations(self) -> frozenset[str]:
        return frozenset(m for c in self.combinations for m in c.majorations)

    def limits_for(self, kind: str, role: str, code: str, day: dt.date) -> list[Limit]:
        return [lim for lim in self.limits if lim.kind == kind and lim.role == role
                and code in lim.codes and lim.covers(day)]

    def exclusions_for(self, kind: str, role: str, day: dt.date) -> list[Exclusion]:
        return [e for e in self.exclusions if kind in e.kinds and role in e.roles
                and rf.covers(e.valid_from, e.valid_to, day)]


def _level(value) -> int:
    if type(value) is not int or value not in LEVELS:
        raise ValueError(f"{value!r} must be a whole number from 1 to 2")
    return value


class _Row(rf.Dated):
    source: rf.Text
    note: rf.Text = ""


class _Line(_Row):
    kind: rf.one_of(KINDS)
    code: rf.Text
    role: rf.one_of(ROLES)
    level: Annotated[int | None, PlainValidator(_level)] = None
    specialist_is_gp: rf.Flag = None

    @model_validator(mode="after")
    def _level_for_teleexpertise(self):
        if self.level is not None and self.kind != ActKind.TELEEXPERTISE:
            raise ValueError("level applies to tele-expertise only")
        return self

    def rule(self) -> LineRule:
        return LineRule(self.kind, self.code, self.role, self.valid_from, self.valid_to,
                        self.level, self.specialist_is_gp, self.source)


class _Combination(_Row):
    id: rf.Text
    codes: rf.texts(some="base code")
    majorations: rf.texts()
    reason: rf.Text

    def rule(self) -> Combination:
        return Combination(self.id, self.codes, self.majorations, self.valid_from,
                           self.valid_to, self.reason, self.source)


class _Limit(_Row):
    id: rf.Text
    kind: rf.one_of(KINDS)
    role: rf.one_of(ROLES)
    codes: rf.texts(some="code")
    max: rf.whole(1)
    per: rf.one_of(DOCTORS)
    reason: rf.Text

    def rule(self) -> Limit:
        return Limit(self.id, self.kind, self.role, self.codes, self.max, self.per,
                     self.valid_from, self.valid_to, self.reason, self.source)


class _Exclusion(_Row):
    id: rf.Text
    when: rf.one_of(CONDITIONS)
    kinds: rf.texts(KINDS, some="kind")
    roles: rf.texts(ROLES) = ROLES
    reason: rf.Text

    def rule(self) -> Exclusion:
        return Exclusion(self.id, self.when, self.kinds, self.roles, self.valid_from,
                         self.valid_to, self.reason, self.source)


_MODELS = {"line": _Line, "combination": _Combination, "limit": _Limit, "exclusion": _Exclusion}


def load_rules(path: str | Path, *, tariffs: TariffTable) -> Rules:
    """Read and check rules.toml; a ConfigError names file, row, line and reason of every
    problem."""
    file = rf.RowFile(path, "billing rules", sections=SECTIONS)
    read = {section: tuple(row.rule() for row in file.rows(section, model))
            for section, model in _MODELS.items()}
    if not file.problems.found and not read["line"]:
        file.add_file("no [[line]] rows",
                      hint="add [[line]] rows saying which role bills which code")
    file.raise_any()
    rules = Rules(read["line"], read["combination"], read["limit"], read["exclusion"],
                  str(file.path))
    _cross_check(file, rules, tariffs)
    file.raise_any()
    return rules


def _tariff_kinds(tariffs: TariffTable) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for row in tariffs.rows:
        out.setdefault((row.code, row.role), set()).add(row.kind)
    return out


def _cross_check(file: rf.RowFile, rules: Rules, tariffs: TariffTable) -> None:
    known = _tariff_kinds(tariffs)
    hint = f"add the tariff to {tariffs.source} or fix the code"
    for i, line in enumerate(rules.lines):
        if line.kind not in known.get((line.code, line.role), set()):
            file.add("line", i, f"no {line.kind} tariff for {line.code} billed by "
                     f"{line.role} in {tariffs.source}", hint)
        for j, other in enumerate(rules.lines[:i]):
            same = (other.kind, other.role) == (line.kind, line.role)
            levels = other.level is None or line.level is None or other.level == line.level
            gps = other.gp is None or line.gp is None or other.gp == line.gp
            day = rf.overlap((line.valid_from, line.valid_to), (other.valid_from, other.valid_to))
            if same and levels and gps and day is not None:
                file.add("line", i, f"{line.kind} {line.role} line overlaps row #{j + 1} "
                         f"(both apply on {day})",
                         "end one period the day before the next starts, or tell "
                         "them apart by level or specialist_is_gp")
    line_codes = {line.code for line in rules.lines}
    for i, combo in enumerate(rules.combinations):
        for code in combo.codes:
            if code not in line_codes:
                file.add("combination", i, f"base code {code} is billed by no [[line]]")
        for code in combo.majorations:
            if code in line_codes:
                file.add("combination", i, f"{code} is a base code, not a majoration")
            roles = {ln.role for ln in rules.lines if ln.code in combo.codes}
            for role in sorted(roles):
                if (code, role) not in known:
                    file.add("combination", i, f"no tariff for majoration {code} "
                             f"billed by {role} in {tariffs.source}", hint)
        for j, other in enumerate(rules.combinations[:i]):
            shared = set(combo.codes) & set(other.codes)
            day = rf.overlap((combo.valid_from, combo.valid_to), (other.valid_from, other.valid_to))
            if shared and day is not None:
                file.add("combination", i, f"{sorted(shared)[0]} is already covered by "
                         f"row #{j + 1} on {day}")
    for i, limit in enumerate(rules.limits):
        billed = {ln.code for ln in rules.lines if (ln.kind, ln.role) == (limit.kind, limit.role)}
        for code in limit.codes:
            if code not in billed:
                file.add("limit", i, f"no [[line]] bills {code} for {limit.kind} "
                         f"role {limit.role}")
    ids = {}
    for section, rows in (("combination", rules.combinations), ("limit", rules.limits),
                          ("exclusion", rules.exclusions)):
        for i, row in enumerate(rows):
            if row.id in ids:
                file.add(section, i, f"id {row.id!r} is already used by {ids[row.id]}")
            ids.setdefault(row.id, f"[[{section}]] #{i + 1}")
