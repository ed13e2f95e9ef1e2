"""The care network (`mappings/routing.toml`): pools of dermatologists, the rules that send a
request to a pool, the answer delay per priority, reminders and escalation.

A request goes to the pool of the first `[[rule]]` it matches (every criterion a rule gives
must match; a criterion not given matches anything), else to `default_pool`. Inside the pool
the case goes to the member present that day (not in an `[[absence]]` period) with the fewest
open cases, the first listed on a tie; with nobody present it waits in the pool, unassigned.
A case not answered `grace` after its deadline moves to the pool's `fallback` pool.

Checked whole at load time (row files with line numbers, `billing/rowfile.py`): pool ids are
unique, every pool a rule, a fallback or `default_pool` names exists, a fallback chain has no
loop, every priority has a delay, and a pool's `destination` is a configured `[[destinations]]`
of role `specialist`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import PlainValidator, model_validator

from .billing import rowfile as rf
from .domain.model import TRIAGE_LEVELS, Order, Priority
from .validation import SiteModel

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> dt.timedelta:
    """`"48h"`, `"30m"`, `"2s"`, `"3d"` as a timedelta; ValueError saying what is expected."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration such as \"48h\", \"30m\", \"2s\" or \"3d\"")
    return dt.timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])


Duration = Annotated[dt.timedelta, PlainValidator(parse_duration)]
MaybeDuration = Annotated[dt.timedelta | None, PlainValidator(parse_duration)]


@dataclass(frozen=True)
class Pool:
    id: str
    label: str
    members: tuple[str, ...]  # IdNatPS (RPPS-based ids), in the order ties are broken
    fallback: str  # the pool a late case escalates to, "" for none
    destination: str  # the specialist destination, "" for every specialist destination

    def admits(self, practitioner_id: str) -> bool:
        """Whether this specialist reads the pool's cases: its members, or anyone when it
        lists none (the site has not said who reads it, as in the shipped file)."""
        return not self.members or practitioner_id in self.members


@dataclass(frozen=True)
class Rule:
    pool: str
    facilities: tuple[str, ...]  # FINESS of the requesting facility (ORC-21, ORC-17, MSH-4)
    services: tuple[str, ...]  # the requesting service (ORC-17.1, else PV1-3.1)
    codes: tuple[str, ...]  # OBR-4.1, the order's code
    priorities: tuple[str, ...]
    triage: tuple[str, ...]

    def matches(self, order: Order) -> bool:
        facility = order.facility.finess if order.facility is not None else ""
        wanted = ((self.facilities, facility), (self.services, order.service),
                  (self.codes, order.procedure_code.upper()), (self.priorities, order.priority.value),
                  (self.triage, order.triage.level))
        return all(not allowed or value in allowed for allowed, value in wanted)


@dataclass(frozen=True)
class Absence:
    member: str
    start: dt.date
    end: dt.date

    def covers(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class Routing:
    pools: dict[str, Pool]
    rules: tuple[Rule, ...]
    default_pool: str
    delays: dict[Priority, dt.timedelta]
    reminder_before: dt.timedelta | None  # None: no reminder
    grace: dt.timedelta  # after the deadline, before escalating to the fallback pool
    absences: tuple[Absence, ...]
    source: str

    def pool_for(self, order: Order) -> Pool:
        """The pool of the first rule the order matches, else the default pool."""
        rule = next((r for r in self.rules if r.matches(order)), None)
        return self.pools[rule.pool if rule is not None else self.default_pool]

    def pools_of(self, practitioner_id: str) -> tuple[str, ...]:
        """The pools whose cases this specialist reads (`Pool.admits`)."""
        return tuple(p.id for p in self.pools.values() if p.admits(practitioner_id))

    def pick(self, pool: Pool, day: dt.date, open_cases: dict[str, int],
             absences: tuple[Absence, ...] = (), exclude: str = "") -> str:
        """The member of `pool` present on `day` (this file's absences and `absences`, e.g.
        those entered through the API) with the fewest `open_cases`, the first listed on a
        tie; "" when nobody is present. `exclude`: a member who just handed the case back."""
        away = {a.member for a in (*self.absences, *absences) if a.covers(day)}
        present = [m for m in pool.members if m not in away and m != exclude]
        if not present:
            return ""
        return min(present, key=lambda m: (open_cases.get(m, 0), pool.members.index(m)))


# --- the file, as written --------------------------------------------------------------------

class _Deadlines(SiteModel):
    stat: Duration
    urgent: Duration
    routine: Duration
    reminder_before: MaybeDuration = None
    grace: Duration


class _Pool(SiteModel):
    id: rf.Text
    label: rf.Text = ""
    members: rf.texts()
    fallback: rf.Text = ""
    destination: rf.Text = ""
    note: rf.Text = ""


class _Rule(SiteModel):
    pool: rf.Text
    facility: rf.texts() = ()
    service: rf.texts() = ()
    code: rf.texts() = ()
    priority: rf.texts(tuple(p.value for p in Priority)) = ()
    triage: rf.texts(TRIAGE_LEVELS) = ()
    note: rf.Text = ""

    @model_validator(mode="after")
    def _says_something(self):
        if not (self.facility or self.service or self.code or self.priority or self.triage):
            raise ValueError("a rule needs at least one of facility, service, code, priority, "
                             "triage (default_pool takes every other request)")
        return self


class _Absence(SiteModel):
    member: rf.Text
    start: rf.Date
    end: rf.Date
    note: rf.Text = ""

    @model_validator(mode="after")
    def _in_order(self):
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


def load_routing(path: str | Path, *, specialist_destinations: tuple[str, ...]) -> Routing:
    """Read and check routing.toml; a ConfigError names file, row, line and reason of every
    problem. `specialist_destinations`: the names of the configured specialist destinations,
    which a pool's `destination` must be one of."""
    file = rf.RowFile(path, "routing file", sections=("pool", "rule", "absence"),
                      scalars=("default_pool", "deadlines"))
    deadlines = file.problems.validate(_Deadlines, file.data.get("deadlines", {}),
                                       where=f"{file.path} [deadlines]", keyed=False)
    pools = file.rows("pool", _Pool)
    rules = file.rows("rule", _Rule)
    absences = file.rows("absence", _Absence)
    if not file.problems.found and not pools:
        file.add_file("no [[pool]] rows", hint="add a [[pool]] row per group of dermatologists")
    file.raise_any()
    ids: dict[str, int] = {}
    every = {p.id for p in pools}
    for i, row in enumerate(pools):
        if row.id in ids:
            file.add("pool", i, f"pool {row.id} is already row #{ids[row.id] + 1}")
        ids.setdefault(row.id, i)
        if row.fallback and row.fallback not in every:
            file.add("pool", i, f"fallback {row.fallback} is not the id of a [[pool]]")
        if row.destination and row.destination not in specialist_destinations:
            file.add("pool", i, f"destination {row.destination} is not a [[destinations]] "
                     'of role "specialist" in the configuration',
                     hint="add it to the configuration, or remove the key (every specialist "
                          "destination is then used)")
    default = file.data.get("default_pool")
    if not isinstance(default, str) or default not in ids:
        file.add_file(f"default_pool {default!r} is not the id of a [[pool]]",
                      hint='write default_pool = "<id of a pool>"')
    for i, row in enumerate(rules):
        if row.pool not in ids:
            file.add("rule", i, f"pool {row.pool} is not the id of a [[pool]]")
    by_id = {p.id: p for p in pools}
    for i, row in enumerate(pools):
        seen, at = {row.id}, row.fallback
        while at in by_id:
            if at in seen:
                file.add("pool", i, f"the fallbacks of pool {row.id} go round in a circle",
                         hint="end the chain on a pool without fallback")
                break
            seen.add(at)
            at = by_id[at].fallback
    file.raise_any()
    return Routing(
        pools={p.id: Pool(p.id, p.label or p.id, p.members, p.fallback, p.destination)
               for p in pools},
        rules=tuple(Rule(r.pool, r.facility, r.service, tuple(c.upper() for c in r.code),
                         r.priority, r.triage) for r in rules),
        default_pool=default,
        delays={Priority.STAT: deadlines.stat, Priority.URGENT: deadlines.urgent,
                Priority.ROUTINE: deadlines.routine},
        reminder_before=deadlines.reminder_before, grace=deadlines.grace,
        absences=tuple(Absence(a.member, a.start, a.end) for a in absences),
        source=str(file.path))
