"""The figures a site's medical direction and IT read: turnaround, outcomes, volumes, photo
quality, billing, incidents, the in-person follow-ups asked, over a period. `telederm stats`,
`GET /api/stats` and `/ui/dashboard` show the same ones (`figures`);
`mappings/statistics.toml` says which conducts
count as "without an in-person visit" and as urgent referrals, and the turnaround targets.

Periods are whole days in UTC: `--from 2026-01-01 --to 2026-01-31` holds the cases opened from
2026-01-01T00:00Z up to, not including, 2026-02-01T00:00Z.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Annotated

from pydantic import Field

from .billing.reconcile import reconcile
from .domain.errors import DomainError
from .mapfile import read_toml
from .validation import Problems, SiteModel

ALL_TIME = ("1970-01-01", "9999-12-30")  # "all time" as a period


class StatisticsMap(SiteModel):
    without_visit: tuple[str, ...]
    urgent_referral: tuple[str, ...] = ()
    within_hours: tuple[Annotated[int, Field(gt=0)], ...] = (24, 48)


def load_statistics(path: str | Path, *, conducts: dict) -> StatisticsMap:
    """Read mappings/statistics.toml; a ConfigError names every bad key, and every conduct
    code that conducts.toml does not define."""
    path = Path(path)
    problems = Problems(str(path), hint="conduct codes of conducts.toml, hours > 0")
    loaded = problems.validate(StatisticsMap, read_toml(path, "the statistics mapping"))
    if loaded is not None:
        for key in ("without_visit", "urgent_referral"):
            for i, code in enumerate(getattr(loaded, key)):
                if code not in conducts:
                    problems.add(f"{code!r} is not a conduct of conducts.toml", key=f"{key}[{i}]")
    problems.raise_any()
    return loaded


def period(date_from: str | None, date_to: str | None) -> tuple[str, str]:
    """[start, end) as stored timestamps for the days from..to (both included, UTC); all time
    when neither is given. DomainError naming the option for a bad or reversed date."""
    def day(text: str | None, option: str, default: str) -> dt.date:
        value = text or default
        try:
            if len(value) == 10:
                return dt.date.fromisoformat(value)
        except ValueError:
            pass
        raise DomainError(f"{text!r} is not a date written YYYY-MM-DD", where=option,
                          hint="e.g. --from 2026-01-01 --to 2026-01-31")

    first, last = day(date_from, "from", ALL_TIME[0]), day(date_to, "to", ALL_TIME[1])
    if last < first:
        raise DomainError(f"the period ends ({last}) before it starts ({first})", where="to",
                          hint="swap from and to")
    stamp = "%Y-%m-%dT00:00:00.000000Z"
    return first.strftime(stamp), (last + dt.timedelta(days=1)).strftime(stamp)


def figures(uow, start: str, end: str) -> dict:
    """Every figure of the cases opened in [start, end), with the billing of the acts dated in
    it (what reached the accounting feed and was not refused, per code) and the queue now."""
    mapping = uow.services.mappings.statistics
    out = uow.queries.case_figures(start=start, end=end,
                                   without_visit=frozenset(mapping.without_visit),
                                   urgent_referral=frozenset(mapping.urgent_referral),
                                   within_hours=mapping.within_hours)
    first, last = start[:10], _day_before(end)
    billing = reconcile(uow.queries.charge_rows(first_day=first.replace("-", ""),
                                                last_day=last.replace("-", "")),
                        date_from=first, date_to=last).to_dict()
    out["billing"] = {k: billing[k] for k in ("by_code", "total", "not_delivered", "refused")}
    out["deadlines"] = uow.queries.deadlines(start=start, end=end)
    out["follow_ups"] = uow.follow_ups.counts(start=start, end=end)
    out["outbox"] = uow.queries.stats()["outbox"]
    return out


def _day_before(stamp: str) -> str:
    return (dt.date.fromisoformat(stamp[:10]) - dt.timedelta(days=1)).isoformat()


def rows(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    """The figures flattened to (dotted key, value) rows, in their order: the table and CSV
    forms."""
    out: list[tuple[str, object]] = []
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out += rows(value, name) if value else [(name, "")]
        else:
            out.append((name, "" if value is None else value))
    return out


def render(data: dict, fmt: str) -> str:
    """The figures as `json`, `csv` (figure,value; RFC 4180) or a `table` for people."""
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(["figure", "value"])
        writer.writerows(rows(data))
        return text.getvalue()
    if fmt == "table":
        flat = rows(data)
        width = max(len(k) for k, _ in flat)
        return "".join(f"{k:<{width}}  {v}\n" for k, v in flat)
    import json
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
