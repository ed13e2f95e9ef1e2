"""mappings/routing.toml: the shipped file loads; pools, rules and absences decide where a
request goes and who gets it; a bad file is one ConfigError per problem, naming file, row and
line."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from connector.config import default_mappings_dir
from connector.domain.errors import ConfigError
from connector.domain.model import Facility, Priority
from connector.routing import load_routing, parse_duration
from tests.support.store_samples import make_order

GOOD = """
default_pool = "a"

[deadlines]
stat = "4h"
urgent = "1d"
routine = "30m"
grace = "2s"

[[pool]]
id = "a"
members = ["8001", "8002", "8003"]
fallback = "b"

[[pool]]
id = "b"
members = ["8009"]
destination = "spec"

[[rule]]
pool = "b"
facility = ["750000001"]
priority = ["stat"]

[[absence]]
member = "8001"
start = 2026-11-01
end = 2026-11-30
"""


def write(tmp_path, text):
    path = tmp_path / "routing.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path, text, destinations=("spec",)) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_routing(write(tmp_path, text), specialist_destinations=destinations)
    return [f"{p.where}: {p.text}" for p in info.value.problems]


def test_the_shipped_routing_file_loads():
    routing = load_routing(default_mappings_dir() / "routing.toml", specialist_destinations=())
    assert routing.default_pool in routing.pools
    assert set(routing.delays) == set(Priority)


def test_the_first_matching_rule_wins_else_the_default_pool(tmp_path):
    routing = load_routing(write(tmp_path, GOOD), specialist_destinations=("spec",))
    order = make_order("P1")
    stat_there = replace(order, priority=Priority.STAT, facility=Facility("750000001"))
    routine_there = replace(order, facility=Facility("750000001"))
    assert routing.pool_for(stat_there).id == "b"
    assert routing.pool_for(routine_there).id == "a"  # every criterion must match
    assert routing.pool_for(order).id == "a"
    assert routing.delays[Priority.ROUTINE] == dt.timedelta(minutes=30)
    assert routing.reminder_before is None and routing.grace == dt.timedelta(seconds=2)


def test_the_member_present_with_fewest_open_cases_gets_the_case(tmp_path):
    routing = load_routing(write(tmp_path, GOOD), specialist_destinations=("spec",))
    pool = routing.pools["a"]
    day = dt.date(2026, 11, 15)  # 8001 is away
    assert routing.pick(pool, day, {}) == "8002"  # first listed on a tie
    assert routing.pick(pool, day, {"8002": 2, "8003": 1}) == "8003"
    assert routing.pick(pool, dt.date(2026, 12, 1), {"8002": 2, "8003": 1}) == "8001"
    assert routing.pick(pool, day, {}, exclude="8002") == "8003"
    assert routing.pick(routing.pools["b"], day, {}, exclude="8009") == ""


@pytest.mark.parametrize("text", ["48h", "30m", "2s", "3d", " 4 h "])
def test_durations_are_read(text):
    assert parse_duration(text).total_seconds() > 0


@pytest.mark.parametrize("text", ["", "0s", "4 hours", "1.5h", 48])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_a_bad_file_names_file_row_line_and_reason_of_every_problem(tmp_path):
    text = GOOD.replace('fallback = "b"', 'fallback = "nowhere"').replace(
        'destination = "spec"', 'destination = "ehr"').replace(
        'pool = "b"\nfacility', 'pool = "c"\nfacility').replace('routine = "30m"',
                                                                 'routine = "soon"')
    found = problems(tmp_path, text)
    assert any("[deadlines]" in p and "routine" in p and "'soon'" in p for p in found), found
    found = problems(tmp_path, text.replace('routine = "soon"', 'routine = "30m"'))
    path = str(tmp_path / "routing.toml")
    assert any(p.startswith(f"{path}: [[pool]] #1, line 10") and "fallback nowhere" in p
               for p in found), found
    assert any("[[pool]] #2, line 15" in p and "destination ehr" in p for p in found), found
    assert any("[[rule]] #1, line 20" in p and "pool c" in p for p in found), found


def test_a_fallback_circle_an_unknown_default_and_an_empty_rule_are_refused(tmp_path):
    text = GOOD.replace('destination = "spec"', 'fallback = "a"').replace(
        'default_pool = "a"', 'default_pool = "z"')
    found = problems(tmp_path, text)
    assert any("go round in a circle" in p for p in found), found
    assert any("default_pool 'z'" in p for p in found), found
    found = problems(tmp_path, GOOD + '\n[[rule]]\npool = "a"\n')
    assert any("[[rule]] #2" in p and "at least one of" in p for p in found), found
    found = problems(tmp_path, GOOD.replace("end = 2026-11-30", "end = 2026-10-30"))
    assert any("[[absence]] #1" in p and "before start" in p for p in found), found
