"""The structured request (dermatology questionnaire) and the patient's consent, read from an
order's OBX (and CON) segments.

The questionnaire is data (`mappings/questionnaire.toml`): each item has the OBX-3 code(s) that
carry it, a value type (coded, boolean, number, text), its allowed answers with French and
English labels, and the triage weight of each answer; the file also holds the triage rule
(points per order priority, minimum score per level). Every OBX of the order is read except
images (OBX-2 ED) and the ones the caller skips (teleconsultation majorations, consent); an
answer that is not allowed is an ERR at that OBX's field 5 (`OBX^n^5`).

Consent (`[consent]` of mappings/hl7/orm_o01.toml) is either an OBX whose OBX-3.1 is one of the
consent codes with a yes answer, or a CON segment whose status says granted.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (AfterValidator, Field, PlainValidator, StrictBool, StrictInt, StrictStr,
                      StringConstraints, model_validator)

from connector.domain.errors import DomainError
from connector.domain.model import (TRIAGE_LEVELS, Answer, Consent, Priority, TriagePolicy)
from connector.mapfile import read_toml
from connector.validation import NonEmpty, Problems, SiteModel

from .errors import Hl7Error
from .parse import Location, ParsedMessage, is_timestamp
from .readers import Codes, position

QUESTIONNAIRE_FILE = Path(__file__).resolve().parents[2] / "mappings" / "questionnaire.toml"

TYPES = ("coded", "boolean", "number", "text")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


@dataclass(frozen=True)
class Choice:
    """One allowed answer of a coded or yes/no item."""

    code: str
    fr: str
    en: str
    weight: int = 0
    red_flag: bool = False


@dataclass(frozen=True)
class Item:
    """One question: which OBX-3.1 codes carry it and what it accepts."""

    id: str
    codes: frozenset[str]
    type: str
    fr: str
    en: str
    multiple: bool = False
    choices: tuple[Choice, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    max_length: int = 500


@dataclass(frozen=True)
class Questionnaire:
    """The parsed questionnaire file."""

    items: tuple[Item, ...]
    triage: TriagePolicy
    code: Location                  # where an OBX's question code is read
    value: Location                 # its answer (a whole field)
    skip_value_types: frozenset[str]
    unknown_codes: str              # ignore | refuse
    yes: frozenset[str]
    no: frozenset[str]
    value_type: Location = Location("OBX", field=2)  # OBX-2, the HL7 value type

    def item_for(self, code: str) -> Item | None:
        return self._by_code.get(code.upper())

    @functools.cached_property
    def _by_code(self) -> dict[str, Item]:
        return {code: item for item in self.items for code in item.codes}


@dataclass(frozen=True)
class ConsentMapping:
    """[consent] of the ORM mapping: where the patient's consent is read and what counts."""

    required: bool
    source: str                      # obx | con
    codes: tuple[str, ...]
    code: Location
    answer: Location
    answered_at: Location
    yes: tuple[str, ...]
    con_status: Location
    con_granted: tuple[str, ...]
    con_at: Location

    def is_consent_obx(self, msg: ParsedMessage, n: int) -> bool:
        return (self.source == "obx"
                and msg.value(self.code.at(occurrence=n)).strip().upper() in self.codes)


# --- loading -------------------------------------------------------------------------------

_HINT = "fix the questionnaire file; see the comments at its top"
_SomeCodes = Annotated[Codes, NonEmpty]
_Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _item_id(key: str) -> str:
    if not _ID.match(key):
        raise ValueError("item ids are lowercase letters, digits and _ (at most 40)")
    return key


def _answer_code(code: str) -> str:
    if not code.strip() or code != code.strip():
        raise ValueError("answer codes are non-empty, without spaces around")
    return code


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    return value


class _Labels(SiteModel):
    fr: _Label
    en: _Label


class _Choice(_Labels):
    weight: Annotated[StrictInt, Field(ge=-1000, le=1000)] = 0
    red_flag: StrictBool = False


class _Item(SiteModel):
    """One [items.<id>] table; which keys an item takes depends on its type."""

    codes: _SomeCodes
    type: Literal[TYPES]
    label: _Labels
    multiple: StrictBool = False
    answers: dict[Annotated[str, AfterValidator(_answer_code)], _Choice] | None = None
    min: Annotated[float, PlainValidator(_number)] | None = None
    max: Annotated[float, PlainValidator(_number)] | None = None
    unit: StrictStr | None = None
    max_length: Annotated[StrictInt, Field(ge=1, le=10000)] | None = None

    @model_validator(mode="after")
    def _keys_fit_the_type(self):
        given = {k for k in ("answers", "min", "max", "unit", "max_length")
                 if getattr(self, k) is not None}
        if self.type in ("coded", "boolean"):
            if not self.answers:
                raise ValueError("answers: a coded or boolean item needs its answers")
            if self.type == "boolean" and sorted(self.answers) != ["N", "Y"]:
                raise ValueError("answers: a boolean item's answers are exactly Y and N")
            if self.type == "boolean" and self.multiple:
                raise ValueError("multiple: a boolean item takes one answer")
            allowed = {"answers"}
        else:
            allowed = {"min", "max", "unit"} if self.type == "number" else {"max_length"}
        wrong = sorted(given - allowed)
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not for a {self.type} item")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self

    def item(self, key: str) -> Item:
        choices = tuple(Choice(code.upper(), c.fr, c.en, c.weight, c.red_flag)
                        for code, c in (self.answers or {}).items())
        extra = {} if self.max_length is None else {"max_length": self.max_length}
        return Item(key, frozenset(self.codes), self.type, self.label.fr, self.label.en,
                    self.multiple, choices, self.min, self.max, self.unit or "", **extra)


class _Obx(SiteModel):
    code: position(segment="OBX")
    value: position(whole=True, segment="OBX")
    skip_value_types: _SomeCodes
    unknown_codes: Literal["ignore", "refuse"]


class _Values(SiteModel):
    yes: _SomeCodes
    no: _SomeCodes

    @model_validator(mode="after")
    def _distinct(self):
        if set(self.yes) & set(self.no):
            raise ValueError("a code cannot mean both yes and no")
        return self


class _Points(SiteModel):
    stat: StrictInt
    urgent: StrictInt
    routine: StrictInt


class _Triage(SiteModel):
    priority: _Points
    levels: Annotated[dict[Literal[TRIAGE_LEVELS], StrictInt], NonEmpty]


class _File(SiteModel):
    obx: _Obx
    values: _Values
    items: Annotated[dict[Annotated[str, AfterValidator(_item_id)], _Item], NonEmpty]
    triage: _Triage


@functools.lru_cache(maxsize=None)
def load_questionnaire(path: Path = QUESTIONNAIRE_FILE) -> Questionnaire:
    """Read and check the questionnaire file once; a malformed one raises `ConfigError`
    naming the file and every key at fault."""
    path = Path(path)
    problems = Problems(str(path), hint=_HINT)
    f = problems.validate(_File, read_toml(path, "questionnaire"))
    if f is None:
        problems.raise_any()
    seen: dict[str, str] = {}
    for key, item in f.items.items():
        for c in item.codes:
            if c in seen:
                problems.add(f"code {c} also used by item {seen[c]}", key=f"items.{key}.codes")
            seen.setdefault(c, key)
    try:
        triage = TriagePolicy(tuple((Priority(k), v) for k, v in dict(f.triage.priority).items()),
                              tuple(f.triage.levels.items()))
    except DomainError as exc:
        problems.add(exc.text, key=exc.where)
    problems.raise_any()
    return Questionnaire(tuple(item.item(key) for key, item in f.items.items()), triage,
                         f.obx.code, f.obx.value, frozenset(f.obx.skip_value_types),
                         f.obx.unknown_codes, frozenset(f.values.yes), frozenset(f.values.no))


class ConsentSection(SiteModel):
    """[consent] of the ORM mapping, as written."""

    required: StrictBool
    source: Literal["obx", "con"]  # an OBX answer, or a CON segment
    codes: _SomeCodes
    code: position(segment="OBX")
    answer: position(segment="OBX")
    answered_at: position(segment="OBX")
    yes: _SomeCodes
    con_status: position(segment="CON")
    con_granted: _SomeCodes
    con_at: position(segment="CON")

    def mapping(self) -> ConsentMapping:
        return ConsentMapping(**dict(self))


# --- reading an order -----------------------------------------------------------------------

def answers_from_order(msg: ParsedMessage, q: Questionnaire,
                       skip=lambda n: False) -> tuple[Answer, ...]:
    """The questionnaire answers of an order, in the questionnaire's item order.

    Every OBX is read but images (value type in `skip_value_types`) and those `skip(n)` is true
    for. An OBX whose code is no item is ignored (or refused, ERR 103 at `OBX^n^3`, when the file
    says `unknown_codes = "refuse"`). Raises `Hl7Error` (AE) at `OBX^n^5`: 101 for an empty
    answer, 102 for several answers to a one-answer item, an item answered twice or a value that
    is not a number, 103 for an answer that is not allowed (not in the list, out of range, too
    long).
    """
    found: dict[str, tuple[Item, list[str]]] = {}
    for n in range(1, msg.segment_ids().count("OBX") + 1):
        value_type = msg.value(q.value_type.at(occurrence=n)).strip().upper()
        if value_type in q.skip_value_types or skip(n):
            continue
        code = msg.value(q.code.at(occurrence=n)).strip()
        item = q.item_for(code)
        where = q.value.at(occurrence=n).erl()
        if item is None:
            if q.unknown_codes == "refuse" and code:
                raise Hl7Error("observation code is not a question of the questionnaire",
                               hl7_code=103, location=f"OBX^{n}^3",
                               hint="see mappings/questionnaire.toml for the codes")
            continue
        raw = [v.strip() for v in msg.repetitions(q.value.at(occurrence=n))]
        raw = [v for v in raw if v]
        if item.type == "text":
            raw = ["\n".join(raw)] if raw else []
        if not raw:
            raise Hl7Error(f"answer to '{item.id}' is empty", hl7_code=101, location=where)
        values = [_check_value(item, v, q, where) for v in raw]
        if item.id in found and not item.multiple:
            raise Hl7Error(f"'{item.id}' is answered twice", hl7_code=102, location=where,
                           hint="send one OBX per question")
        if not item.multiple and len(values) > 1:
            raise Hl7Error(f"'{item.id}' takes one answer", hl7_code=102, location=where)
        previous = found.setdefault(item.id, (item, []))[1]
        previous += [v for v in values if v not in previous]
    return tuple(_answer(*found[item.id]) for item in q.items if item.id in found)


def _check_value(item: Item, value: str, q: Questionnaire, where: str) -> str:
    """The answer as stored (answer code, number as sent, text); Hl7Error when not allowed.
    Values are never quoted in the error (ERR-7 carries no message content)."""
    if item.type == "boolean":
        upper = value.upper()
        if upper in q.yes:
            return "Y"
        if upper in q.no:
            return "N"
        raise Hl7Error(f"answer to '{item.id}' is not yes or no", hl7_code=103, location=where,
                       hint="use one of " + ", ".join(sorted(q.yes | q.no)))
    if item.type == "coded":
        upper = value.upper()
        if upper not in {c.code for c in item.choices}:
            raise Hl7Error(f"answer to '{item.id}' is not an allowed answer", hl7_code=103,
                           location=where,
                           hint="use one of " + ", ".join(c.code for c in item.choices))
        return upper
    if item.type == "number":
        if not _NUMBER.match(value):
            raise Hl7Error(f"answer to '{item.id}' is not a number", hl7_code=102,
                           location=where)
        number = float(value)
        if (item.minimum is not None and number < item.minimum) or (
                item.maximum is not None and number > item.maximum):
            raise Hl7Error(f"answer to '{item.id}' is out of range", hl7_code=103,
                           location=where,
                           hint=f"send a number from {item.minimum} to {item.maximum}"
                                + (f" ({item.unit})" if item.unit else ""))
        return value
    if len(value) > item.max_length:
        raise Hl7Error(f"answer to '{item.id}' is longer than {item.max_length} characters",
                       hl7_code=103, location=where)
    return value


def _answer(item: Item, values: list[str]) -> Answer:
    choices = {c.code: c for c in item.choices}
    picked = [choices[v] for v in values if v in choices]
    return Answer(item=item.id, values=tuple(values),
                  weight=sum(c.weight for c in picked),
                  red_flags=tuple(c.code for c in picked if c.red_flag),
                  label=(item.fr, item.en),
                  value_labels=tuple((c.code, c.fr, c.en) for c in picked))


def consent_from_order(msg: ParsedMessage, m: ConsentMapping) -> Consent | None:
    """The patient's consent, or None when the mapping does not require it and there is none.

    Raises `Hl7Error` 101 (AE) when consent is required and not given: at the consent OBX's
    field 5 when its answer is not yes, at the place the OBX or CON was expected when absent.
    """
    if m.source == "con":
        count = msg.segment_ids().count("CON")
        for n in range(1, count + 1):
            status = msg.value(m.con_status.at(occurrence=n)).strip().upper()
            if status in m.con_granted:
                return Consent("CON", _timestamp(msg.value(m.con_at.at(occurrence=n))))
        if not m.required:
            return None
        where = m.con_status.at(occurrence=max(count, 1))
        status = f"CON-{m.con_status.field}"
        raise Hl7Error(f"patient consent to the tele-expertise is missing: send a CON segment "
                       f"with {status} {m.con_granted[0]}", hl7_code=101, location=where.erl(),
                       hint=f"{status} " + " or ".join(m.con_granted) + " says the patient "
                            "agreed; ask for consent before ordering")
    count = msg.segment_ids().count("OBX")
    refused = None
    for n in range(1, count + 1):
        if not m.is_consent_obx(msg, n):
            continue
        answer = msg.value(m.answer.at(occurrence=n)).strip().upper()
        if answer in m.yes:
            return Consent("OBX", _timestamp(msg.value(m.answered_at.at(occurrence=n))))
        refused = refused or n
    if not m.required:
        return None
    send = (f"send an OBX with OBX-{m.code.field} {m.codes[0]} and OBX-{m.answer.field} "
            f"{m.yes[0]}")
    hint = (f"OBX-{m.code.field} " + " or ".join(m.codes) + f", OBX-{m.answer.field} "
            + " or ".join(m.yes) + ", once the patient has agreed to the tele-expertise")
    if refused:
        raise Hl7Error(f"patient consent to the tele-expertise is not given: {send}",
                       hl7_code=101, location=m.answer.at(occurrence=refused).erl(),
                       hint=hint)
    raise Hl7Error(f"patient consent to the tele-expertise is missing: {send}", hl7_code=101,
                   location=m.answer.at(occurrence=count + 1).erl(), hint=hint)


def _timestamp(value: str) -> str:
    value = value.strip()
    return value if is_timestamp(value) else ""
