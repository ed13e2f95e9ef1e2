from pathlib import Path

import pytest

from connector.domain.errors import ConfigError, DomainError
from connector.reports.conducts import Conduct, conduct, load_conducts

SHIPPED = Path(__file__).parents[3] / "mappings" / "conducts.toml"


def test_shipped_conducts_have_every_expected_code_in_both_languages():
    conducts = load_conducts(SHIPPED)
    for code in ("no_visit", "routine_visit", "urgent_visit", "biopsy", "more_images", "treatment"):
        assert conducts[code].fr and conducts[code].en
    assert conduct(conducts, "biopsy").label("fr") == "Exérèse ou biopsie recommandée"
    assert conduct(conducts, "biopsy").label("en") == "Excision or biopsy recommended"


def test_conduct_when_code_unknown_raises_domain_error_listing_valid_codes():
    conducts = load_conducts(SHIPPED)
    with pytest.raises(DomainError) as err:
        conduct(conducts, "amputate")
    assert err.value.where == "conduct"
    assert "amputate" in err.value.text
    assert "no_visit" in err.value.hint and "treatment" in err.value.hint


def test_conduct_label_when_language_unknown_raises_domain_error():
    with pytest.raises(DomainError) as err:
        Conduct("no_visit", "Pas de consultation", "No consultation").label("de")
    assert err.value.where == "lang"


@pytest.mark.parametrize("body, reason", [
    ('[no_visit]\nfr = "Pas de consultation"\n', "missing key en"),
    ('[no_visit]\nfr = "Pas de consultation"\nen = "  "\n', "at least 1 character"),
    ('[no_visit]\nfr = "a"\nen = "b"\nde = "c"\n', "unknown key de"),
    ('[No-Visit]\nfr = "a"\nen = "b"\n', "lower_snake_case"),
    ('no_visit = "a"\n', "must be a table"),
])
def test_load_conducts_when_entry_is_bad_names_file_and_code(tmp_path, body, reason):
    path = tmp_path / "conducts.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_conducts(path)
    assert str(path) in err.value.where
    assert "[" in err.value.where  # the code's table is named
    assert reason in err.value.text


@pytest.mark.parametrize("body", ["", "[no_visit\n"])
def test_load_conducts_when_file_empty_or_not_toml_names_file(tmp_path, body):
    path = tmp_path / "conducts.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_conducts(path)
    assert err.value.where == str(path)


def test_shipped_conducts_that_call_for_a_visit_say_with_which_urgency():
    conducts = load_conducts(SHIPPED)
    assert {c.code: c.follow_up for c in conducts.values() if c.follow_up} == {
        "routine_visit": "routine", "urgent_visit": "urgent", "biopsy": "routine"}


def test_conduct_with_an_unknown_follow_up_urgency_is_refused_naming_it(tmp_path):
    path = tmp_path / "conducts.toml"
    path.write_text('[urgent_visit]\nfr = "Urgent"\nen = "Urgent"\nfollow_up = "soon"\n')
    with pytest.raises(ConfigError) as err:
        load_conducts(path)
    assert "[urgent_visit.follow_up]" in err.value.problems[0].one_line()
