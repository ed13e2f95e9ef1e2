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

from connector.domain.errors import ConfigError, DomainError
from connector.domain.model import (TRIAGE_LEVELS, Answer, Consent, Priority, TriagePolicy)
from connector.mapfile import read_toml

from .errors import Hl7Error
from .parse import Location, ParsedMessage, is_timestamp

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
    code: Location = Location("OBX", field=3, component=1)
    value: Location = Location("OBX", field=5)
    value_type: Location = Location("OBX", field=2)
    skip_value_types: frozenset[str] = frozenset({"ED"})
    unknown_codes: str = "ignore"  # ignore | refuse
    yes: frozenset[str] = frozenset({"Y"})
    no: frozenset[str] = frozenset({"N"})

    def item_for(self, code: str) -> Item | None:
        return self._by_code.get(code.upper())

    @functools.cached_property
    def _by_code(self) -> dict[str, Item]:
        return {code: item for item in self.items for code in item.codes}


@dataclass(frozen=True)
class ConsentMapping:
    """[consent] of the ORM mapping: where the patient's consent is read and what counts."""

    required: bool = True
    source: str = "obx"              # obx | con
    codes: tuple[str, ...] = ("CONSENT",)
    code: Location = Location("OBX", field=3, component=1)
    answer: Location = Location("OBX", field=5, component=1)
    answered_at: Location = Location("OBX", field=14, component=1)
    yes: tuple[str, ...] = ("Y",)
    con_status: Location = Location("CON", field=11, component=1)
    con_granted: tuple[str, ...] = ("A",)
    con_at: Location = Location("CON", field=13, component=1)

    def is_consent_obx(self, msg: ParsedMessage, n: int) -> bool:
        return (self.source == "obx"
                and msg.value(self.code.at(occurrence=n)).strip().upper() in self.codes)


# --- loading -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def load_questionnaire(path: Path = QUESTIONNAIRE_FILE) -> Questionnaire:
    """Read and check the questionnaire file once; a malformed one raises `ConfigError`
    naming the file and the key at fault."""
    path = Path(path)

    def fail(key: str, what: str) -> ConfigError:
        return ConfigError(what, where=f"{path} [{key}]",
                           hint="fix the questionnaire file; see the comments at its top")

    data = read_toml(path, "questionnaire")
    unknown = sorted(set(data) - {"obx", "values", "items", "triage"})
    if unknown:
        raise fail(unknown[0], "unknown key")
    obx = data.get("obx", {})
    if not isinstance(obx, dict):
        raise fail("obx", "must be a table")
    default = Questionnaire((), TriagePolicy())
    try:
        code = Location.parse(obx.get("code", str(default.code)))
        value = Location.parse(obx.get("value", str(default.value)))
    except (TypeError, ValueError):
        raise fail("obx", "code and value must be positions like OBX-3.1 and OBX-5") from None
    if code.segment != "OBX" or value.segment != "OBX" or value.component:
        raise fail("obx", "code must be an OBX position and value a whole OBX field (OBX-5)")
    skip = _strings(obx, "skip_value_types", ["ED"], fail, "obx")
    unknown_codes = obx.get("unknown_codes", "ignore")
    if unknown_codes not in ("ignore", "refuse"):
        raise fail("obx.unknown_codes", 'must be "ignore" or "refuse"')
    values = data.get("values", {})
    if not isinstance(values, dict):
        raise fail("values", "must be a table")
    yes = _strings(values, "yes", ["Y"], fail, "values")
    no = _strings(values, "no", ["N"], fail, "values")
    if set(yes) & set(no):
        raise fail("values", "a code cannot mean both yes and no")
    items = data.get("items")
    if not isinstance(items, dict) or not items:
        raise fail("items", "must hold at least one [items.<id>] table")
    parsed = tuple(_item(key, raw, fail) for key, raw in items.items())
    seen: dict[str, str] = {}
    for item in parsed:
        for c in item.codes:
            if c in seen:
                raise fail(f"items.{item.id}.codes", f"code also used by item {seen[c]}")
            seen[c] = item.id
    return Questionnaire(parsed, _triage(data.get("triage"), fail), code, value,
                         skip_value_types=frozenset(skip), unknown_codes=unknown_codes,
                         yes=frozenset(yes), no=frozenset(no))


def _item(key: str, raw, fail) -> Item:
    where = f"items.{key}"
    if not _ID.match(key):
        raise fail(where, "item ids are lowercase letters, digits and _ (at most 40)")
    if not isinstance(raw, dict):
        raise fail(where, "must be a table")
    allowed = {"codes", "type", "label", "multiple", "answers", "min", "max", "unit",
               "max_length"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise fail(f"{where}.{unknown[0]}", "unknown key")
    codes = _strings(raw, "codes", None, fail, where)
    kind = raw.get("type")
    if kind not in TYPES:
        raise fail(f"{where}.type", "must be one of " + ", ".join(TYPES))
    fr, en = _labels(raw.get("label"), fail, f"{where}.label")
    multiple = raw.get("multiple", False)
    if not isinstance(multiple, bool):
        raise fail(f"{where}.multiple", "must be true or false")
    answers = raw.get("answers")
    if kind in ("coded", "boolean"):
        if not isinstance(answers, dict) or not answers:
            raise fail(f"{where}.answers", "a coded or boolean item needs its answers")
        choices = tuple(_choice(code, spec, fail, f"{where}.answers.{code}")
                        for code, spec in answers.items())
        if kind == "boolean" and sorted(c.code for c in choices) != ["N", "Y"]:
            raise fail(f"{where}.answers", "a boolean item's answers are exactly Y and N")
        if kind == "boolean" and multiple:
            raise fail(f"{where}.multiple", "a boolean item takes one answer")
        if any(k in raw for k in ("min", "max", "unit", "max_length")):
            raise fail(where, "min, max, unit and max_length are for number and text items")
        return Item(key, frozenset(codes), kind, fr, en, multiple, choices)
    if answers is not None:
        raise fail(f"{where}.answers", "only coded and boolean items list answers")
    if kind == "number":
        bounds = []
        for bound in ("min", "max"):
            value = raw.get(bound)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise fail(f"{where}.{bound}", "must be a number")
            bounds.append(value)
        if None not in bounds and bounds[0] > bounds[1]:
            raise fail(f"{where}.min", "is above max")
        unit = raw.get("unit", "")
        if not isinstance(unit, str):
            raise fail(f"{where}.unit", "must be a text")
        return Item(key, frozenset(codes), kind, fr, en, multiple, (), bounds[0], bounds[1],
                    unit)
    length = raw.get("max_length", 500)
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 10000:
        raise fail(f"{where}.max_length", "must be a whole number from 1 to 10000")
    if any(k in raw for k in ("min", "max", "unit")):
        raise fail(where, "min, max and unit are for number items")
    return Item(key, frozenset(codes), kind, fr, en, multiple, max_length=length)


def _choice(code: str, spec, fail, where: str) -> Choice:
    if not code.strip() or code != code.strip():
        raise fail(where, "answer codes are non-empty, without spaces around")
    if not isinstance(spec, dict):
        raise fail(where, "must be a table like { fr = \"...\", en = \"...\" }")
    unknown = sorted(set(spec) - {"fr", "en", "weight", "red_flag"})
    if unknown:
        raise fail(f"{where}.{unknown[0]}", "unknown key")
    fr, en = _labels(spec, fail, where)
    weight = spec.get("weight", 0)
    if isinstance(weight, bool) or not isinstance(weight, int) or not -1000 <= weight <= 1000:
        raise fail(f"{where}.weight", "must be a whole number from -1000 to 1000")
    red_flag = spec.get("red_flag", False)
    if not isinstance(red_flag, bool):
        raise fail(f"{where}.red_flag", "must be true or false")
    return Choice(code.upper(), fr, en, weight, red_flag)


def _labels(raw, fail, where: str) -> tuple[str, str]:
    if not isinstance(raw, dict):
        raise fail(where, "needs a French and an English label: { fr = \"...\", en = \"...\" }")
    labels = []
    for language in ("fr", "en"):
        text = raw.get(language)
        if not isinstance(text, str) or not text.strip() or len(text) > 200:
            raise fail(f"{where}.{language}", "must be a label of 1 to 200 characters")
        labels.append(text.strip())
    return labels[0], labels[1]


def _strings(section: dict, key: str, default, fail, prefix: str) -> list[str]:
    raw = section.get(key, default)
    if not isinstance(raw, list) or not raw or not all(
            isinstance(c, str) and c.strip() for c in raw):
        raise fail(f"{prefix}.{key}", "must be a non-empty list of codes")
    return [c.strip().upper() for c in raw]


def _triage(raw, fail) -> TriagePolicy:
    if raw is None:
        return TriagePolicy()
    if not isinstance(raw, dict) or sorted(set(raw) - {"priority", "levels"}):
        raise fail("triage", "holds only [triage.priority] and [triage.levels]")
    points = raw.get("priority", {})
    if not isinstance(points, dict) or set(points) != {p.value for p in Priority} or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in points.values()):
        raise fail("triage.priority", "must give whole points for stat, urgent and routine")
    levels = raw.get("levels", {})
    if not isinstance(levels, dict) or not levels or not all(
            k in TRIAGE_LEVELS and isinstance(v, int) and not isinstance(v, bool)
            for k, v in levels.items()):
        raise fail("triage.levels", "must map levels among " + ", ".join(TRIAGE_LEVELS)
                   + " to whole minimum scores")
    try:
        return TriagePolicy(tuple((Priority(k), v) for k, v in points.items()),
                            tuple(levels.items()))
    except DomainError as exc:
        raise fail(exc.where, exc.text) from None


def load_consent(data: dict, fail) -> ConsentMapping:
    """The [consent] section of the ORM mapping (defaults for what it leaves out)."""
    section = data.get("consent", {})
    default = ConsentMapping()
    if not isinstance(section, dict):
        raise fail("consent", "must be a table")
    unknown = sorted(set(section) - {"required", "source", "codes", "code", "answer",
                                     "answered_at", "yes", "con_status", "con_granted",
                                     "con_at"})
    if unknown:
        raise fail(f"consent.{unknown[0]}", "unknown key")
    required = section.get("required", default.required)
    if not isinstance(required, bool):
        raise fail("consent.required", "must be true or false")
    source = section.get("source", default.source)
    if source not in ("obx", "con"):
        raise fail("consent.source", 'must be "obx" (an OBX answer) or "con" (a CON segment)')

    def position(key: str, segment: str) -> Location:
        try:
            loc = Location.parse(section[key]) if key in section else getattr(default, key)
        except (TypeError, ValueError):
            raise fail(f"consent.{key}", "must be a position like OBX-5.1") from None
        if loc.segment != segment or not loc.field:
            raise fail(f"consent.{key}", f"must be a {segment} field position")
        return loc

    def codes(key: str) -> tuple[str, ...]:
        return tuple(_strings(section, key, list(getattr(default, key)), fail, "consent"))

    return ConsentMapping(required, source, codes("codes"), position("code", "OBX"),
                          position("answer", "OBX"), position("answered_at", "OBX"),
                          codes("yes"), position("con_status", "CON"), codes("con_granted"),
                          position("con_at", "CON"))


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
