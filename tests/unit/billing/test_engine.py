import dataclasses
import datetime as dt
import json

import pytest

from connector.billing.engine import (Act, PriorAct, act_from_json, credits_for, evaluate,
                                      explain, labels_for, not_billable_id, pending)
from connector.billing.teleexpertise import credit_id, transaction_id
from connector.domain.errors import DomainError
from tests.support.billing_cases import NGAP, REQ, RULES, SPEC

TE_2026 = {"kind": "teleexpertise", "date": "2026-03-02", "patient": "IPP1",
           "requester": "801111111111", "specialist": "802222222222",
           "requester_site": "EHPAD-LES-PINS", "specialist_site": "CHU-DERMATO",
           "patient_hospitalised": False}


def _explain(**changes):
    data = {k: v for k, v in (TE_2026 | changes).items() if v is not ...}
    return explain(json.loads(json.dumps(data)), tariffs=NGAP, rules=RULES)


def test_explain_tele_expertise_2026_bills_te2_23_and_rqd_10():
    assert _explain() == {
        "charges": [{"code": "TE2", "role": "requis", "amount": "23.00", "type": "CG"},
                    {"code": "RQD", "role": "requerant", "amount": "10.00", "type": "CG"}],
        "not_billable": []}


def test_explain_uses_the_shipped_files_when_none_are_given():
    assert explain(TE_2026) == _explain()


def test_explain_fifth_act_lists_both_lines_as_not_billable_with_the_reason():
    prior = [{"kind": "teleexpertise", "date": "2026-01-1" + str(n), "requester": "801111111111",
              "specialist": "802222222222"} for n in range(4)]
    out = _explain(prior_acts=prior)
    assert out["charges"] == []
    assert out["not_billable"] == [
        {"code": "TE2", "role": "requis",
         "reason": "yearly limit reached: 4 tele-expertises per year per requis for the same "
                   "patient"},
        {"code": "RQD", "role": "requerant",
         "reason": "yearly limit reached: 4 tele-expertise requests per year per requérant for the "
                   "same patient"}]


def test_explain_teleconsultation_of_a_specialist_with_majorations_totals_30_euros():
    out = explain({"kind": "teleconsultation", "date": "2021-03-02", "patient": "IPP1",
                   "requester": "801111111111", "specialist": "802222222222",
                   "specialist_is_gp": False, "majorations": ["MPC", "MCS"]},
                  tariffs=NGAP, rules=RULES)
    assert [(c["code"], c["amount"]) for c in out["charges"]] == [
        ("TC", "23.00"), ("MPC", "2.00"), ("MCS", "5.00")]
    assert {c["role"] for c in out["charges"]} == {"doctor"} and out["not_billable"] == []


def test_explain_level_1_before_2022_bills_te1_and_reports_the_requerant_lump():
    out = _explain(date="2020-06-01", level=1)
    assert out["charges"] == [{"code": "TE1", "role": "requis", "amount": "12.00", "type": "CG"}]
    assert [(n["code"], n["role"]) for n in out["not_billable"]] == [("TE1", "requerant")]
    assert "yearly lump" in out["not_billable"][0]["reason"]


@pytest.mark.parametrize("changes, where, text", [
    ({"kind": "visit"}, "kind", "not one of"),
    ({"kind": ...}, "kind", "kind is missing"),
    ({"date": "02/03/2026"}, "date", "is not a date written YYYY-MM-DD"),
    ({"date": "2026-02-30"}, "date", "is not a date"),
    ({"date": 20260302}, "date", "must be a string"),
    ({"patient": ""}, "patient", "patient is empty"),
    ({"requester": ...}, "requester", "requester is missing"),
    ({"specialist": 42}, "specialist", "must be a string"),
    ({"specialist": "801111111111"}, "specialist", "same practitioner"),
    ({"requester_site": ...}, "requester_site", "missing"),
    ({"specialist_site": ""}, "specialist_site", "specialist_site is empty"),
    ({"patient_hospitalised": "false"}, "patient_hospitalised", "true or false"),
    ({"patient_hospitalised": ...}, "patient_hospitalised", "missing"),
    ({"level": 3}, "level", "level must be 1 or 2"),
    ({"level": "2"}, "level", "level must be 1 or 2"),
    ({"majorations": "MCS"}, "majorations", "list of codes"),
    ({"majorations": ["MCS", ""]}, "majorations[1]", "non-empty"),
    ({"majorations": ["MCS", "MCS"]}, "majorations[1]", "claimed twice"),
    ({"majorations": ["XYZ"]}, "majorations[0]", "XYZ is not a majoration"),
    ({"majorations": ["TE2"]}, "majorations[0]", "TE2 is not a majoration"),
    ({"prior_acts": {}}, "prior_acts", "list of acts"),
    ({"prior_acts": ["x"]}, "prior_acts[0]", "must be an object"),
    ({"prior_acts": [{"kind": "teleexpertise", "date": "2026-01-01", "requester": "A"}]},
     "prior_acts[0].specialist", "specialist is missing"),
    ({"prior_acts": [{"kind": "teleexpertise", "date": "2026-1-1", "requester": "A",
                      "specialist": "B"}]}, "prior_acts[0].date", "not a date"),
    ({"prior_acts": [{"kind": "te", "date": "2026-01-01", "requester": "A", "specialist": "B"}]},
     "prior_acts[0].kind", "not one of"),
    ({"prior_acts": [{"kind": "teleexpertise", "date": "2026-01-01", "requester": "A",
                      "specialist": "B", "code": "TE2"}]}, "prior_acts[0].code", "unknown field"),
    ({"patient_hospitalized": True}, "patient_hospitalized", "unknown field"),
    ({"date": "2021-05-05"}, "level", "level is required"),
    ({"date": "2021-05-05", "level": 2, "prior_acts": [
        {"kind": "teleexpertise", "date": "2021-01-01", "requester": "801111111111",
         "specialist": "802222222222"}]}, "prior_acts[0].level", "level is required"),
])
def test_explain_when_input_is_wrong_raises_domain_error_naming_the_field(changes, where, text):
    with pytest.raises(DomainError) as err:
        _explain(**changes)
    assert err.value.where == where
    assert text in err.value.text


@pytest.mark.parametrize("level, codes", [(None, ["TE1", "TE2"]), (2, ["TE2"])])
def test_an_act_before_tele_expertise_was_billable_is_answered_not_billable(level, codes):
    out = _explain(date="2019-02-09", **({"level": level} if level else {}))
    assert out["charges"] == []
    assert sorted({n["code"] for n in out["not_billable"]}) == codes
    assert {n["role"] for n in out["not_billable"]} == {"requis", "requerant"}
    assert {n["reason"] for n in out["not_billable"]} == {"teleexpertise billable from 2019-02-10"}


def test_an_act_in_a_gap_of_the_rules_is_still_a_rules_error():
    gap = dataclasses.replace(RULES, lines=tuple(r for r in RULES.lines
                                                 if r.valid_from.year != 2022))
    with pytest.raises(DomainError) as err:
        explain(TE_2026, tariffs=NGAP, rules=gap)
    assert err.value.where == "date" and "add a [[line]] row" in err.value.hint


def test_explain_input_must_be_an_object():
    with pytest.raises(DomainError) as err:
        explain([TE_2026], tariffs=NGAP, rules=RULES)
    assert err.value.where == "act"


def test_teleconsultation_needs_specialist_is_gp_but_no_sites():
    data = {"kind": "teleconsultation", "date": "2023-03-02", "patient": "IPP1",
            "requester": "801111111111", "specialist": "802222222222"}
    with pytest.raises(DomainError) as err:
        explain(data, tariffs=NGAP, rules=RULES)
    assert err.value.where == "specialist_is_gp"
    out = explain(data | {"specialist_is_gp": True}, tariffs=NGAP, rules=RULES)
    assert out["charges"] == [{"code": "TCG", "role": "doctor", "amount": "25.00", "type": "CG"}]


def test_teleconsultation_after_the_december_2024_revaluation_has_no_tc_tariff_yet():
    data = {"kind": "teleconsultation", "date": "2025-01-06", "patient": "IPP1",
            "requester": "801111111111", "specialist": "802222222222", "specialist_is_gp": False}
    with pytest.raises(DomainError) as err:
        explain(data, tariffs=NGAP, rules=RULES)
    assert "no TC tariff for role doctor on 20250106" in err.value.text
    assert "ngap.toml" in err.value.hint


def _act(**changes) -> Act:
    base = dict(kind="teleexpertise", date=dt.date(2023, 5, 10), patient="IPP1", requester=REQ,
                specialist=SPEC, requester_site="A", specialist_site="B",
                patient_hospitalised=False, accession="ACC00042")
    return Act(**(base | changes))


def test_evaluate_ids_are_the_ones_stored_charges_carry_when_the_act_repeats():
    """Charges already in stores and at accounting carry these FT1-2 ids: they are pinned."""
    charges = evaluate(_act(), tariffs=NGAP, rules=RULES).charges
    assert [c.transaction_id for c in charges] == ["W7SEBIBOKKKX", "YQYUFO45WWAV"]
    assert [(c.code, c.amount_cents) for c in charges] == [("TE2", 2000), ("RQD", 1000)]
    assert charges[0].performed_by == SPEC and charges[0].ordered_by == REQ
    assert charges[1].performed_by == REQ and charges[1].ordered_by == REQ


def test_evaluate_same_act_gives_same_ids_and_another_accession_other_ids():
    first = evaluate(_act(), tariffs=NGAP, rules=RULES).charges
    assert first == evaluate(_act(), tariffs=NGAP, rules=RULES).charges
    other = evaluate(_act(accession="ACC00043"), tariffs=NGAP, rules=RULES).charges
    assert not {c.transaction_id for c in first} & {c.transaction_id for c in other}
    assert all(len(c.transaction_id) == 12 and c.transaction_id.isalnum() for c in first + other)


def test_a_new_billing_round_gets_new_ids_after_a_credit():
    first = evaluate(_act(), tariffs=NGAP, rules=RULES).charges
    credits = credits_for(first)
    again = evaluate(_act(billing_round=1), tariffs=NGAP, rules=RULES).charges
    ids = [c.transaction_id for c in first + credits + again]
    assert len(set(ids)) == 6
    assert pending(again, set(ids[:4])) == again
    assert again[0].transaction_id == transaction_id("ACC00042", "TE2", "CG", 1)


def test_credits_mirror_what_was_charged_with_their_own_stable_ids():
    charged = evaluate(_act(), tariffs=NGAP, rules=RULES).charges
    credits = credits_for(charged)
    assert [dataclasses.replace(c, transaction_id="", type="CG") for c in credits] == [
        dataclasses.replace(c, transaction_id="") for c in charged]
    assert {c.type for c in credits} == {"CD"}
    assert [c.transaction_id for c in credits] == [credit_id(c.transaction_id) for c in charged]
    assert credits_for(charged) == credits
    assert credits_for(charged + credits) == []  # already credited: nothing more
    assert credits_for(credits) == []  # credits are never credited


def test_pending_keeps_only_unrecorded_charges():
    charged = evaluate(_act(), tariffs=NGAP, rules=RULES).charges
    assert pending(charged, set()) == charged
    assert pending(charged, {charged[0].transaction_id}) == charged[1:]


def test_labels_for_take_the_label_of_the_act_date():
    charged = evaluate(_act(), tariffs=NGAP, rules=RULES).charges
    assert labels_for(charged, NGAP) == {"TE2": "Télé-expertise (requis)",
                                         "RQD": "Demande de télé-expertise (requérant)"}


@pytest.mark.parametrize("changes, where", [
    ({"accession": ""}, "accession"),
    ({"level": None, "date": dt.date(2021, 1, 4)}, "level"),
])
def test_evaluate_when_act_lacks_what_billing_needs_raises(changes, where):
    with pytest.raises(DomainError) as err:
        evaluate(_act(**changes), tariffs=NGAP, rules=RULES)
    assert err.value.where == where


@pytest.mark.parametrize("changes, where", [
    ({"kind": "visit"}, "kind"),
    ({"date": "2023-05-10"}, "date"),
    ({"patient": " "}, "patient"),
    ({"requester": "801111111111"}, "requester"),
    ({"requester_site": ""}, "requester_site"),
    ({"patient_hospitalised": None}, "patient_hospitalised"),
    ({"level": 0}, "level"),
    ({"majorations": ["MCS"]}, "majorations"),
    ({"prior_acts": ({"kind": "teleexpertise"},)}, "prior_acts[0]"),
    ({"billing_round": -1}, "billing_round"),
])
def test_act_refuses_invalid_fields_naming_them(changes, where):
    with pytest.raises(DomainError) as err:
        _act(**changes)
    assert err.value.where == where


def test_prior_acts_of_another_requis_do_not_count():
    prior = tuple(PriorAct("teleexpertise", dt.date(2023, 2, n), "801111111111", "OTHER")
                  for n in range(1, 9))
    result = evaluate(_act(prior_acts=prior), tariffs=NGAP, rules=RULES)
    assert [c.code for c in result.charges] == ["TE2"]
    assert [n.code for n in result.not_billable] == ["RQD"]


def test_act_from_json_keeps_identifiers_and_defaults():
    act = act_from_json(TE_2026, accession="ACC1")
    assert (act.requester.id, act.specialist.id, act.accession) == (
        "801111111111", "802222222222", "ACC1")
    assert act.date == dt.date(2026, 3, 2) and act.majorations == () and act.prior_acts == ()


def test_not_billable_lines_get_stable_keys_distinct_from_charge_ids():
    prior = tuple(PriorAct("teleexpertise", dt.date(2023, 2, n), REQ.id, SPEC.id)
                  for n in range(1, 5))
    result = evaluate(_act(prior_acts=prior), tariffs=NGAP, rules=RULES)
    keys = [not_billable_id("ACC00042", n) for n in result.not_billable]
    assert keys == [not_billable_id("ACC00042", n) for n in result.not_billable]
    assert len(set(keys)) == 2 and all(len(k) == 12 for k in keys)
    charged = evaluate(_act(), tariffs=NGAP, rules=RULES).charges
    assert not set(keys) & {c.transaction_id for c in charged + credits_for(charged)}
