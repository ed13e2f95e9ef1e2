"""Statistics on a generated history of 240 cases with known answers (tests/support/history.py,
played through the real intake and workflow steps on a controlled clock): `telederm stats` as a
user runs it (json, csv, table, a period) and `GET /api/stats` (manager and admin only)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import statistics

import pytest
from fastapi.testclient import TestClient

from connector.bootstrap import build
from connector.config import load_config
from connector.entrypoints.api.app import create_app
from connector.statistics import figures, period
from tests.support.cli import one_error_line, telederm, write_config
from tests.support.history import CASES, PLAN, SPECIALISTS, build_history
from tests.support.cli import EXAMPLE_DEVICES

MANAGER, REQUESTER = "stats-manager-token", "stats-requester-token"


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("history")
    config = write_config(tmp / "telederm.toml", tmp / "data", f"""
[[api.tokens]]
name = "direction"
role = "manager"
token = "{MANAGER}"
[[api.tokens]]
name = "ward"
role = "requester"
token = "{REQUESTER}"
""")
    services = build(load_config(config, environ=EXAMPLE_DEVICES))
    build_history(services)
    yield config, services
    services.store.engine.dispose()


def _expected_turnaround(plans) -> dict:
    hours = sorted(p.hours for p in plans)
    q1, median, q3 = statistics.quantiles(hours, n=4, method="inclusive")
    return {"answered": len(hours), "median": median, "q1": q1, "q3": q3,
            "within_24h": round(sum(h <= 24 for h in hours) / len(hours), 4),
            "within_48h": round(sum(h <= 48 for h in hours) / len(hours), 4)}


def test_stats_json_gives_the_known_figures_of_the_generated_history(history):
    config, _ = history
    result = telederm("stats", "--config", config)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    answered = [p for p in PLAN if p.outcome == "answered"]
    declined = [p for p in PLAN if p.outcome == "declined"]
    assert (len(answered), len(declined)) == (192, 24)  # the plan itself, as designed
    assert got["cases"] == {"opened": CASES, "by_status": {"ANSWERED": 192, "OPEN": 24,
                                                           "REJECTED": 24}}
    assert got["turnaround_hours"]["all"] == _expected_turnaround(answered)
    assert got["turnaround_hours"]["all"]["median"] == 25.0  # half within a day
    assert got["turnaround_hours"]["all"]["within_24h"] == 0.5
    bins = {"<=6h": 0, "<=12h": 0, "<=24h": 0, "<=48h": 0, "<=72h": 0, ">72h": 0}
    for p in answered:
        bins[next((f"<={e}h" for e in (6, 12, 24, 48, 72) if p.hours <= e), ">72h")] += 1
    assert got["turnaround_histogram"] == bins
    for priority in ("stat", "routine"):
        assert got["turnaround_hours"][priority] == _expected_turnaround(
            [p for p in answered if p.priority == priority])

    outcomes = got["outcomes"]
    no_visit = sum(p.conduct in ("no_visit", "treatment") for p in answered)
    urgent = sum(p.conduct == "urgent_visit" for p in answered)
    assert outcomes["answered"] == 192
    assert outcomes["without_visit"] == no_visit == 109
    assert outcomes["without_visit_share"] == round(109 / 192, 4)
    assert outcomes["urgent_referrals"] == urgent
    assert sum(outcomes["by_conduct"].values()) == 192
    assert outcomes["refused"] == 24
    assert outcomes["refusal_reasons"] == {"hors du champ de la télé-expertise": 12,
                                           "photos inexploitables": 12}

    volumes = got["volumes"]
    assert volumes["requests_per_week"] == {"2026-W02": 84, "2026-W03": 84, "2026-W04": 72}
    assert volumes["per_requesting_service"] == {"DPI_EHPAD|CHU_DEMO": 80,
                                                 "DPI_HOPITAL|CHU_DEMO": 80,
                                                 "DPI_URGENCES|CHU_DEMO": 80}
    per_specialist = {}
    for p in answered:
        year, week, _ = (p.opened + dt.timedelta(hours=p.hours)).isocalendar()
        weeks = per_specialist.setdefault(p.specialist.id, {})
        weeks[f"{year}-W{week:02d}"] = weeks.get(f"{year}-W{week:02d}", 0) + 1
    assert volumes["per_specialist_per_week"] == per_specialist
    assert set(per_specialist) == {s.id for s in SPECIALISTS}

    # No accounting destination: every line recorded, none delivered, nothing billed.
    assert got["billing"]["by_code"] == {} and got["billing"]["total"]["net"] == "0.00"
    assert got["billing"]["not_delivered"]["charges"] > 0
    assert got["incidents"]["dead_letters"] == 0 and got["incidents"]["hl7_refused"] == 0
    assert got["photo_quality"] == {"images": 0, "flagged": 0, "flagged_share": None,
                                    "by_flag": {}}


def test_stats_of_one_week_count_only_the_cases_opened_in_it(history):
    config, _ = history
    got = json.loads(telederm("stats", "--from", "2026-01-12", "--to", "2026-01-18",
                              "--config", config).stdout)
    week = [p for p in PLAN if p.opened.isocalendar()[1] == 3]
    assert got["cases"]["opened"] == len(week) == 84
    assert got["volumes"]["requests_per_week"] == {"2026-W03": 84}
    assert got["turnaround_hours"]["all"] == _expected_turnaround(
        [p for p in week if p.outcome == "answered"])


def test_an_export_of_the_figures_is_in_the_audit_trail(history):
    config, services = history
    assert telederm("stats", "--from", "2026-01-12", "--to", "2026-01-18", "--format", "csv",
                    "--config", config).returncode == 0
    with services.reading() as uow:
        today = dt.datetime.now(dt.timezone.utc).date().isoformat()  # the history is older
        row = [r for r in uow.audit.listing(since=today)
               if r["action"] == "stats.exported"][-1]  # the newest: other tests export too
    assert row["actor"].startswith("cli:") and row["detail"]["format"] == "csv"
    assert row["detail"]["period"][0].startswith("2026-01-12")


def test_stats_csv_and_table_carry_the_same_figures(history):
    config, services = history
    with services.reading() as uow:
        data = figures(uow, *period(None, None))
    table = list(csv.reader(io.StringIO(telederm("stats", "--format", "csv", "--config",
                                                 config).stdout, newline="")))
    assert table[0] == ["figure", "value"]
    values = dict(table[1:])
    assert values["outcomes.without_visit"] == "109"
    assert values["turnaround_hours.stat.median"] == str(data["turnaround_hours"]["stat"]["median"])
    assert values["volumes.requests_per_week.2026-W04"] == "72"
    text = telederm("stats", "--format", "table", "--config", config).stdout
    line = next(line for line in text.splitlines() if line.startswith("outcomes.refused "))
    assert line.split() == ["outcomes.refused", "24"]


def test_stats_exits_2_with_one_line_when_the_period_is_reversed_or_malformed(history):
    config, _ = history
    assert "--to" in one_error_line(telederm("stats", "--from", "2026-02-01", "--to",
                                             "2026-01-01", "--config", config), 2)
    assert "--from" in one_error_line(telederm("stats", "--from", "01/02/2026",
                                               "--config", config), 2)


def test_api_stats_gives_the_same_figures_to_a_manager_and_refuses_a_requester(history):
    config, services = history
    with TestClient(create_app(services)) as api:
        got = api.get("/api/stats", params={"from": "2026-01-12", "to": "2026-01-18"},
                      headers={"Authorization": f"Bearer {MANAGER}"})
        assert got.status_code == 200, got.text
        cli = json.loads(telederm("stats", "--from", "2026-01-12", "--to", "2026-01-18",
                                  "--config", config).stdout)
        assert got.json() == cli
        as_csv = api.get("/api/stats", params={"format": "csv"},
                         headers={"Authorization": f"Bearer {MANAGER}"})
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert "outcomes.without_visit,109" in as_csv.text
        refused = api.get("/api/stats", headers={"Authorization": f"Bearer {REQUESTER}"})
        assert refused.status_code == 403
        bad = api.get("/api/stats", params={"from": "2026-13-01"},
                      headers={"Authorization": f"Bearer {MANAGER}"})
        assert bad.status_code in (400, 422)
        assert bad.headers["content-type"].startswith("application/problem+json")
