"""The pages' texts (`labels.toml`, beside this module) and the language of each page.

The language is the browser's first acceptable choice among ours (Accept-Language, by q-value),
else `[reports] language`: a dermatologist reading in English on a French site gets English
pages, while the reports they sign stay in the site's language.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

LANGUAGES = ("fr", "en")
LABELS_FILE = Path(__file__).with_name("labels.toml")


def _keys(table: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in table.items():
        out |= _keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return out


@functools.cache
def labels() -> dict[str, dict]:
    """Both languages' labels; a language missing a key the other has is an error here, so a
    page never shows a raw key."""
    data = tomllib.loads(LABELS_FILE.read_text(encoding="utf-8"))
    if set(data) != set(LANGUAGES):
        raise ValueError(f"{LABELS_FILE.name} must have the tables {LANGUAGES}, has {sorted(data)}")
    fr, en = _keys(data["fr"]), _keys(data["en"])
    if fr != en:
        raise ValueError(f"{LABELS_FILE.name}: keys in one language only: "
                         f"{sorted(fr ^ en)}")
    return data


def choose(accept_language: str, default: str) -> str:
    """The language of a page: the best of ours in the Accept-Language header, else `default`."""
    ranked = []
    for position, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = tag.strip().lower().split("-")[0]
        if language in LANGUAGES and quality > 0:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else default
