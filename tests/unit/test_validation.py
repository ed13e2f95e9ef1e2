"""The renderer from a pydantic ValidationError to ConfigError: every problem at once, each
naming the file, the key (or the row) and what was expected."""

from __future__ import annotations

import pytest
from pydantic import StrictInt, field_validator

from connector.domain.errors import ConfigError
from connector.validation import Problems, SiteModel, load


class Inner(SiteModel):
    count: StrictInt
    codes: tuple[str, ...] = ()

    @field_validator("codes")
    @classmethod
    def _some(cls, value):
        if not value:
            raise ValueError("must be a non-empty list of codes")
        return value


class Outer(SiteModel):
    inner: Inner
    name: str


def test_load_names_every_bad_key_at_once_when_three_are_wrong():
    with pytest.raises(ConfigError) as exc:
        load(Outer, {"inner": {"count": "3", "codes": [], "typo": 1}, "name": "x"}, "site.toml")
    wheres = [p.where for p in exc.value.problems]
    assert wheres == ["site.toml [inner.count]", "site.toml [inner.codes]",
                      "site.toml [inner.typo]"]
    lines = exc.value.one_line().splitlines()
    assert len(lines) == 3
    assert "'3'" in lines[0] and "integer" in lines[0]  # the value and what is expected
    assert "must be a non-empty list of codes" in lines[1]
    assert "unknown key typo" in lines[2]


def test_load_raises_the_problem_itself_when_there_is_one():
    with pytest.raises(ConfigError) as exc:
        load(Outer, {"inner": {"count": 1}}, "site.toml")
    assert exc.value.where == "site.toml [name]" and exc.value.text == "missing key name"
    assert exc.value.problems == (exc.value,)


def test_problems_put_the_key_in_the_text_when_the_where_names_a_row():
    problems = Problems("sites.csv")
    problems.validate(Inner, {"count": 1.5}, where="sites.csv:4", keyed=False)
    problems.add("listed twice", where="sites.csv:7")
    with pytest.raises(ConfigError) as exc:
        problems.raise_any()
    first, second = exc.value.problems
    assert first.where == "sites.csv:4" and first.text.startswith("count: ")
    assert second.where == "sites.csv:7"


def test_load_returns_the_model_when_the_file_is_valid():
    assert load(Outer, {"inner": {"count": 2}, "name": "x"}, "site.toml").inner.count == 2
