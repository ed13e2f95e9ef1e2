import csv
import io

import pytest

from connector.billing.reconcile import reconcile, render_csv
from connector.domain.errors import DomainError

S1, S2, R1 = "802222222222", "802222222223", "801111111111"


def row(accession, code, role, type_, cents, day, by, status, reason=""):
    return {"transaction_id": f"{accession}-{code}-{type_}", "accession": accession, "code": code,
            "role": role, "type": type_, "amount_cents": cents, "act_date": day,
            "performed_by": by, "status": status, "reason": reason}


ROWS = [
    row("A1", "TE2", "requis", "CG", 2000, "20251215", S1, "acknowledged"),
    row("A1", "RQD", "requerant", "CG", 1000, "20251215", R1, "acknowledged"),
    row("A2", "TE2", "requis", "CG", 2300, "20260105", S1, "sent"),
    row("A2", "RQD", "requerant", "CG", 1000, "20260105", R1, "sent"),
    row("A3", "TE2", "requis", "CG", 2300, "20260110", S2, "acknowledged"),
    row("A3", "TE2", "requis", "CD", 2300, "20260110", S2, "acknowledged"),  # cancelled
    row("A4", "TC", "doctor", "CG", 2300, "20260111", S2, "refused"),
    row("A5", "TE2", "requis", "CG", 0, "20260112", S1, "not_billable",
        "yearly limit reached: 4 tele-expertises per year per requis for the same patient"),
    row("A5", "RQD", "requerant", "CG", 0, "20260112", R1, "not_billable",
        "yearly limit reached: 4 tele-expertise requests per year per requérant for the same "
        "patient"),
    row("A6", "TE2", "requis", "", 0, "20260113", S1, "not_billable",
        "requester and specialist work on the same site"),
    row("A7", "TE2", "requis", "CG", 2300, "20260201", S1, "sent"),  # after the period
]


def test_reconcile_totals_per_code_doctor_status_and_reason():
    report = reconcile(ROWS, date_from="2026-01-01", date_to="2026-01-31").to_dict()
    assert (report["from"], report["to"], report["acts"], report["lines"]) == (
        "2026-01-01", "2026-01-31", 5, 8)
    assert report["by_status"] == {"sent": 2, "acknowledged": 2, "pending": 0, "undelivered": 0,
                                   "refused": 1, "not_billable": 3}
    assert report["total"] == {"charges": 3, "credits": 1, "charged": "56.00",
                               "credited": "23.00", "net": "33.00"}
    assert report["refused"] == {"charges": 1, "credits": 0, "charged": "23.00",
                                 "credited": "0.00", "net": "23.00"}
    assert report["by_code"] == {
        "RQD": {"charges": 1, "credits": 0, "charged": "10.00", "credited": "0.00", "net": "10.00"},
        "TE2": {"charges": 2, "credits": 1, "charged": "46.00", "credited": "23.00",
                "net": "23.00"},
    }
    assert report["by_doctor"] == {
        R1: {"charges": 1, "credits": 0, "charged": "10.00", "credited": "0.00", "net": "10.00"},
        S1: {"charges": 1, "credits": 0, "charged": "23.00", "credited": "0.00", "net": "23.00"},
        S2: {"charges": 1, "credits": 1, "charged": "23.00", "credited": "23.00", "net": "0.00"},
    }
    assert report["not_billable"] == {
        "requester and specialist work on the same site": 1,
        "yearly limit reached: 4 tele-expertise requests per year per requérant for the same "
        "patient": 1,
        "yearly limit reached: 4 tele-expertises per year per requis for the same patient": 1,
    }


def test_reconcile_keeps_lines_not_delivered_out_of_the_money_totals():
    rows = ROWS + [row("A8", "TE2", "requis", "CG", 2300, "20260114", S1, "undelivered"),
                   row("A8", "RQD", "requerant", "CG", 1000, "20260114", R1, "undelivered"),
                   row("A9", "TE2", "requis", "CG", 2300, "20260115", S2, "pending")]
    report = reconcile(rows, date_from="2026-01-01", date_to="2026-01-31").to_dict()
    assert (report["by_status"]["undelivered"], report["by_status"]["pending"]) == (2, 1)
    assert report["total"]["net"] == "33.00"  # as without them
    assert report["not_delivered"] == {"charges": 3, "credits": 0, "charged": "56.00",
                                       "credited": "0.00", "net": "56.00"}
    assert ["not_delivered", "", "3", "3", "0", "56.00", "0.00", "56.00"] in list(
        csv.reader(io.StringIO(render_csv(reconcile(rows, date_from="2026-01-01",
                                                     date_to="2026-01-31")), newline="")))


def test_reconcile_period_includes_both_ends_and_takes_compact_dates():
    report = reconcile(ROWS, date_from="20251215", date_to="20251215")
    assert report.lines == 2 and report.total.net_cents == 3000
    assert reconcile(ROWS, date_from="2027-01-01", date_to="2027-12-31").to_dict()["total"][
        "net"] == "0.00"


def test_reconcile_csv_renders_every_section():
    text = render_csv(reconcile(ROWS, date_from="2026-01-01", date_to="2026-01-31"))
    got = list(csv.reader(io.StringIO(text, newline="")))
    assert got[0] == ["section", "key", "lines", "charges", "credits", "charged", "credited", "net"]
    assert ["period", "2026-01-01/2026-01-31", "8", "", "", "", "", ""] in got
    assert ["status", "not_billable", "3", "", "", "", "", ""] in got
    assert ["total", "", "4", "3", "1", "56.00", "23.00", "33.00"] in got
    assert ["code", "TE2", "3", "2", "1", "46.00", "23.00", "23.00"] in got
    assert ["doctor", S2, "2", "1", "1", "23.00", "23.00", "0.00"] in got
    assert ["not_billable", "requester and specialist work on the same site", "1", "", "", "",
            "", ""] in got
    assert text.endswith("\r\n")


@pytest.mark.parametrize("rows, kwargs, where", [
    ([], {"date_from": "2026-02-01", "date_to": "2026-01-01"}, "to"),
    ([], {"date_from": "2026-13-01", "date_to": "2026-12-31"}, "from"),
    ([row("A", "TE2", "requis", "CG", 1, "20260101", S1, "lost")], {}, "rows[0].status"),
    ([row("A", "TE2", "requis", "CR", 1, "20260101", S1, "sent")], {}, "rows[0].type"),
    ([row("A", "TE2", "requis", "CG", -1, "20260101", S1, "sent")], {}, "rows[0].amount_cents"),
    ([row("A", "TE2", "requis", "CG", 1, "2026-01-01x", S1, "sent")], {}, "rows[0].act_date"),
    ([{"accession": "A"}], {}, "rows[0].transaction_id"),
])
def test_reconcile_refuses_bad_input_naming_it(rows, kwargs, where):
    args = {"date_from": "2026-01-01", "date_to": "2026-12-31"} | kwargs
    with pytest.raises(DomainError) as err:
        reconcile(rows, **args)
    assert err.value.where == where
