"""The billing engine: what one act bills, from dated tariffs and rules (pure: no clock, no I/O).

`evaluate(act, tariffs=, rules=)` returns the charges (CG) of an act and the lines it may not
bill, each with the rule's reason. For each line the rules of mappings/billing/rules.toml say:

1. which code each role bills (`[[line]]`: by kind, date, tele-expertise level, GP or not);
2. whether an exclusion holds (`[[exclusion]]`: patient hospitalised at the requesting
   facility, both doctors on the same site) -> not billable;
3. whether the tariff row of the day is a yearly lump paid by the insurer (requérant before
   2022-04-01, ngap.toml `billing = "yearly_lump"`) -> not billable, never sent;
4. whether a yearly limit is reached (`[[limit]]`: prior acts with the same patient, same
   doctor, same calendar year, inside the limit's period, counted under the code they billed)
   -> not billable;
5. otherwise a charge at the tariff of the act date (a missing tariff is a DomainError, never a
   guess).
Claimed majorations are billed by the role of the act's first line only when a
`[[combination]]` row allows them with its code, and only when that line is billed.

FT1-2 ids come from `teleexpertise.transaction_id(accession, code, "CG", billing_round)`: the
same act always yields the same ids, so a replayed final report or a corrected report books
nothing new once the first ids are recorded. `credits_for` reverses exactly what was charged.
`explain` runs the same evaluation on the JSON input of `telederm billing explain`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from connector.billing.rules import LineRule, Rules, load_rules
from connector.billing.tariffs import KINDS, TariffTable, load_tariffs
from connector.billing.teleexpertise import credit_id, transaction_id
from connector.domain.errors import DomainError
from connector.domain.model import (ActKind, Charge, ChargeRole, PersonName, Practitioner,
                                    TransactionTypeValues, parse_iso_date)

LUMP_REASON = ("paid by the insurer as a yearly lump to the requérant, not billed per act "
               "(no requérant act code before 2022-04-01)")


@dataclass(frozen=True)
class PriorAct:
    """An act already billed for the same patient, as counted by yearly limits.

    `level` is needed for tele-expertise before 2022-04-01 (TE1 and TE2 had separate limits);
    `accession`, when given, lets a replay of an act not count the act itself."""

    kind: str
    date: dt.date
    requester: str
    specialist: str
    level: int | None = None
    accession: str = ""


@dataclass(frozen=True, kw_only=True)
class Act:
    """One tele-expertise or teleconsultation, with what the rules need to know about it.

    Fields are those of `telederm billing explain`'s input, plus `accession` (the seed of the
    FT1-2 ids) and `billing_round` (0; 1, 2... when the act is billed again after a credit)."""

    kind: str
    date: dt.date
    patient: str
    requester: Practitioner
    specialist: Practitioner
    requester_site: str
    specialist_site: str
    patient_hospitalised: bool
    specialist_is_gp: bool = False
    level: int | None = None
    majorations: tuple[str, ...] = ()
    prior_acts: tuple[PriorAct, ...] = ()
    accession: str = ""
    billing_round: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise DomainError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}", where="kind")
        if type(self.date) is not dt.date:
            raise DomainError("date must be a calendar date", where="date")
        if not isinstance(self.patient, str) or not self.patient.strip():
            raise DomainError("patient identifier is empty", where="patient")
        for name in ("requester", "specialist"):
            if not isinstance(getattr(self, name), Practitioner):
                raise DomainError(f"{name} must be a practitioner", where=name)
        for name in ("patient_hospitalised", "specialist_is_gp"):
            if not isinstance(getattr(self, name), bool):
                raise DomainError(f"{name} must be true or false", where=name)
        for name in ("requester_site", "specialist_site"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise DomainError(f"{name} must be a string", where=name)
            if self.kind == ActKind.TELEEXPERTISE and not value.strip():
                raise DomainError(f"{name} is empty", where=name,
                                  hint="tele-expertise between two doctors of the same site is "
                                       "not billable, so both sites must be known")
        if self.kind == ActKind.TELEEXPERTISE and self.requester.id == self.specialist.id:
            raise DomainError("requester and specialist are the same practitioner",
                              where="specialist",
                              hint="a tele-expertise is asked by one doctor and answered "
                                   "by another")
        if self.level is not None and (type(self.level) is not int or self.level not in (1, 2)):
            raise DomainError("level must be 1 or 2", where="level")
        if not isinstance(self.majorations, tuple):
            raise DomainError("majorations must be a list of codes", where="majorations")
        for i, code in enumerate(self.majorations):
            if not isinstance(code, str) or not code.strip():
                raise DomainError("majoration code is empty", where=f"majorations[{i}]")
            if code in self.majorations[:i]:
                raise DomainError(f"majoration {code} is claimed twice", where=f"majorations[{i}]")
        for i, prior in enumerate(self.prior_acts):
            if not isinstance(prior, PriorAct):
                raise DomainError("prior act must be a PriorAct", where=f"prior_acts[{i}]")
        if not isinstance(self.accession, str):
            raise DomainError("accession must be a string", where="accession")
        if type(self.billing_round) is not int or self.billing_round < 0:
            raise DomainError("billing round must be 0 or more", where="billing_round")

    @property
    def act_date(self) -> str:
        return self.date.strftime("%Y%m%d")


@dataclass(frozen=True)
class NotBillable:
    code: str
    role: str
    reason: str


@dataclass(frozen=True)
class Evaluation:
    charges: list[Charge] = field(default_factory=list)
    not_billable: list[NotBillable] = field(default_factory=list)


def evaluate(act: Act, *, tariffs: TariffTable, rules: Rules) -> Evaluation:
    """The charges (CG) of `act` and its lines that may not be billed, with the reason."""
    if not act.accession.strip():
        raise DomainError("accession is empty", where="accession",
                          hint="the accession seeds the FT1-2 transaction ids")
    if rules.needs_level(act.kind, act.date) and act.level is None:
        raise DomainError(f"level is required for a {act.kind} dated {act.date}", where="level",
                          hint="give 1 (TE1, simple question) or 2 (TE2, complex situation)")
    gp = act.specialist_is_gp
    lines = rules.lines_for(act.kind, act.date, act.level, gp)
    start = rules.billable_from(act.kind)
    if not lines and start is not None and act.date < start:
        return _before_billable(act, start, rules)
    if not lines:
        raise DomainError(f"no {act.kind} billing rule covers {act.date}", where="date",
                          hint=f"add a [[line]] row covering this date to {rules.source}")
    known = rules.majorations()
    for i, code in enumerate(act.majorations):
        if code not in known:
            raise DomainError(f"{code} is not a majoration known to the rules",
                              where=f"majorations[{i}]",
                              hint=f"known majorations: {', '.join(sorted(known)) or 'none'}")
    result = Evaluation()
    reasons: dict[tuple[str, str], str] = {}
    for line in lines:
        reason = _why_not(act, line, tariffs, rules)
        if reason:
            reasons[(line.code, line.role)] = reason
            result.not_billable.append(NotBillable(line.code, line.role, reason))
        else:
            result.charges.append(_charge(act, line.code, line.role, tariffs))
    base = lines[0]
    combination = rules.combination_for(base.code, act.date)
    for code in act.majorations:
        if combination is None or code not in combination.majorations:
            reason = combination.reason if combination else \
                f"no [[combination]] row allows a majoration with {base.code}"
        else:
            reason = reasons.get((base.code, base.role), "")
        if reason:
            result.not_billable.append(NotBillable(code, base.role, reason))
        else:
            result.charges.append(_charge(act, code, base.role, tariffs))
    return result


def _why_not(act: Act, line: LineRule, tariffs: TariffTable, rules: Rules) -> str:
    """The reason `line` is not billable, or "" when it is."""
    for exclusion in rules.exclusions_for(act.kind, line.role, act.date):
        if _condition(act, exclusion.when):
            return exclusion.reason
    if tariffs.find(line.code, line.role, act.act_date).billing == "yearly_lump":
        return LUMP_REASON
    for limit in rules.limits_for(act.kind, line.role, line.code, act.date):
        doctor = act.specialist.id if limit.per == "specialist" else act.requester.id
        count = 0
        for i, prior in enumerate(act.prior_acts):
            if (prior.kind != act.kind or prior.date.year != act.date.year
                    or prior.date > act.date or not limit.covers(prior.date)
                    or (act.accession and prior.accession == act.accession)):
                continue
            if (prior.specialist if limit.per == "specialist" else prior.requester) != doctor:
                continue
            if rules.needs_level(prior.kind, prior.date) and prior.level is None:
                raise DomainError(f"level is required for a prior {prior.kind} dated {prior.date}",
                                  where=f"prior_acts[{i}].level",
                                  hint="TE1 and TE2 had separate yearly limits before 2022-04-01")
            billed = {r.code for r in rules.lines_for(prior.kind, prior.date, prior.level, None,
                                                      role=line.role)}
            if billed & set(limit.codes):
                count += 1
        if count >= limit.max:
            return limit.reason
    return ""


def _condition(act: Act, when: str) -> bool:
    if when == "patient_hospitalised":
        return act.patient_hospitalised
    if when == "same_site":
        return bool(act.requester_site.strip()) and (
            act.requester_site.strip().casefold() == act.specialist_site.strip().casefold())
    raise DomainError(f"unknown exclusion condition {when!r}", where="rules")


def _charge(act: Act, code: str, role: str, tariffs: TariffTable) -> Charge:
    performed_by = act.requester if role == ChargeRole.REQUERANT else act.specialist
    return Charge(
        transaction_id=transaction_id(act.accession, code, TransactionTypeValues.CHARGE.value,
                                      act.billing_round),
        code=code,
        role=role,
        amount_cents=tariffs.amount_cents(code, role, act.act_date),
        type=TransactionTypeValues.CHARGE.value,
        act_date=act.act_date,
        performed_by=performed_by,
        ordered_by=act.requester,
    )


def _before_billable(act: Act, start: dt.date, rules: Rules) -> Evaluation:
    """An act dated before its kind became billable: not an error in the rules but an answer —
    each line the act would bill from `start`, not billable, with that reason."""
    lines = (rules.lines_for(act.kind, start, act.level, act.specialist_is_gp)
             or [r for r in rules.lines if r.kind == act.kind and r.valid_from == start])
    reason = f"{act.kind} billable from {start.isoformat()}"
    pairs = dict.fromkeys((line.code, line.role) for line in lines)
    return Evaluation(not_billable=[NotBillable(code, role, reason) for code, role in pairs])


def credits_for(charged: list[Charge]) -> list[Charge]:
    """One CD per CG in `charged`, same code, role, amount, date and doctors, with a stable
    FT1-2 of its own. Credits already in `charged` (CD rows) are not credited again, and a CG
    whose credit is already there yields nothing: passing all rows of an act is safe."""
    done = {c.transaction_id for c in charged if c.type == TransactionTypeValues.CREDIT}
    out = []
    for charge in charged:
        if charge.type != TransactionTypeValues.CHARGE:
            continue
        cd = credit_id(charge.transaction_id)
        if cd in done:
            continue
        done.add(cd)
        out.append(Charge(transaction_id=cd, code=charge.code, role=charge.role,
                          amount_cents=charge.amount_cents,
                          type=TransactionTypeValues.CREDIT.value, act_date=charge.act_date,
                          performed_by=charge.performed_by, ordered_by=charge.ordered_by))
    return out


def pending(charges: list[Charge], recorded_ids: set[str] | frozenset[str]) -> list[Charge]:
    """The charges not recorded yet: what a replayed or corrected report adds (nothing when the
    act was already charged: its ids are stable)."""
    return [c for c in charges if c.transaction_id not in recorded_ids]


def not_billable_id(accession: str, line: NotBillable, billing_round: int = 0) -> str:
    """A stable 12-character key for recording a not-billable line (never sent as FT1-2; in the
    same id space as charges, so it can share their unique column without colliding)."""
    return transaction_id(accession, f"{line.code}/{line.role}", "NB", billing_round)


def labels_for(charges: list[Charge], tariffs: TariffTable) -> dict[str, str]:
    """National labels by code (FT1-25.2) from the tariff row of each charge's date."""
    return {c.code: tariffs.find(c.code, c.role, c.act_date).label_fr for c in charges}


def amount_text(cents: int) -> str:
    """Cents as a decimal string of euros: 2300 -> "23.00"."""
    return f"{cents // 100}.{cents % 100:02d}"


# --- explain: the JSON door ---------------------------------------------------------------------

_ACT_KEYS = {"kind", "date", "patient", "requester", "specialist", "requester_site",
             "specialist_site", "patient_hospitalised", "specialist_is_gp", "level",
             "majorations", "prior_acts"}
_PRIOR_KEYS = {"kind", "date", "requester", "specialist", "level", "accession"}


def act_from_json(data: object, *, accession: str = "EXPLAIN") -> Act:
    """An Act from the explain input; DomainError naming the field for anything wrong.

    Required: kind, date (YYYY-MM-DD), patient, requester, specialist; for tele-expertise also
    requester_site, specialist_site and patient_hospitalised; for teleconsultation
    specialist_is_gp. Optional: level (1|2, required for tele-expertise before 2022-04-01),
    majorations (codes), prior_acts ([{kind, date, requester, specialist[, level]
    [, accession]}])."""
    if not isinstance(data, dict):
        raise DomainError("the act must be a JSON object", where="act")
    unknown = sorted(set(data) - _ACT_KEYS)
    if unknown:
        raise DomainError(f"unknown field {unknown[0]!r}", where=unknown[0],
                          hint=f"fields are {', '.join(sorted(_ACT_KEYS))}")
    kind = _required(data, "kind", str)
    if kind not in KINDS:
        raise DomainError(f"kind {kind!r} is not one of {', '.join(KINDS)}", where="kind")
    te = kind == ActKind.TELEEXPERTISE
    majorations = data.get("majorations", [])
    if not isinstance(majorations, list):
        raise DomainError("majorations must be a list of codes", where="majorations")
    priors = data.get("prior_acts", [])
    if not isinstance(priors, list):
        raise DomainError("prior_acts must be a list of acts", where="prior_acts")
    level = data.get("level")
    if level is not None and (type(level) is not int or level not in (1, 2)):
        raise DomainError("level must be 1 or 2", where="level")
    return Act(
        kind=kind,
        date=_date(data, "date"),
        patient=_identifier(data, "patient"),
        requester=_practitioner(_identifier(data, "requester")),
        specialist=_practitioner(_identifier(data, "specialist")),
        requester_site=_required(data, "requester_site", str) if te else _optional(
            data, "requester_site", str, ""),
        specialist_site=_required(data, "specialist_site", str) if te else _optional(
            data, "specialist_site", str, ""),
        patient_hospitalised=_required(data, "patient_hospitalised", bool) if te else _optional(
            data, "patient_hospitalised", bool, False),
        specialist_is_gp=_optional(data, "specialist_is_gp", bool, False) if te else _required(
            data, "specialist_is_gp", bool),
        level=level,
        majorations=tuple(_code(m, f"majorations[{i}]") for i, m in enumerate(majorations)),
        prior_acts=tuple(_prior(p, f"prior_acts[{i}]") for i, p in enumerate(priors)),
        accession=accession,
    )


def explain(act_json: dict, *, tariffs: TariffTable | None = None,
            rules: Rules | None = None) -> dict:
    """What the act would bill, as `telederm billing explain` prints it: `{"charges": [{code,
    role, amount, type}], "not_billable": [{code, role, reason}]}`. Nothing is sent or stored.
    Without `tariffs`/`rules`, the files shipped in mappings/billing are used."""
    if tariffs is None:
        tariffs, shipped = load_shipped()
        rules = rules or shipped
    elif rules is None:
        rules = load_rules(_SHIPPED / "rules.toml", tariffs=tariffs)
    result = evaluate(act_from_json(act_json), tariffs=tariffs, rules=rules)
    return {
        "charges": [{"code": c.code, "role": c.role, "amount": amount_text(c.amount_cents),
                     "type": c.type} for c in result.charges],
        "not_billable": [{"code": n.code, "role": n.role, "reason": n.reason}
                         for n in result.not_billable],
    }


_SHIPPED = Path(__file__).resolve().parents[2] / "mappings" / "billing"


def load_shipped(folder: str | Path | None = None) -> tuple[TariffTable, Rules]:
    """ngap.toml and rules.toml from `folder` (default: the repository's mappings/billing)."""
    folder = Path(folder) if folder is not None else _SHIPPED
    tariffs = load_tariffs(folder / "ngap.toml")
    return tariffs, load_rules(folder / "rules.toml", tariffs=tariffs)


def _required(data: dict, key: str, typ: type, where: str | None = None):
    where = where or key
    if key not in data or data[key] is None:
        raise DomainError(f"{key} is missing", where=where)
    value = data[key]
    if typ is bool and not isinstance(value, bool):
        raise DomainError(f"{key} must be true or false", where=where)
    if typ is str and not isinstance(value, str):
        raise DomainError(f"{key} must be a string", where=where)
    return value


def _optional(data: dict, key: str, typ: type, default):
    return _required(data, key, typ) if key in data else default


def _identifier(data: dict, key: str, where: str | None = None) -> str:
    value = _required(data, key, str, where)
    if not value.strip():
        raise DomainError(f"{key} is empty", where=where or key)
    return value.strip()


def _date(data: dict, key: str, where: str | None = None) -> dt.date:
    value = _required(data, key, str, where)
    day = parse_iso_date(value)
    if day is not None:
        return day
    raise DomainError(f"{key} {value!r} is not a date written YYYY-MM-DD", where=where or key)


def _code(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DomainError("majoration must be a non-empty code", where=where)
    return value.strip()


def _practitioner(identifier: str) -> Practitioner:
    """Explain knows doctors by identifier only; the name is never rendered."""
    return Practitioner(identifier, PersonName(identifier))


def _prior(item: object, where: str) -> PriorAct:
    if not isinstance(item, dict):
        raise DomainError("prior act must be an object", where=where)
    unknown = sorted(set(item) - _PRIOR_KEYS)
    if unknown:
        raise DomainError(f"unknown field {unknown[0]!r}", where=f"{where}.{unknown[0]}",
                          hint=f"fields are {', '.join(sorted(_PRIOR_KEYS))}")
    kind = _required(item, "kind", str, f"{where}.kind")
    if kind not in KINDS:
        raise DomainError(f"kind {kind!r} is not one of {', '.join(KINDS)}", where=f"{where}.kind")
    level = item.get("level")
    if level is not None and (type(level) is not int or level not in (1, 2)):
        raise DomainError("level must be 1 or 2", where=f"{where}.level")
    accession = _optional(item, "accession", str, "")
    return PriorAct(kind, _date(item, "date", f"{where}.date"),
                    _identifier(item, "requester", f"{where}.requester"),
                    _identifier(item, "specialist", f"{where}.specialist"), level, accession)


__all__ = ["Act", "PriorAct", "Evaluation", "NotBillable", "evaluate", "credits_for", "pending",
           "not_billable_id", "labels_for", "amount_text", "act_from_json", "explain",
           "load_shipped", "LUMP_REASON"]
