"""The pages' language and texts: the browser's choice among fr/en, else the site's; both
languages carry every label."""

from __future__ import annotations

import pytest

from connector.entrypoints.ui import i18n
from connector.domain.states import CaseStatus
from connector.domain.model import Priority


@pytest.mark.parametrize("header, default, expected", [
    ("", "fr", "fr"),
    ("", "en", "en"),
    ("en-GB,en;q=0.9", "fr", "en"),
    ("de-DE,de;q=0.9,fr;q=0.5,en;q=0.4", "en", "fr"),
    ("fr;q=0.3, en;q=0.8", "fr", "en"),
    ("de, es", "fr", "fr"),
    ("en;q=0", "fr", "fr"),
    ("en;q=bad", "fr", "fr"),
    ("*", "en", "en"),
])
def test_choose_takes_the_best_language_of_ours_else_the_default(header, default, expected):
    assert i18n.choose(header, default) == expected


def test_labels_have_the_same_keys_in_both_languages():
    labels = i18n.labels()
    assert set(labels) == {"fr", "en"}
    assert i18n._keys(labels["fr"]) == i18n._keys(labels["en"])


def test_labels_name_every_case_status_and_priority():
    for lang in i18n.LANGUAGES:
        assert set(i18n.labels()[lang]["status"]) == {s.value for s in CaseStatus}
        assert set(i18n.labels()[lang]["priority"]) == {p.value for p in Priority}


def test_labels_refuse_a_file_where_a_language_lacks_a_key(tmp_path, monkeypatch):
    bad = tmp_path / "labels.toml"
    bad.write_text('[fr]\napp = "a"\nlogin = "b"\n[en]\napp = "a"\n', encoding="utf-8")
    monkeypatch.setattr(i18n, "LABELS_FILE", bad)
    i18n.labels.cache_clear()
    try:
        with pytest.raises(ValueError, match="login"):
            i18n.labels()
    finally:
        i18n.labels.cache_clear()
