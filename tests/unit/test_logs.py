"""`[log]`: the connector's log lines as text or one JSON object a line, from the level asked."""

import json
import logging

import pytest

from connector.config import load_config
from connector.domain.errors import ConfigError
from connector.runtime.logs import configure


@pytest.fixture
def restored_root():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_format_writes_one_object_a_line_with_time_level_logger_and_traceback(
        restored_root, capsys):
    configure("INFO", "json")
    log = logging.getLogger("connector.test")
    log.debug("not shown")
    log.info("ORM^O01 %s from %s -> AA", "CTRL-1", "127.0.0.1")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert {k: first[k] for k in ("level", "logger", "message")} == {
        "level": "INFO", "logger": "connector.test", "message": "ORM^O01 CTRL-1 from 127.0.0.1 -> AA"}
    assert first["time"].endswith("+00:00") and "traceback" not in first
    assert second["level"] == "ERROR" and "ValueError: boom" in second["traceback"]


def test_text_format_is_the_default_and_an_unknown_format_is_refused_naming_the_key(
        tmp_path, restored_root, capsys):
    config = load_config(None, {})
    assert (config.log.level, config.log.format) == ("INFO", "text")
    configure(config.log.level, config.log.format)
    logging.getLogger("connector.test").warning("peer down")
    assert capsys.readouterr().err.rstrip().endswith(" WARNING connector.test: peer down")

    path = tmp_path / "telederm.toml"
    path.write_text('[log]\nformat = "xml"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(path, {})
    assert exc.value.where.endswith("[log.format]")
    env = load_config(None, {"TELEDERM_LOG_FORMAT": "json"})
    assert env.log.format == "json"
