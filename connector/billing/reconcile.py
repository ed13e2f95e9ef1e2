"""Reconciliation: what was billed over a period, by status, code and doctor (pure).

Fed with charge rows (dicts, as the store keeps them):
`transaction_id, accession, code, role, type (CG|CD), amount_cents, act_date (YYYYMMDD),
performed_by, status, reason`, the status as `store.queries.charge_rows` reads it from
the charge and the outbox item of its batch:
`acknowledged` (the peer answered AA), `sent` (handed over where no answer comes: a CSV file
dropped), `pending` (queued, not delivered yet), `undelivered` (never delivered: dead letter
without an answer, discarded by an operator, or no accounting destination), `refused` (the
peer answered AE), `not_billable` (the rules refused it).

- A row belongs to the period when its act date is inside it (both ends included).
- Money totals (per code, per doctor, overall) count only what reached the feed and was not
  refused: status `sent` or `acknowledged`. A CD (credit) row subtracts its amount.
- `by_status` counts every row of the period; `refused` and `not_delivered` (pending or
  undelivered) sum their rows apart, so the difference is visible; `not_billable` counts
  lines recorded as not billable, by reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field

from connector.domain.errors import DomainError
from connector.domain.model import TransactionTypeValues, parse_iso_date, parse_yyyymmdd

STATUSES = ("sent", "acknowledged", "pending", "undelivered", "refused", "not_billable")
NOT_DELIVERED = ("pending", "undelivered")
_TYPES = tuple(t.value for t in TransactionTypeValues)
BOOKED = ("sent", "acknowledged")
_FIELDS = ("transaction_id", "accession", "code", "role", "type", "amount_cents", "act_date",
           "performed_by", "status", "reason")


@dataclass
class Totals:
    charges: int = 0  # CG lines
    credits: int = 0  # CD lines
    charged_cents: int = 0
    credited_cents: int = 0

    @property
    def net_cents(self) -> int:
        return self.charged_cents - self.credited_cents

    def add(self, type_: str, cents: int) -> None:
        if type_ == TransactionTypeValues.CREDIT:
            self.credits += 1
            self.credited_cents += cents
        else:
            self.charges += 1
            self.charged_cents += cents

    def to_dict(self) -> dict:
        return {"charges": self.charges, "credits": self.credits,
                "charged": _euros(self.charged_cents), "credited": _euros(self.credited_cents),
                "net": _euros(self.net_cents)}


@dataclass
class Reconciliation:
    date_from: dt.date
    date_to: dt.date
    acts: int = 0  # distinct accessions with a row in the period
    lines: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATUSES})
    total: Totals = field(default_factory=Totals)
    refused: Totals = field(default_factory=Totals)
    not_delivered: Totals = field(default_factory=Totals)
    by_code: dict[str, Totals] = field(default_factory=dict)
    by_doctor: dict[str, Totals] = field(default_factory=dict)
    not_billable: dict[str, int] = field(default_factory=dict)  # reason -> lines

    def to_dict(self) -> dict:
        return {
            "from": self.date_from.isoformat(), "to": self.date_to.isoformat(),
            "acts": self.acts, "lines": self.lines, "by_status": dict(self.by_status),
            "total": self.total.to_dict(), "refused": self.refused.to_dict(),
            "not_delivered": self.not_delivered.to_dict(),
            "by_code": {k: v.to_dict() for k, v in sorted(self.by_code.items())},
            "by_doctor": {k: v.to_dict() for k, v in sorted(self.by_doctor.items())},
            "not_billable": dict(sorted(self.not_billable.items())),
        }


def reconcile(rows, *, date_from: str | dt.date, date_to: str | dt.date) -> Reconciliation:
    """Totals over the rows whose act date is in [date_from, date_to]. Dates are dt.date,
    YYYY-MM-DD or YYYYMMDD; a malformed row raises DomainError naming `rows[i].<field>`."""
    start, end = _day(date_from, "from"), _day(date_to, "to")
    if end < start:
        raise DomainError(f"the period ends ({end}) before it starts ({start})", where="to")
    result = Reconciliation(start, end)
    accessions = set()
    for i, row in enumerate(rows):
        _check(row, i)
        day = _day(row["act_date"], f"rows[{i}].act_date")
        if not start <= day <= end:
            continue
        result.lines += 1
        accessions.add(row["accession"])
        status = row["status"]
        result.by_status[status] += 1
        if status == "not_billable":
            reason = (row.get("reason") or "").strip() or "(no reason recorded)"
            result.not_billable[reason] = result.not_billable.get(reason, 0) + 1
        elif status == "refused":
            result.refused.add(row["type"], row["amount_cents"])
        elif status in NOT_DELIVERED:
            result.not_delivered.add(row["type"], row["amount_cents"])
        else:
            for totals in (result.total, result.by_code.setdefault(row["code"], Totals()),
                           result.by_doctor.setdefault(row["performed_by"], Totals())):
                totals.add(row["type"], row["amount_cents"])
    result.acts = len(accessions)
    return result


def render_csv(report: Reconciliation) -> str:
    """One table: `section,key,lines,charges,credits,charged,credited,net` with sections
    period, status, total, refused, not_delivered, code, doctor, not_billable (RFC 4180, CRLF)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "key", "lines", "charges", "credits", "charged", "credited", "net"])
    writer.writerow(["period", f"{report.date_from.isoformat()}/{report.date_to.isoformat()}",
                     report.lines, "", "", "", "", ""])
    writer.writerow(["acts", "", report.acts, "", "", "", "", ""])
    for status in STATUSES:
        writer.writerow(["status", status, report.by_status[status], "", "", "", "", ""])

    def money(section: str, key: str, t: Totals) -> None:
        writer.writerow([section, key, t.charges + t.credits, t.charges, t.credits,
                         _euros(t.charged_cents), _euros(t.credited_cents), _euros(t.net_cents)])

    money("total", "", report.total)
    money("refused", "", report.refused)
    money("not_delivered", "", report.not_delivered)
    for code, totals in sorted(report.by_code.items()):
        money("code", code, totals)
    for doctor, totals in sorted(report.by_doctor.items()):
        money("doctor", doctor, totals)
    for reason, count in sorted(report.not_billable.items()):
        writer.writerow(["not_billable", reason, count, "", "", "", "", ""])
    return out.getvalue()


def _check(row, i: int) -> None:
    if not isinstance(row, dict):
        raise DomainError("row is not a mapping", where=f"rows[{i}]")
    missing = [k for k in _FIELDS if k not in row and k != "reason"]
    if missing:
        raise DomainError(f"{missing[0]} is missing", where=f"rows[{i}].{missing[0]}")
    if row["status"] not in STATUSES:
        raise DomainError(f"status {row['status']!r} is not one of {', '.join(STATUSES)}",
                          where=f"rows[{i}].status")
    if row["status"] != "not_billable" and row["type"] not in _TYPES:
        raise DomainError(f"type {row['type']!r} is not CG or CD", where=f"rows[{i}].type")
    cents = row["amount_cents"]
    if type(cents) is not int or cents < 0:
        raise DomainError("amount_cents must be a whole number of cents, 0 or more",
                          where=f"rows[{i}].amount_cents")


def _day(value, where: str) -> dt.date:
    if type(value) is dt.date:
        return value
    day = (parse_iso_date(value) or parse_yyyymmdd(value)) if isinstance(value, str) else None
    if day is not None:
        return day
    raise DomainError(f"{value!r} is not a date (YYYY-MM-DD or YYYYMMDD)", where=where)


def _euros(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"
