"""Recommended conduct codes (mappings/conducts.toml).

The code is what travels (API, HL7, the report digest); the label is what people read, in the
report's language. Codes live in a mapping file because a site may add or reword them.
A conduct that calls for an in-person visit or procedure says so with `follow_up` (its
urgency, `routine` or `urgent`): the report then asks the scheduling systems for it
(`workflow/request_follow_up.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, RootModel, StringConstraints

from connector.domain.errors import DomainError
from connector.mapfile import read_toml
from connector.domain.model import valid_conduct_code
from connector.validation import NonEmpty, SiteModel, load

_LANGS = ("fr", "en")


@dataclass(frozen=True)
class Conduct:
    code: str
    fr: str
    en: str
    follow_up: str = ""  # "", "routine" or "urgent"

    def label(self, lang: str) -> str:
        if lang not in _LANGS:
            raise DomainError(f"no conduct label in language {lang!r}", where="lang",
                              hint="use fr or en")
        return getattr(self, lang)


def _code(code: str) -> str:
    if not valid_conduct_code(code):
        raise ValueError("conduct code must be lower_snake_case")
    return code


_Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Labels(SiteModel):
    fr: _Label
    en: _Label
    follow_up: Literal["routine", "urgent"] | None = None


_File = RootModel[Annotated[dict[Annotated[str, AfterValidator(_code)], _Labels], NonEmpty]]


def load_conducts(path: str | Path) -> dict[str, Conduct]:
    """Read and check the conduct file; a bad file raises ConfigError naming file and code."""
    path = Path(path)
    data = load(_File, read_toml(path, "conduct codes"), str(path),
                hint="one [code] table per conduct, with non-empty fr and en labels and, "
                     "when it calls for a visit, follow_up = \"routine\" or \"urgent\"").root
    return {code: Conduct(code, labels.fr, labels.en, labels.follow_up or "")
            for code, labels in data.items()}


def conduct(conducts: dict[str, Conduct], code: str) -> Conduct:
    """The conduct for `code`; an unknown code is the caller's input error (DomainError)."""
    try:
        return conducts[code]
    except KeyError:
        raise DomainError(f"unknown conduct code {code!r}", where="conduct",
                          hint=f"use one of: {', '.join(sorted(conducts))}") from None
