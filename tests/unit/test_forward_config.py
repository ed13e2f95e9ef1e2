"""`[[dicom.forward]]`: the hospital PACS each case's study is sent to, as read from the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import load_config
from connector.domain.errors import ConfigError

PACS = """
[[dicom.forward]]
name = "pacs"
ae_title = "HOSPITALPACS"
host = "pacs.hospital.local"
port = 104
when = "ready"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "telederm.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> dict[str, str]:
    """Each problem's key (what `[...]` names in its `where`) -> its text."""
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text), {})
    return {p.where.rpartition(" [")[2].rstrip("]"): p.text for p in exc.value.problems}


def test_forward_tables_are_read_with_the_connector_ae_as_calling_ae_when_none_is_given(tmp_path):
    config = load_config(write(tmp_path, '[dicom]\nae_title = "TELEDERM"\n' + PACS + """
[[dicom.forward]]
name = "archive-2"
ae_title = "ARCHIVE2"
host = "10.0.0.9"
port = 11112
when = "answered"
calling_ae = "TD_FORWARD"
"""), {})
    ready, answered = config.dicom.forward
    assert (ready.name, ready.ae_title, ready.host, ready.port, ready.when, ready.calling_ae) == (
        "pacs", "HOSPITALPACS", "pacs.hospital.local", 104, "ready", "TELEDERM")
    assert (answered.when, answered.calling_ae) == ("answered", "TD_FORWARD")
    assert ready.line == "dicom:pacs"


def test_no_study_is_forwarded_when_the_file_has_no_forward_table(tmp_path):
    assert load_config(write(tmp_path, "[dicom]\n"), {}).dicom.forward == ()


@pytest.mark.parametrize("key, value, words", [
    ("when", '"later"', ["'ready' or 'answered'", "'later'"]),
    ("port", "0", ["between 1 and 65535"]),
    ("port", "70000", ["between 1 and 65535"]),
    ("port", '"one-o-four"', ["integer"]),
    ("ae_title", '"A_TITLE_LONGER_THAN_16"', ["AE title"]),
    ("calling_ae", '"back\\\\slash"', ["AE title"]),
    ("host", '" "', ["must not be empty"]),
    ("name", '"' + "n" * 41 + '"', ["at most 40"]),
])
def test_forward_table_is_refused_naming_the_key_when_a_value_is_bad(tmp_path, key, value,
                                                                     words):
    lines = [line for line in PACS.splitlines() if not line.startswith(f"{key} =")]
    found = problems(tmp_path, "\n".join(lines) + f"\n{key} = {value}\n")
    assert list(found) == [f"dicom.forward[0].{key}"]
    assert all(w in found[f"dicom.forward[0].{key}"] for w in words), found


def test_forward_table_is_refused_naming_each_missing_or_unknown_key(tmp_path):
    found = problems(tmp_path, '[[dicom.forward]]\nname = "pacs"\nport = 104\naet = "X"\n')
    assert sorted(found) == sorted(["dicom.forward[0].aet", "dicom.forward[0].ae_title",
                                    "dicom.forward[0].host", "dicom.forward[0].when"])


def test_forward_tables_are_refused_when_two_have_the_same_name(tmp_path):
    found = problems(tmp_path, PACS + PACS.replace("104", "105"))
    assert list(found) == ["dicom.forward"]
    assert "forward[1].name 'pacs' is already used" in found["dicom.forward"]
