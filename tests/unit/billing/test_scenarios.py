"""Table-driven billing scenarios: an act (as `billing explain` takes it) -> the exact FT1 lines
of the DFT^P03 that reaches the accounting feed, read back with python-hl7, and the lines
recorded as not billable with their reason.

Each row runs one step over a small in-memory ledger of recorded FT1-2 ids (what the store
keeps): `final` bills the act; `replay` bills the same act twice; `correct` bills it, then the
corrected report (signed `later`) again; `cancel` bills it, then credits what was charged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import hl7
import pytest

from connector.billing.engine import act_from_json, credits_for, evaluate, labels_for, pending
from connector.hl7.dft import build_dft
from tests.support.billing_cases import (NGAP, ORDER, PEOPLE, REQ, REQ2, RULES, SPEC, SPEC2,
                                         facilities, reasons)

ACC = "TD-2026-000042"
NOW = "20261116121000"
R, R2, S, S2 = REQ.id, REQ2.id, SPEC.id, SPEC2.id
REASON = reasons()


def te(date: str, **extra) -> dict:
    act = {"kind": "teleexpertise", "date": date, "patient": "IPP0012345", "requester": R,
           "specialist": S, "requester_site": "EHPAD-LES-PINS", "specialist_site": "CHU-DERMATO",
           "patient_hospitalised": False}
    return act | extra


def tc(date: str, gp: bool = False, **extra) -> dict:
    act = {"kind": "teleconsultation", "date": date, "patient": "IPP0012345", "requester": R,
           "specialist": S, "specialist_is_gp": gp}
    return act | extra


def prior(n: int, date: str, requester=R, specialist=S, kind="teleexpertise", **extra) -> list:
    return [{"kind": kind, "date": date, "requester": requester, "specialist": specialist} | extra
            for _ in range(n)]


@dataclass
class Case:
    id: str
    act: dict
    # FT1 lines: (FT1-6, FT1-7.1, FT1-25.1, FT1-11, FT1-20.1, FT1-21.1)
    lines: list[tuple[str, str, str, str, str, str]]
    not_billable: list[tuple[str, str, str]] = field(default_factory=list)  # code, role, rule id
    facility: str = "CHU_A"
    step: str = "final"
    later: str = ""  # signature date of the corrected report


def cg(code, amount, by=S, to=R, fac="A"):
    return ("CG", f"{fac}-{code}", code, f"{amount}&EUR" if amount else "", by, to)


def cd(code, amount, by=S, to=R):
    return ("CD", f"A-{code}", code, f"{amount}&EUR", by, to)


CASES = [
    # --- tariff dates ------------------------------------------------------------------------
    Case("te1-first-day-2019", te("2019-02-10", level=1), [cg("TE1", "12.00")],
         [("TE1", "requerant", "lump")]),
    Case("te2-first-day-2019", te("2019-02-10", level=2), [cg("TE2", "20.00")],
         [("TE2", "requerant", "lump")]),
    Case("te1-2021", te("2021-06-15", level=1), [cg("TE1", "12.00")],
         [("TE1", "requerant", "lump")]),
    Case("te2-last-day-of-two-levels", te("2022-03-31", level=2), [cg("TE2", "20.00")],
         [("TE2", "requerant", "lump")]),
    Case("te-first-day-avenant-9", te("2022-04-01"),
         [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)]),
    Case("te-level-ignored-after-2022", te("2023-05-10", level=1),
         [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)]),
    Case("te-last-day-at-20", te("2025-12-31"), [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)]),
    Case("te-first-day-at-23", te("2026-01-01"), [cg("TE2", "23.00"), cg("RQD", "10.00", by=R)]),
    Case("te-2026-facility-without-amounts", te("2026-11-16"),
         [cg("TE2", "", fac="B"), cg("RQD", "", by=R, fac="B")], facility="CLIN_B"),
    # --- yearly limits since 2022 --------------------------------------------------------------
    Case("te-fourth-act-in-year", te("2023-06-01", prior_acts=prior(3, "2023-02-01")),
         [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)]),
    Case("te-fifth-act-in-year", te("2023-06-01", prior_acts=prior(4, "2023-02-01")), [],
         [("TE2", "requis", "te-requis-4"), ("RQD", "requerant", "te-requerant-4")]),
    Case("te-fifth-for-the-requis-only",
         te("2023-06-01", prior_acts=prior(4, "2023-02-01", requester=R2)),
         [cg("RQD", "10.00", by=R)], [("TE2", "requis", "te-requis-4")]),
    Case("te-fifth-for-the-requerant-only",
         te("2023-06-01", prior_acts=prior(4, "2023-02-01", specialist=S2)),
         [cg("TE2", "20.00")], [("RQD", "requerant", "te-requerant-4")]),
    Case("te-previous-year-does-not-count", te("2023-01-02", prior_acts=prior(4, "2022-11-30")),
         [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)]),
    Case("te-new-year-starts-a-new-count", te("2024-01-01", prior_acts=prior(4, "2023-12-31")),
         [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)]),
    Case("te-later-acts-are-not-prior", te("2023-03-01", prior_acts=prior(4, "2023-06-01")),
         [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)]),
    Case("te-teleconsultations-do-not-count",
         te("2023-06-01", prior_acts=prior(4, "2023-02-01", kind="teleconsultation")),
         [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)]),
    Case("te-replayed-act-does-not-count-itself",
         te("2023-06-01", prior_acts=prior(3, "2023-02-01") + prior(1, "2023-06-01",
                                                                    accession=ACC)),
         [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)]),
    # --- yearly limits before 2022: 4 TE1 + 2 TE2 per requis --------------------------------------
    Case("te1-fifth-in-2020", te("2020-09-01", level=1, prior_acts=prior(4, "2020-02-01", level=1)),
         [], [("TE1", "requis", "te1-requis-4"), ("TE1", "requerant", "lump")]),
    Case("te2-third-in-2020", te("2020-09-01", level=2, prior_acts=prior(2, "2020-02-01", level=2)),
         [], [("TE2", "requis", "te2-requis-2"), ("TE2", "requerant", "lump")]),
    Case("te2-after-four-te1-in-2020",
         te("2020-09-01", level=2, prior_acts=prior(4, "2020-02-01", level=1)),
         [cg("TE2", "20.00")], [("TE2", "requerant", "lump")]),
    Case("te1-after-two-te2-in-2020",
         te("2020-09-01", level=1, prior_acts=prior(2, "2020-02-01", level=2)),
         [cg("TE1", "12.00")], [("TE1", "requerant", "lump")]),
    Case("te-2022-acts-before-avenant-9-count-under-their-own-period",
         te("2022-05-02", prior_acts=prior(4, "2022-02-01", level=2)),
         [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)]),
    # --- exclusions and non-combination --------------------------------------------------------
    Case("te-patient-hospitalised", te("2023-06-01", patient_hospitalised=True), [],
         [("TE2", "requis", "inpatient"), ("RQD", "requerant", "inpatient")]),
    Case("te-patient-hospitalised-2020", te("2020-06-01", level=2, patient_hospitalised=True), [],
         [("TE2", "requis", "inpatient"), ("TE2", "requerant", "inpatient")]),
    Case("te-same-site", te("2023-06-01", requester_site="MSP-NORD", specialist_site="MSP-NORD"),
         [], [("TE2", "requis", "same-site"), ("RQD", "requerant", "same-site")]),
    Case("te-same-site-ignores-case",
         te("2026-02-01", requester_site="msp-nord ", specialist_site="MSP-NORD"), [],
         [("TE2", "requis", "same-site"), ("RQD", "requerant", "same-site")]),
    Case("te-with-a-majoration", te("2023-06-01", majorations=["MCS"]),
         [cg("TE2", "20.00"), cg("RQD", "10.00", by=R)], [("MCS", "requis", "te-alone")]),
    Case("te-over-limit-with-a-majoration",
         te("2023-06-01", majorations=["MPC"], prior_acts=prior(4, "2023-01-05")), [],
         [("TE2", "requis", "te-requis-4"), ("RQD", "requerant", "te-requerant-4"),
          ("MPC", "requis", "te-alone")]),
    # --- teleconsultation ----------------------------------------------------------------------
    Case("tc-specialist-without-majoration", tc("2020-05-04"), [cg("TC", "23.00")]),
    Case("tc-specialist-with-mpc-and-mcs", tc("2020-05-04", majorations=["MPC", "MCS"]),
         [cg("TC", "23.00"), cg("MPC", "2.00"), cg("MCS", "5.00")]),
    Case("tc-specialist-last-day-before-revaluation", tc("2024-12-21", majorations=["MPC"]),
         [cg("TC", "23.00"), cg("MPC", "2.00")]),
    Case("tc-specialist-refuses-mcg", tc("2021-03-01", majorations=["MCG"]), [cg("TC", "23.00")],
         [("MCG", "doctor", "tc-majorations")]),
    Case("tc-gp-without-majoration", tc("2023-02-01", gp=True), [cg("TCG", "25.00")]),
    Case("tc-gp-with-mcg", tc("2023-02-01", gp=True, majorations=["MCG"]),
         [cg("TCG", "25.00"), cg("MCG", "5.00")]),
    Case("tc-gp-refuses-mcs-and-mpc", tc("2023-02-01", gp=True, majorations=["MCS", "MPC"]),
         [cg("TCG", "25.00")], [("MCS", "doctor", "tcg-majorations"),
                                ("MPC", "doctor", "tcg-majorations")]),
    Case("tc-gp-after-december-2024", tc("2025-06-02", gp=True), [cg("TCG", "25.00")]),
    Case("tc-inpatient-flag-does-not-exclude-teleconsultation",
         tc("2022-06-01", patient_hospitalised=True), [cg("TC", "23.00")]),
    Case("tc-facility-without-amounts", tc("2020-05-04", majorations=["MCS"]),
         [cg("TC", "", fac="B"), cg("MCS", "", fac="B")], facility="CLIN_B"),
    # --- lifecycle: replay, correction, cancellation ------------------------------------------
    Case("replay-of-the-same-final-report", te("2023-05-10"), [], step="replay"),
    Case("correction-after-a-tariff-change-books-nothing", te("2025-12-31"), [], step="correct",
         later="2026-01-02"),
    Case("correction-of-a-teleconsultation-books-nothing", tc("2023-02-01", gp=True,
                                                              majorations=["MCG"]),
         [], step="correct", later="2023-02-03"),
    Case("cancellation-after-billing", te("2023-05-10"),
         [cd("TE2", "20.00"), cd("RQD", "10.00", by=R)], step="cancel"),
    Case("cancellation-after-billing-in-2026", te("2026-03-03"),
         [cd("TE2", "23.00"), cd("RQD", "10.00", by=R)], step="cancel"),
    Case("cancellation-of-a-2020-te1", te("2020-10-10", level=1), [cd("TE1", "12.00")],
         [("TE1", "requerant", "lump")], step="cancel"),
    Case("cancellation-of-a-teleconsultation", tc("2020-05-04", majorations=["MPC", "MCS"]),
         [cd("TC", "23.00"), cd("MPC", "2.00"), cd("MCS", "5.00")], step="cancel"),
    Case("cancellation-of-an-act-over-the-limit",
         te("2023-06-01", prior_acts=prior(4, "2023-02-01")), [],
         [("TE2", "requis", "te-requis-4"), ("RQD", "requerant", "te-requerant-4")],
         step="cancel"),
    Case("cancellation-sent-twice-credits-once", te("2023-05-10"), [], step="cancel-again"),
]


@pytest.fixture(scope="module")
def fac(tmp_path_factory):
    return facilities(tmp_path_factory.mktemp("fac"))


def _act(data: dict):
    act = act_from_json(data, accession=ACC)
    return dataclasses.replace(act, requester=PEOPLE[act.requester.id],
                               specialist=PEOPLE[act.specialist.id])


def run(case: Case):
    """The batch of charges the step sends (possibly empty) and the first evaluation."""
    ledger: list = []

    def post(charges):
        new = pending(charges, {c.transaction_id for c in ledger})
        ledger.extend(new)
        return new

    act = _act(case.act)
    first = evaluate(act, tariffs=NGAP, rules=RULES)
    batch = post(first.charges)
    if case.step == "replay":
        again = evaluate(_act(case.act), tariffs=NGAP, rules=RULES)
        assert [c.transaction_id for c in again.charges] == [c.transaction_id for c in batch]
        batch = post(again.charges)
    elif case.step == "correct":
        corrected = evaluate(_act(case.act | {"date": case.later}), tariffs=NGAP, rules=RULES)
        assert corrected.charges  # the correction would bill, but its ids are known
        batch = post(corrected.charges)
    elif case.step in ("cancel", "cancel-again"):
        credits = credits_for(ledger)
        assert {c.transaction_id for c in credits}.isdisjoint(c.transaction_id for c in batch)
        batch = post(credits)
        if case.step == "cancel-again":
            batch = post(credits_for(ledger))
    return batch, first


def ft1_lines(batch, facility) -> list:
    if not batch:
        with pytest.raises(ValueError):  # nothing to send: no DFT at all
            build_dft(control_id="DFT-1", now=NOW, order=ORDER, accession=ACC, charges=batch,
                      sending=("TELEDERM", "TELEDERM"), receiving=("COMPTA", "CHU"),
                      facility=facility)
        return []
    text = build_dft(control_id="DFT-1", now=NOW, order=ORDER, accession=ACC, charges=batch,
                     sending=("TELEDERM", "TELEDERM"), receiving=("COMPTA", "CHU"),
                     labels=labels_for(batch, NGAP), facility=facility)
    msg = hl7.parse(text)
    assert str(msg.segment("MSH")(9)) == "DFT^P03^DFT_P03"
    segments = list(msg.segments("FT1"))
    out = []
    for n, (ft1, charge) in enumerate(zip(segments, batch, strict=True), start=1):
        f = lambda field, comp=1: ft1.extract_field(1, field, 1, comp)  # noqa: E731
        # What every line carries whatever the scenario:
        assert str(ft1(1)) == str(n)
        assert str(ft1(2)) == charge.transaction_id and len(str(ft1(2))) == 12
        assert str(ft1(4)) == f"{charge.act_date}^{charge.act_date}" and str(ft1(5)) == NOW
        assert f(7, 3) == facility.coding_system and f(7, 2) == f"{f(7)[0]} {charge.code}"
        assert f(25, 2) == NGAP.find(charge.code, charge.role, charge.act_date).label_fr
        assert f(25, 3) == "NGAP" and str(ft1(10)) == "1"
        assert str(ft1(12)) == str(ft1(11))
        dept = "UF201" if (facility.id, charge.code) == ("CLIN_B", "RQD") else facility.department
        assert str(ft1(13)) == dept and str(ft1(23)) == ACC
        out.append((str(ft1(6)), f(7), f(25), str(ft1(11)), f(20), f(21)))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_scenario_gives_exactly_the_expected_ft1_lines(case, fac):
    batch, first = run(case)
    assert ft1_lines(batch, fac.get(case.facility)) == case.lines
    assert [(n.code, n.role, n.reason) for n in first.not_billable] == [
        (code, role, REASON[rule]) for code, role, rule in case.not_billable]


def test_scenario_table_covers_at_least_thirty_cases():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
