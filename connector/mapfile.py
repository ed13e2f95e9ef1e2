"""Reading a mapping file: one place that turns an unreadable TOML file into a ConfigError."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .domain.errors import ConfigError


def read_toml(path: str | Path, what: str) -> dict:
    """Parse `path`; a missing, non-UTF-8 or invalid file raises ConfigError naming it."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {what}: {exc}", where=str(path),
                          hint="fix the file") from None
