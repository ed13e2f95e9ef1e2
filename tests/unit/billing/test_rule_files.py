"""rules.toml and facilities.toml: the shipped files load; a file with an error is refused with
the file, the row, its line and the reason."""

import re

import pytest

from connector.billing.facilities import load_facilities
from connector.billing.rules import load_rules
from connector.domain.errors import ConfigError, DomainError
from connector.domain.model import Charge
from tests.support.billing_cases import FACILITIES_TOML, MAPPINGS, NGAP, RULES, SPEC


def line_of(text: str, section: str, n: int) -> int:
    """Line number of the n-th (1-based) `[[section]]` header."""
    found = [i for i, line in enumerate(text.splitlines(), 1)
             if re.match(rf"^\s*\[\[{section}\]\]", line)]
    return found[n - 1]


def test_shipped_rules_hold_the_issue_limits_and_roles():
    limits = {lim.id: (lim.role, lim.codes, lim.max, lim.per) for lim in RULES.limits}
    assert limits == {
        "te1-requis-4": ("requis", ("TE1",), 4, "specialist"),
        "te2-requis-2": ("requis", ("TE2",), 2, "specialist"),
        "te-requis-4": ("requis", ("TE2",), 4, "specialist"),
        "te-requerant-4": ("requerant", ("RQD",), 4, "requester"),
    }
    roles = {(r.code, r.role) for r in RULES.lines}
    assert roles == {("TE1", "requis"), ("TE2", "requis"), ("TE1", "requerant"),
                     ("TE2", "requerant"), ("RQD", "requerant"), ("TCG", "doctor"),
                     ("TC", "doctor")}
    assert {e.when for e in RULES.exclusions} == {"patient_hospitalised", "same_site"}
    assert {c.id: c.majorations for c in RULES.combinations} == {
        "te-alone": (), "tc-majorations": ("MPC", "MCS"), "tcg-majorations": ("MCG",)}
    assert all(r.source for r in RULES.lines + RULES.limits + RULES.exclusions)


def test_shipped_tariffs_hold_the_issue_codes_and_dates():
    got = {(t.code, t.role, str(t.valid_from), str(t.valid_to), t.amount_cents, t.status)
           for t in NGAP.rows}
    assert {("TE1", "requis", "2019-02-10", "2022-03-31", 1200, "in_force"),
            ("TE2", "requis", "2019-02-10", "2022-03-31", 2000, "in_force"),
            ("TE2", "requis", "2022-04-01", "2025-12-31", 2000, "in_force"),
            ("RQD", "requerant", "2022-04-01", "None", 1000, "in_force"),
            ("TE2", "requis", "2026-01-01", "None", 2300, "scheduled"),
            ("TCG", "doctor", "2018-09-15", "None", 2500, "in_force"),
            ("TC", "doctor", "2018-09-15", "2024-12-21", 2300, "in_force")} <= got
    assert {t.code for t in NGAP.rows} == {"TE1", "TE2", "RQD", "TC", "TCG", "MCS", "MCG", "MPC"}


RULES_OK = '''
[[line]]
kind = "teleexpertise"
code = "TE2"
role = "requis"
valid_from = 2022-04-01
source = "test"

[[line]]
kind = "teleexpertise"
code = "RQD"
role = "requerant"
valid_from = 2022-04-01
source = "test"

[[combination]]
id = "te-alone"
codes = ["TE2", "RQD"]
majorations = []
valid_from = 2022-04-01
reason = "alone"
source = "test"

[[limit]]
id = "te-requis-4"
kind = "teleexpertise"
role = "requis"
codes = ["TE2"]
max = 4
per = "specialist"
valid_from = 2022-04-01
reason = "limit"
source = "test"

[[exclusion]]
id = "inpatient"
when = "patient_hospitalised"
kinds = ["teleexpertise"]
valid_from = 2022-04-01
reason = "inpatient"
source = "test"
'''


def test_load_rules_accepts_a_minimal_file(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES_OK, encoding="utf-8")
    rules = load_rules(path, tariffs=NGAP)
    assert [r.code for r in rules.lines] == ["TE2", "RQD"] and rules.source == str(path)


@pytest.mark.parametrize("old, new, section, n, reason", [
    ('code = "RQD"\nrole', 'code = "RQX"\nrole', "line", 2,
     "no teleexpertise tariff for RQX billed by requerant"),
    ('role = "requerant"\nvalid_from', 'role = "requérant"\nvalid_from', "line", 2,
     "role: 'requérant' is not one of"),
    ('code = "RQD"\nrole = "requerant"\nvalid_from = 2022-04-01',
     'code = "RQD"\nrole = "requerant"\nvalid_from = 2022-04-01\nlevel = 3', "line", 2,
     "level: 3 must be a whole number from 1 to 2"),
    ('code = "RQD"\nrole = "requerant"\nvalid_from = 2022-04-01',
     'code = "RQD"\nrole = "requerant"\nvalid_from = 2022-04-01\nvalid_to = 2021-01-01', "line", 2,
     "valid_to 2021-01-01 is before valid_from 2022-04-01"),
    ('code = "RQD"\nrole = "requerant"', 'code = "TE2"\nrole = "requis"', "line", 2,
     "teleexpertise requis line overlaps row #1 (both apply on 2022-04-01)"),
    ('kind = "teleexpertise"\ncode = "TE2"', 'kind = "teleexpertise"\nkode = "TE2"', "line", 1,
     "unknown key kode"),
    ('majorations = []', 'majorations = ["MCS"]', "combination", 1,
     "no tariff for majoration MCS billed by requerant"),
    ('majorations = []', 'majorations = ["RQD"]', "combination", 1,
     "RQD is a base code, not a majoration"),
    ('codes = ["TE2", "RQD"]', 'codes = ["TE2", "TC"]', "combination", 1,
     "base code TC is billed by no [[line]]"),
    ('reason = "alone"\n', '', "combination", 1, "missing key reason"),
    ('max = 4', 'max = 0', "limit", 1, "max: 0 must be a whole number 1 or more"),
    ('max = 4', 'max = "4"', "limit", 1, "must be a whole number"),
    ('per = "specialist"', 'per = "patient"', "limit", 1, "per: 'patient' is not one of"),
    ('codes = ["TE2"]', 'codes = ["TE1"]', "limit", 1, "no [[line]] bills TE1 for teleexpertise"),
    ('when = "patient_hospitalised"', 'when = "weekend"', "exclusion", 1,
     "when: 'weekend' is not one of patient_hospitalised, same_site"),
    ('kinds = ["teleexpertise"]', 'kinds = ["teleexpertise", "teleexpertise"]', "exclusion", 1,
     "kinds: lists a value twice"),
    ('id = "inpatient"', 'id = "te-alone"', "exclusion", 1,
     "id 'te-alone' is already used by [[combination]] #1"),
    ('valid_from = 2022-04-01\nreason = "inpatient"',
     'valid_from = "01/04/2022"\nreason = "inpatient"', "exclusion", 1,
     "valid_from: '01/04/2022' is not a date written YYYY-MM-DD"),
])
def test_load_rules_when_a_row_is_wrong_names_file_row_line_and_reason(tmp_path, old, new,
                                                                       section, n, reason):
    assert old in RULES_OK
    text = RULES_OK.replace(old, new, 1)
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_rules(path, tariffs=NGAP)
    where = f"{path}: [[{section}]] #{n}, line {line_of(text, section, n)}"
    assert any(p.where == where and reason in p.text for p in err.value.problems), \
        err.value.one_line()


@pytest.mark.parametrize("text, reason", [
    ("", "no [[line]] rows"),
    ("[[line]\n", "cannot read billing rules"),
    ("version = 1\n" + RULES_OK, "unknown key version"),
    ("[line]\nkind = 1\n", "line must be written as [[line]] tables"),
])
def test_load_rules_when_the_file_is_unusable_names_the_file(tmp_path, text, reason):
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_rules(path, tariffs=NGAP)
    assert err.value.where == str(path)
    assert reason in err.value.text


def test_load_rules_toml_syntax_error_keeps_the_parser_line(tmp_path):
    path = tmp_path / "rules.toml"
    text = RULES_OK + "\n[[limit]]\nmax = = 4\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_rules(path, tariffs=NGAP)
    assert err.value.where == str(path)
    assert f"line {len(text.splitlines())}" in err.value.text


# --- facilities.toml --------------------------------------------------------------------------

def test_shipped_facilities_load_with_a_default_and_two_facilities():
    fac = load_facilities(MAPPINGS / "facilities.toml", tariffs=NGAP)
    assert fac.default == "TELEDERM" and set(fac.facilities) == {"TELEDERM", "EXAMPLE_CHU"}
    assert fac.get("nobody").id == fac.get("").id == fac.get(None).id == "TELEDERM"
    assert fac.get("EXAMPLE_CHU").send_amounts is False


def test_facility_line_for_gives_code_label_department_and_amount(tmp_path):
    path = tmp_path / "facilities.toml"
    path.write_text(FACILITIES_TOML, encoding="utf-8")
    fac = load_facilities(path, tariffs=NGAP)
    rqd = Charge("X" * 12, "RQD", "requerant", 1000, "CG", "20260101", SPEC)
    a, b = fac.get("CHU_A").line_for(rqd), fac.get("CLIN_B").line_for(rqd)
    assert (a.charge_code, a.charge_label, a.coding_system, a.department, a.amount, a.currency) == (
        "A-RQD", "A RQD", "99CHUA", "UF100", "10.00", "EUR")
    assert (b.charge_code, b.coding_system, b.department, b.amount) == ("B-RQD", "99B", "UF201", "")


def _facility_file(charges: str, *, default: str = "F1", facility: str = "") -> str:
    return (f'default = "{default}"\n\n[[facility]]\nid = "F1"\nlabel = "F"\n'
            f'coding_system = "99F"\nsend_amounts = true\n{facility}' + charges)


CODES = ("TE1", "TE2", "RQD", "TC", "TCG", "MPC", "MCS", "MCG")
ALL_CODES = "".join(f'\n[[charge]]\nfacility = "F1"\ncode = "{c}"\ncharge_code = "F-{c}"\n'
                    f'label = "{c}"\n' for c in CODES)


def test_facility_charge_rows_may_change_by_date(tmp_path):
    dated = ALL_CODES.replace('code = "TE2"\ncharge_code = "F-TE2"',
                              'code = "TE2"\ncharge_code = "F-TE2"\nvalid_from = 2019-02-10\n'
                              'valid_to = 2025-12-31', 1)
    dated += ('\n[[charge]]\nfacility = "F1"\ncode = "TE2"\ncharge_code = "F-TE2-2026"\n'
              'label = "TE2 2026"\nvalid_from = 2026-01-01\n')
    path = tmp_path / "facilities.toml"
    path.write_text(_facility_file(dated), encoding="utf-8")
    f1 = load_facilities(path, tariffs=NGAP).get("F1")
    te2 = lambda day: Charge("X" * 12, "TE2", "requis", 2000, "CG", day, SPEC)  # noqa: E731
    assert f1.line_for(te2("20251231")).charge_code == "F-TE2"
    assert f1.line_for(te2("20260101")).charge_code == "F-TE2-2026"
    with pytest.raises(DomainError) as err:
        f1.line_for(te2("20190209"))
    assert err.value.where == "facility" and str(path) in err.value.hint


@pytest.mark.parametrize("change, section, n, reason", [
    (lambda t: t.replace('code = "MCG"', 'code = "MCX"'), "charge", 8,
     "no tariff for MCX in"),
    (lambda t: t.replace('facility = "F1"\ncode = "TC"', 'facility = "F2"\ncode = "TC"'),
     "charge", 4, "facility F2 is not a [[facility]] id"),
    (lambda t: t.replace('code = "TE1"\n', 'code = "TE1"\nrole = "requerant"\n'), "charge", 1,
     "no tariff for TE1 billed per act by requerant"),
    (lambda t: t + '\n[[charge]]\nfacility = "F1"\ncode = "TE2"\ncharge_code = "D"\nlabel = "d"\n',
     "charge", 9, "TE2 at F1 is already mapped by row #2"),
    (lambda t: t.replace('charge_code = "F-TC"', 'charge_code = "' + "C" * 21 + '"'), "charge", 4,
     "charge_code: longer than 20 characters"),
    (lambda t: t.replace('charge_code = "F-TC"', 'charge_code = "F-TC"\nvalid_to = 2030-01-01'),
     "charge", 4, "valid_to needs a valid_from"),
    (lambda t: t.replace('code = "MCS"\ncharge_code = "F-MCS"\nlabel = "MCS"\n', 'code = "MCG"\n'
                         'charge_code = "F-MCG2"\nlabel = "x"\nvalid_from = 2030-01-01\n'),
     "charge", 8, "MCG at F1 is already mapped by row #7"),
    (lambda t: t.replace('\n[[charge]]\nfacility = "F1"\ncode = "MCS"\ncharge_code = "F-MCS"\n'
                         'label = "MCS"\n', ''),
     "facility", 1, "facility F1 maps no charge code for MCS (doctor)"),
    (lambda t: t.replace("send_amounts = true", 'send_amounts = "yes"'), "facility", 1,
     "send_amounts: must be true or false"),
    (lambda t: t.replace("send_amounts = true", 'send_amounts = true\ncurrency = "EURO"'),
     "facility", 1, "currency: 'EURO' is not a 3-letter ISO 4217 code"),
    (lambda t: t + '\n[[facility]]\nid = "F1"\nlabel = "again"\ncoding_system = "X"\n'
                   'send_amounts = false\n', "facility", 2, "facility F1 is already row #1"),
])
def test_load_facilities_when_a_row_is_wrong_names_file_row_line_and_reason(tmp_path, change,
                                                                            section, n, reason):
    text = change(_facility_file(ALL_CODES))
    path = tmp_path / "facilities.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_facilities(path, tariffs=NGAP)
    where = f"{path}: [[{section}]] #{n}, line {line_of(text, section, n)}"
    assert any(p.where == where and reason in p.text for p in err.value.problems), \
        err.value.one_line()


@pytest.mark.parametrize("text, reason", [
    (_facility_file(ALL_CODES, default="NOPE"), "default 'NOPE' is not the id of a [[facility]]"),
    (ALL_CODES, "no [[facility]] rows"),
    ("colour = 'blue'\n" + _facility_file(ALL_CODES), "unknown key colour"),
])
def test_load_facilities_when_the_file_is_unusable_names_the_file(tmp_path, text, reason):
    path = tmp_path / "facilities.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_facilities(path, tariffs=NGAP)
    assert err.value.where == str(path)
    assert reason in err.value.text


def test_load_rules_names_every_bad_row_and_key_at_once(tmp_path):
    text = (RULES_OK.replace('role = "requerant"\nvalid_from', 'role = "requérant"\nvalid_from', 1)
            .replace('max = 4', 'max = 0').replace('when = "patient_hospitalised"', 'when = "x"'))
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_rules(path, tariffs=NGAP)
    found = [(p.where, p.text.split(":")[0]) for p in err.value.problems]
    assert found == [(f"{path}: [[{section}]] #{n}, line {line_of(text, section, n)}", key)
                     for section, n, key in (("line", 2, "role"), ("limit", 1, "max"),
                                             ("exclusion", 1, "when"))]


def test_load_facilities_names_every_bad_row_and_key_at_once(tmp_path):
    text = (_facility_file(ALL_CODES).replace("send_amounts = true", 'send_amounts = "yes"')
            .replace('charge_code = "F-TC"', 'charge_code = ""'))
    path = tmp_path / "facilities.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_facilities(path, tariffs=NGAP)
    found = [(p.where, p.text.split(":")[0]) for p in err.value.problems]
    assert found == [(f"{path}: [[{section}]] #{n}, line {line_of(text, section, n)}", key)
                     for section, n, key in (("facility", 1, "send_amounts"),
                                             ("charge", 4, "charge_code"))]
