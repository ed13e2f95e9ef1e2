import csv
import datetime as dt
import io

import pytest

from connector.billing.csvfeed import COLUMNS, drop, file_name, render_csv
from connector.billing.engine import Act, credits_for, evaluate, labels_for
from tests.support.billing_cases import NGAP, ORDER, REQ, RULES, SPEC, facilities

NOW = "20261116121000"


@pytest.fixture(scope="module")
def fac(tmp_path_factory):
    return facilities(tmp_path_factory.mktemp("fac"))


@pytest.fixture(scope="module")
def charges():
    act = Act(kind="teleexpertise", date=dt.date(2026, 11, 16), patient="IPP0012345",
              requester=REQ, specialist=SPEC, requester_site="EHPAD", specialist_site="CHU",
              patient_hospitalised=False, accession="TD-2026-000042")
    return evaluate(act, tariffs=NGAP, rules=RULES).charges


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_has_the_documented_columns_and_one_row_per_charge(fac, charges):
    text = render_csv(control_id="DFT-TD-2026-000042-1", now=NOW, order=ORDER,
                      accession="TD-2026-000042", charges=charges, facility=fac.get("CHU_A"),
                      labels=labels_for(charges, NGAP))
    assert text.startswith(",".join(COLUMNS) + "\r\n") and text.endswith("\r\n")
    te2, rqd = rows(text)
    assert te2 == {
        "control_id": "DFT-TD-2026-000042-1", "line": "1",
        "transaction_id": charges[0].transaction_id, "transaction_type": "CG",
        "act_date": "20261116", "posted_at": NOW, "facility": "CHU_A", "charge_code": "A-TE2",
        "charge_label": "A TE2", "coding_system": "99CHUA", "department": "UF100",
        "national_code": "TE2", "national_label": "Télé-expertise (requis)", "role": "requis",
        "quantity": "1", "amount": "23.00", "currency": "EUR",
        "performed_by": "802222222222", "performed_by_name": "LEFÈVRE^François",
        "ordered_by": "801111111111", "ordered_by_name": "MARTIN^Élise",
        "filler_order_number": "TD-2026-000042", "patient_id": "IPP0012345",
        "patient_authority": "CHU_A"}
    assert (rqd["line"], rqd["national_code"], rqd["role"], rqd["amount"], rqd["performed_by"]) == (
        "2", "RQD", "requerant", "10.00", "801111111111")


def test_csv_for_a_facility_without_amounts_leaves_amount_and_currency_empty(fac, charges):
    text = render_csv(control_id="C1", now=NOW, order=ORDER, accession="TD-2026-000042",
                      charges=charges, facility=fac.get("CLIN_B"), labels={})
    got = [(r["charge_code"], r["department"], r["amount"], r["currency"]) for r in rows(text)]
    assert got == [("B-TE2", "UF200", "", ""), ("B-RQD", "UF201", "", "")]


def write_batch(folder, *, control_id, **args):
    """What the outbox does: render in the transaction, drop later."""
    return drop(folder, control_id=control_id, text=render_csv(control_id=control_id, **args))


def test_drop_is_atomic_and_a_retry_rewrites_the_same_file(tmp_path, fac, charges):
    folder = tmp_path / "drop"
    args = dict(control_id="DFT-TD-2026-000042-1", now=NOW, order=ORDER,
                accession="TD-2026-000042", charges=charges, facility=fac.get("CHU_A"),
                labels=labels_for(charges, NGAP))
    first = write_batch(folder, **args)
    assert first == folder / "DFT_DFT-TD-2026-000042-1.csv"
    content = first.read_bytes()
    again = write_batch(folder, **(args | {"now": "20261116130000"}))  # the retry
    assert again == first
    assert sorted(p.name for p in folder.iterdir()) == [first.name]  # no temp file, no copy
    assert again.read_bytes() != content and b"20261116130000" in again.read_bytes()
    assert rows(again.read_text(encoding="utf-8"))[0]["transaction_id"] == charges[0].transaction_id


def test_a_credit_batch_gets_its_own_file_with_cd_rows(tmp_path, fac, charges):
    credits = credits_for(charges)
    path = write_batch(tmp_path, control_id="DFT-TD-2026-000042-2", now=NOW, order=ORDER,
                       accession="TD-2026-000042", charges=credits, facility=fac.get("CHU_A"),
                       labels={})
    got = rows(path.read_text(encoding="utf-8"))
    assert [r["transaction_type"] for r in got] == ["CD", "CD"]
    assert [r["transaction_id"] for r in got] == [c.transaction_id for c in credits]
    assert path.name == "DFT_DFT-TD-2026-000042-2.csv"


@pytest.mark.parametrize("control_id, name", [
    ("DFT42", "DFT_DFT42.csv"),
    ("A.B_C-1", "DFT_A.B_C-1.csv"),
])
def test_file_name_keeps_safe_control_ids(control_id, name):
    assert file_name(control_id) == name


def test_file_name_of_an_unsafe_control_id_is_safe_stable_and_distinct():
    a, b = file_name("DFT/42 x"), file_name("DFT 42/x")
    assert a == file_name("DFT/42 x") and a != b
    assert a.startswith("DFT_DFT_42_x_") and "/" not in a and " " not in a
    assert not file_name("../etc").startswith("DFT_.")


def test_an_empty_batch_or_control_id_is_refused(fac):
    with pytest.raises(ValueError):
        render_csv(control_id="C", now=NOW, order=ORDER, accession="A", charges=[],
                   facility=fac.get(), labels={})
    with pytest.raises(ValueError):
        file_name(" ")


def test_drop_writes_a_rendered_batch_under_its_name_and_a_retry_rewrites_the_same_file(
        tmp_path, fac, charges):
    from connector.billing.csvfeed import drop
    text = render_csv(control_id="DFTTD00000042N1", now=NOW, order=ORDER,
                      accession="TD-2026-000042", charges=charges, facility=fac.get("CHU_A"),
                      labels=labels_for(charges, NGAP))
    first = drop(tmp_path / "out", control_id="DFTTD00000042N1", text=text)
    again = drop(tmp_path / "out", control_id="DFTTD00000042N1", text=text)
    assert first == again == tmp_path / "out" / "DFT_DFTTD00000042N1.csv"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [first.name]
    assert first.read_bytes() == text.encode("utf-8")
