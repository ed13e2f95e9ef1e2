from pathlib import Path

import pytest

from connector.domain.errors import ConfigError
from connector.reports.pdf import LABEL_KEYS, load_labels

SHIPPED = Path(__file__).parents[3] / "mappings" / "reports" / "labels.toml"


def test_shipped_labels_have_every_key_in_french_and_english():
    labels = load_labels(SHIPPED)
    assert set(labels) == {"fr", "en"}
    for lang in ("fr", "en"):
        assert set(labels[lang]) == set(LABEL_KEYS)
    assert labels["fr"]["title"] == "Avis de télé-expertise dermatologique"
    assert labels["en"]["title"] == "Dermatology tele-expertise opinion"


def _write(tmp_path, fr: dict, en: dict | None, extra: str = "") -> Path:
    def table(name, values):
        return f"[{name}]\n" + "".join(f'{k} = "{v}"\n' for k, v in values.items())

    text = table("fr", fr) + (table("en", en) if en is not None else "") + extra
    path = tmp_path / "labels.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_labels_when_english_lacks_a_key_names_file_language_and_key(tmp_path):
    full = {k: "x" for k in LABEL_KEYS}
    path = _write(tmp_path, full, {k: "x" for k in LABEL_KEYS if k != "conduct"})
    with pytest.raises(ConfigError) as err:
        load_labels(path)
    assert err.value.where == f"{path} [en.conduct]"
    assert "conduct" in err.value.text


def test_load_labels_when_a_language_is_missing_names_it(tmp_path):
    path = _write(tmp_path, {k: "x" for k in LABEL_KEYS}, None)
    with pytest.raises(ConfigError) as err:
        load_labels(path)
    assert err.value.where == f"{path} [en]"
    assert "missing key en" in err.value.text


def test_load_labels_when_a_label_is_unknown_refuses_it(tmp_path):
    full = {k: "x" for k in LABEL_KEYS}
    path = _write(tmp_path, {**full, "titel": "typo"}, full)
    with pytest.raises(ConfigError) as err:
        load_labels(path)
    assert err.value.where == f"{path} [fr.titel]"
    assert "titel" in err.value.text


def test_load_labels_when_a_language_is_unsupported_refuses_it(tmp_path):
    full = {k: "x" for k in LABEL_KEYS}
    path = _write(tmp_path, full, full, extra='[de]\ntitle = "x"\n')
    with pytest.raises(ConfigError) as err:
        load_labels(path)
    assert "de" in err.value.text



def test_load_labels_names_every_missing_empty_or_unknown_label_at_once(tmp_path):
    full = {k: "x" for k in LABEL_KEYS}
    path = _write(tmp_path, {**full, "title": " "}, {k: "x" for k in LABEL_KEYS if k != "page"},
                  extra='[de]\ntitle = "x"\n')
    with pytest.raises(ConfigError) as err:
        load_labels(path)
    assert [p.where for p in err.value.problems] == [
        f"{path} [fr.title]", f"{path} [en.page]", f"{path} [de]"]
