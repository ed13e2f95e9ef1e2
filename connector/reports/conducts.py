"""Recommended conduct codes (mappings/conducts.toml).

The code is what travels (API, HL7, the report digest); the label is what people read, in the
report's language. Codes live in a mapping file because a site may add or reword them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connector.mapfile import read_toml
from connector.domain.errors import ConfigError, DomainError
from connector.domain.model import valid_conduct_code

_LANGS = ("fr", "en")


@dataclass(frozen=True)
class Conduct:
    code: str
    fr: str
    en: str

    def label(self, lang: str) -> str:
        if lang not in _LANGS:
            raise DomainError(f"no conduct label in language {lang!r}", where="lang",
                              hint="use fr or en")
        return getattr(self, lang)


def load_conducts(path: str | Path) -> dict[str, Conduct]:
    """Read and check the conduct file; a bad file raises ConfigError naming file and code."""
    path = Path(path)
    data = read_toml(path, "conduct codes")
    if not data:
        raise ConfigError("no conduct codes defined", where=str(path),
                          hint="add one [code] table with fr and en labels")
    conducts = {}
    for code, entry in data.items():
        where = f"{path} [{code}]"
        if not valid_conduct_code(code):
            raise ConfigError("conduct code must be lower_snake_case", where=where)
        if not isinstance(entry, dict):
            raise ConfigError("conduct must be a table with fr and en labels", where=where)
        unknown = sorted(set(entry) - set(_LANGS))
        if unknown:
            raise ConfigError(f"unknown key {', '.join(unknown)}", where=where,
                              hint="only fr and en are allowed")
        for lang in _LANGS:
            text = entry.get(lang)
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"missing or empty label {lang!r}", where=where,
                                  hint="give a non-empty fr and en label")
        conducts[code] = Conduct(code, entry["fr"].strip(), entry["en"].strip())
    return conducts


def conduct(conducts: dict[str, Conduct], code: str) -> Conduct:
    """The conduct for `code`; an unknown code is the caller's input error (DomainError)."""
    try:
        return conducts[code]
    except KeyError:
        raise DomainError(f"unknown conduct code {code!r}", where="conduct",
                          hint=f"use one of: {', '.join(sorted(conducts))}") from None
