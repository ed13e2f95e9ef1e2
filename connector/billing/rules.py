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

from connector.billing import rowfile as rf
from connector.billing.tariffs import KINDS, ROLES, TariffTable
from connector.domain.model import ActKind
from connector.domain.errors import ConfigError

SECTIONS = ("line", "combination", "limit", "exclusion")
CONDITIONS = ("patient_hospitalised", "same_site")
DOCTORS = ("specialist", "requester")


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


def load_rules(path: str | Path, *, tariffs: TariffTable) -> Rules:
    """Read and check rules.toml; ConfigError with file, row, line and reason on any error."""
    file = rf.read_rows(path, "billing rules", sections=SECTIONS)
    if not file.rows("line"):
        raise ConfigError("no [[line]] rows", where=str(file.path),
                             hint="add [[line]] rows saying which role bills which code")
    lines = file.check("line", _line)
    combinations = file.check("combination", _combination)
    limits = file.check("limit", _limit)
    exclusions = file.check("exclusion", _exclusion)
    rules = Rules(tuple(lines), tuple(combinations), tuple(limits), tuple(exclusions),
                  str(file.path))
    _cross_check(file, rules, tariffs)
    return rules


def _common(entry: dict) -> tuple[dt.date, dt.date | None, str]:
    valid_from, valid_to = rf.period(entry)
    return valid_from, valid_to, rf.text(entry, "source")


def _line(entry: dict) -> LineRule:
    rf.keys(entry, ("kind", "code", "role", "valid_from", "source"),
            ("valid_to", "level", "specialist_is_gp", "note"))
    kind = rf.choice(entry, "kind", KINDS)
    level = None
    if "level" in entry:
        level = rf.integer(entry, "level", minimum=1, maximum=2)
        if kind != ActKind.TELEEXPERTISE:
            raise ValueError("level applies to tele-expertise only")
    gp = rf.boolean(entry, "specialist_is_gp") if "specialist_is_gp" in entry else None
    valid_from, valid_to, source = _common(entry)
    return LineRule(kind, rf.text(entry, "code"), rf.choice(entry, "role", ROLES),
                    valid_from, valid_to, level, gp, source)


def _combination(entry: dict) -> Combination:
    rf.keys(entry, ("id", "codes", "majorations", "valid_from", "reason", "source"),
            ("valid_to", "note"))
    valid_from, valid_to, source = _common(entry)
    codes = rf.choices(entry, "codes", None)
    if not codes:
        raise ValueError("codes must list at least one base code")
    majorations = rf.choices(entry, "majorations", None)
    return Combination(rf.text(entry, "id"), codes, majorations, valid_from, valid_to,
                       rf.text(entry, "reason"), source)


def _limit(entry: dict) -> Limit:
    rf.keys(entry, ("id", "kind", "role", "codes", "max", "per", "valid_from", "reason", "source"),
            ("valid_to", "note"))
    valid_from, valid_to, source = _common(entry)
    codes = rf.choices(entry, "codes", None)
    if not codes:
        raise ValueError("codes must list at least one code")
    return Limit(rf.text(entry, "id"), rf.choice(entry, "kind", KINDS),
                 rf.choice(entry, "role", ROLES), codes, rf.integer(entry, "max", minimum=1),
                 rf.choice(entry, "per", DOCTORS), valid_from, valid_to,
                 rf.text(entry, "reason"), source)


def _exclusion(entry: dict) -> Exclusion:
    rf.keys(entry, ("id", "when", "kinds", "valid_from", "reason", "source"),
            ("roles", "valid_to", "note"))
    valid_from, valid_to, source = _common(entry)
    kinds = rf.choices(entry, "kinds", KINDS)
    if not kinds:
        raise ValueError("kinds must list at least one kind")
    return Exclusion(rf.text(entry, "id"), rf.choice(entry, "when", CONDITIONS), kinds,
                     rf.choices(entry, "roles", ROLES, default=ROLES), valid_from, valid_to,
                     rf.text(entry, "reason"), source)


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
            raise file.error("line", i, f"no {line.kind} tariff for {line.code} billed by "
                             f"{line.role} in {tariffs.source}", hint)
        for j, other in enumerate(rules.lines[:i]):
            same = (other.kind, other.role) == (line.kind, line.role)
            levels = other.level is None or line.level is None or other.level == line.level
            gps = other.gp is None or line.gp is None or other.gp == line.gp
            day = rf.overlap((line.valid_from, line.valid_to), (other.valid_from, other.valid_to))
            if same and levels and gps and day is not None:
                raise file.error("line", i, f"{line.kind} {line.role} line overlaps row #{j + 1} "
                                 f"(both apply on {day})",
                                 "end one period the day before the next starts, or tell "
                                 "them apart by level or specialist_is_gp")
    line_codes = {line.code for line in rules.lines}
    for i, combo in enumerate(rules.combinations):
        for code in combo.codes:
            if code not in line_codes:
                raise file.error("combination", i, f"base code {code} is billed by no [[line]]")
        for code in combo.majorations:
            if code in line_codes:
                raise file.error("combination", i, f"{code} is a base code, not a majoration")
            roles = {ln.role for ln in rules.lines if ln.code in combo.codes}
            for role in sorted(roles):
                if (code, role) not in known:
                    raise file.error("combination", i, f"no tariff for majoration {code} "
                                     f"billed by {role} in {tariffs.source}", hint)
        for j, other in enumerate(rules.combinations[:i]):
            shared = set(combo.codes) & set(other.codes)
            day = rf.overlap((combo.valid_from, combo.valid_to), (other.valid_from, other.valid_to))
            if shared and day is not None:
                raise file.error("combination", i, f"{sorted(shared)[0]} is already covered by "
                                 f"row #{j + 1} on {day}")
    for i, limit in enumerate(rules.limits):
        billed = {ln.code for ln in rules.lines if (ln.kind, ln.role) == (limit.kind, limit.role)}
        for code in limit.codes:
            if code not in billed:
                raise file.error("limit", i, f"no [[line]] bills {code} for {limit.kind} "
                                 f"role {limit.role}")
    ids = {}
    for section, rows in (("combination", rules.combinations), ("limit", rules.limits),
                          ("exclusion", rules.exclusions)):
        for i, row in enumerate(rows):
            if row.id in ids:
                raise file.error(section, i, f"id {row.id!r} is already used by {ids[row.id]}")
            ids[row.id] = f"[[{section}]] #{i + 1}"
