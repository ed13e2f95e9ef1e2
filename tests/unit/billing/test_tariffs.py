from pathlib import Path

import pytest

from connector.billing.tariffs import load_tariffs
from connector.domain.errors import ConfigError, DomainError

SHIPPED = Path(__file__).parents[3] / "mappings" / "billing" / "ngap.toml"


@pytest.fixture(scope="module")
def ngap():
    return load_tariffs(SHIPPED)


@pytest.mark.parametrize("act_date, cents", [
    ("20190210", 2000),
    ("20220331", 2000),
    ("20220401", 2000),
    ("20251231", 2000),
    ("20260101", 2300),
    ("20300101", 2300),
])
def test_te2_requis_amount_on_each_boundary_date(ngap, act_date, cents):
    assert ngap.amount_cents("TE2", "requis", act_date) == cents


def test_te2_from_2026_is_marked_scheduled(ngap):
    assert ngap.find("TE2", "requis", "20260101").status == "scheduled"
    assert ngap.find("TE2", "requis", "20251231").status == "in_force"


def test_rqd_applies_from_2022_04_01(ngap):
    assert ngap.amount_cents("RQD", "requerant", "20220401") == 1000
    assert ngap.amount_cents("RQD", "requerant", "20260101") == 1000
    with pytest.raises(DomainError):
        ngap.amount_cents("RQD", "requerant", "20220331")


def test_te1_exists_only_before_2022_04_01(ngap):
    assert ngap.amount_cents("TE1", "requis", "20220331") == 1200
    with pytest.raises(DomainError):
        ngap.amount_cents("TE1", "requis", "20220401")


def test_amount_when_row_is_a_yearly_lump_refuses_a_per_act_amount(ngap):
    row = ngap.find("TE2", "requerant", "20210615")
    assert row.billing == "yearly_lump" and row.amount_cents == 1000
    with pytest.raises(DomainError) as err:
        ngap.amount_cents("TE2", "requerant", "20210615")
    assert "yearly lump" in err.value.text


def test_teleconsultation_rows(ngap):
    assert ngap.amount_cents("TCG", "doctor", "20180915") == 2500
    assert ngap.amount_cents("TCG", "doctor", "20250601") == 2500
    assert ngap.amount_cents("TC", "doctor", "20241221") == 2300
    assert ngap.amount_cents("MPC", "doctor", "20200101") == 200
    with pytest.raises(DomainError):  # value after the Dec 2024 revaluation is not known
        ngap.amount_cents("TC", "doctor", "20241222")


@pytest.mark.parametrize("code, role, act_date", [
    ("TE2", "requis", "20190209"),  # before tele-expertise existed
    ("TE2", "doctor", "20230101"),  # no such role for the code
    ("XYZ", "requis", "20230101"),
])
def test_amount_when_no_row_covers_the_date_raises_domain_error(ngap, code, role, act_date):
    with pytest.raises(DomainError) as err:
        ngap.amount_cents(code, role, act_date)
    assert err.value.where == "act_date"
    assert str(SHIPPED) in err.value.hint


@pytest.mark.parametrize("act_date", ["2022-04-01", "20220230", ""])
def test_amount_when_act_date_is_invalid_raises_domain_error(ngap, act_date):
    with pytest.raises(DomainError) as err:
        ngap.amount_cents("TE2", "requis", act_date)
    assert err.value.where == "act_date"


GOOD = '''
[[tariff]]
code = "TE2"
label_fr = "Télé-expertise"
role = "requis"
kind = "teleexpertise"
amount = "20.00"
valid_from = 2022-04-01
valid_to = 2025-12-31
status = "in_force"
source = "test"
'''


def _second_row(**changes) -> str:
    """A second row (for TE2 requis from 2026) with some keys changed or (None) removed."""
    row = {"code": '"TE2"', "label_fr": '"Télé-expertise"', "role": '"requis"',
           "kind": '"teleexpertise"', "amount": '"23.00"', "valid_from": "2026-01-01",
           "status": '"scheduled"', "source": '"test"'}
    row.update(changes)
    return "\n[[tariff]]\n" + "".join(f"{k} = {v}\n" for k, v in row.items() if v is not None)


def test_load_tariffs_accepts_two_adjacent_periods_and_quoted_dates(tmp_path):
    path = tmp_path / "ngap.toml"
    path.write_text(GOOD + _second_row(valid_from='"2026-01-01"'), encoding="utf-8")
    table = load_tariffs(path)
    assert table.amount_cents("TE2", "requis", "20260101") == 2300


@pytest.mark.parametrize("changes, reason", [
    ({"colour": '"blue"'}, "unknown key colour"),
    ({"source": None}, "missing key source"),
    ({"valid_from": '"2026-02-30"'}, "valid_from: '2026-02-30' is not a date"),
    ({"valid_from": '"01/01/2026"'}, "valid_from: '01/01/2026' is not a date"),
    ({"valid_from": "2026-01-01T00:00:00"}, "is not a date"),
    ({"valid_to": "2025-06-30"}, "valid_to 2025-06-30 is before valid_from 2026-01-01"),
    ({"amount": "23.0"}, "amount: 23.0 is not a quoted decimal string"),
    ({"amount": '"23,00"'}, "amount: '23,00' is not a quoted decimal string"),
    ({"amount": '"23.001"'}, "not a quoted decimal string"),
    ({"amount": '"-1.00"'}, "not a quoted decimal string"),
    ({"role": '"requérant"'}, "role: 'requérant' is not one of requis, requerant, doctor"),
    ({"kind": '"visit"'}, "kind: 'visit' is not one of"),
    ({"status": '"maybe"'}, "status: 'maybe' is not one of"),
    ({"billing": '"monthly"'}, "billing: 'monthly' is not one of"),
    ({"code": '""'}, "code: must be a non-empty string"),
    ({"valid_from": "2025-12-31"}, "overlaps row #1 (both apply on 2025-12-31)"),
])
def test_load_tariffs_when_row_is_malformed_names_file_row_and_reason(tmp_path, changes, reason):
    path = tmp_path / "ngap.toml"
    path.write_text(GOOD + _second_row(**changes), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_tariffs(path)
    assert err.value.where.startswith(f"{path}: [[tariff]] #2, line 13")
    assert reason in err.value.text


def test_load_tariffs_names_every_bad_row_and_key_at_once(tmp_path):
    path = tmp_path / "ngap.toml"
    path.write_text(GOOD + _second_row(role='"requérant"', amount="23.0")
                    + _second_row(kind='"visit"', valid_from="2027-01-01"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_tariffs(path)
    found = [(p.where, p.text.split(":")[0]) for p in err.value.problems]
    assert found == [(f"{path}: [[tariff]] #2, line 13", "role"),
                     (f"{path}: [[tariff]] #2, line 13", "amount"),
                     (f"{path}: [[tariff]] #3, line 23", "kind")]


def test_load_tariffs_when_open_ended_rows_overlap_refuses(tmp_path):
    path = tmp_path / "ngap.toml"
    rqd = _second_row(code='"RQD"', role='"requerant"', amount='"10.00"', valid_from="2022-04-01")
    path.write_text(GOOD + rqd + rqd.replace("2022-04-01", "2030-01-01"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_tariffs(path)
    assert "[[tariff]] #3" in err.value.where and "overlaps row #2" in err.value.text


@pytest.mark.parametrize("text, reason", [
    ("", "no [[tariff]] rows"),
    ("[[tariff]\n", "cannot read tariffs"),
    ('version = 2\n' + GOOD, "unknown key version"),
])
def test_load_tariffs_when_file_is_unusable_names_the_file(tmp_path, text, reason):
    path = tmp_path / "ngap.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_tariffs(path)
    assert err.value.where == str(path)
    assert reason in err.value.text
