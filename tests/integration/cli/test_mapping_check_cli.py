"""Mappings are checked at start-up: `telederm config check` and `telederm serve` load every
mappings/hl7/*.toml and the questionnaire, and a broken one stops them with one line naming the
file, the key and what is wrong (exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from connector.config import default_mappings_dir
from tests.support.cli import one_error_line, telederm


def site(tmp_path: Path, edit=None) -> Path:
    """A config using a copy of the shipped mappings, `edit(mappings_folder)` applied."""
    mappings = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), mappings)
    if edit is not None:
        edit(mappings)
    config = tmp_path / "telederm.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\nmappings_dir = "{mappings}"\n',
                      encoding="utf-8")
    return config


def replace_in(relative: str, old: str, new: str):
    def edit(mappings: Path) -> None:
        path = mappings / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, old
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return edit


def test_config_check_lists_the_hl7_mappings_and_the_questionnaire(tmp_path):
    result = telederm("config", "check", "--config", site(tmp_path))
    assert result.returncode == 0, result.stderr
    hl7_line = next(line for line in result.stdout.splitlines() if line.startswith("hl7 ok:"))
    assert "orm_o01.toml" in hl7_line and "questionnaire=10 items" in hl7_line
    assert "consent=obx" in hl7_line and "TEST MODE" not in hl7_line


def test_config_check_says_when_the_site_runs_in_test_mode(tmp_path):
    config = site(tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + "[hl7]\ntest_mode = true\n",
                      encoding="utf-8")
    result = telederm("config", "check", "--config", config)
    assert result.returncode == 0, result.stderr
    assert "TEST MODE (test/demo INS accepted)" in result.stdout


@pytest.mark.parametrize("edit,file,key", [
    (replace_in("hl7/orm_o01.toml", 'qualified_patient_id = "ins"           #',
                'qualified_patient_id = "nir"           #'), "orm_o01.toml",
     "[identity.qualified_patient_id]"),
    (replace_in("hl7/orm_o01.toml", 'source = "obx"', 'source = "paper"'),
     "orm_o01.toml", "[consent.source]"),
    (replace_in("questionnaire.toml", "HIGH = 40", "HIGH = 4000"),
     "questionnaire.toml", "[triage.levels]"),
    (replace_in("questionnaire.toml", 'type = "boolean"', 'type = "yesno"'),
     "questionnaire.toml", "[items.personal_history.type]"),
])
def test_broken_mapping_stops_config_check_with_one_line_naming_file_and_key(tmp_path, edit,
                                                                              file, key):
    line = one_error_line(telederm("config", "check", "--config", site(tmp_path, edit)), 2)
    assert file in line and key in line, line


def test_config_check_names_every_broken_mapping_file_one_line_each(tmp_path):
    def edit(mappings: Path) -> None:
        replace_in("hl7/orm_o01.toml", 'source = "obx"', 'source = "paper"')(mappings)
        replace_in("questionnaire.toml", 'type = "boolean"', 'type = "yesno"')(mappings)
    result = telederm("config", "check", "--config", site(tmp_path, edit))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("telederm: ") for line in lines), lines
    assert "orm_o01.toml [consent.source]" in lines[0]
    assert "questionnaire.toml [items.personal_history.type]" in lines[1]


def test_an_hl7_mapping_file_nothing_reads_is_refused(tmp_path):
    def add(mappings: Path) -> None:
        (mappings / "hl7" / "orm_o01_old.toml").write_text("[positions]\n", encoding="utf-8")
    line = one_error_line(telederm("config", "check", "--config", site(tmp_path, add)), 2)
    assert "unknown HL7 mapping file orm_o01_old.toml" in line


def test_serve_refuses_to_start_on_a_broken_questionnaire(tmp_path):
    edit = replace_in("questionnaire.toml", 'label = { fr = "Symptômes", en = "Symptoms" }',
                      'label = { fr = "Symptômes" }')
    line = one_error_line(telederm("serve", "--config", site(tmp_path, edit)), 2)
    assert "questionnaire.toml [items.symptoms.label.en]" in line, line
