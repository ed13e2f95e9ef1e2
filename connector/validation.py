"""Site files (config, mappings) as typed pydantic models, and one renderer from a pydantic
ValidationError to the project's ConfigError.

A site fixing a file wants every problem at once, each naming where to look: a keyed file says
`<file> [section.key]`, a row file says its row and line (the caller passes that `where`, e.g.
`<file>: [[limit]] #2, line 40` or `<file>:3`) and the key goes into the text. Each problem says
what was found and what is expected.

Loaders collect with `Problems` (a file may be checked in several passes: models, then checks
across rows) and end with `Problems.raise_any()`.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from .domain.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

HINT = "fix the file; see the comments at its top"


class SiteModel(BaseModel):
    """Base of every model read from a site file: an unknown key is a typo to report, and a
    loaded file is not changed afterwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def key_path(loc: tuple[int | str, ...]) -> str:
    """`("order", "accession")` → `order.accession`; list indexes as `[0]`. A bad table name
    is named by itself (pydantic adds `[key]` after it)."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# pydantic's words for a wrong shape, in the words of a TOML file
_PLAIN = {"dict_type": "must be a table", "model_type": "must be a table",
          "list_type": "must be a list", "tuple_type": "must be a list"}


def _reason(error: dict) -> str:
    """What is wrong and what is expected, from one pydantic error."""
    kind = error["type"]
    name = error["loc"][-1] if error["loc"] else ""
    if kind == "missing":
        return f"missing key {name}"
    if kind == "extra_forbidden":
        return f"unknown key {name}"
    message = _PLAIN.get(kind, error["msg"])
    if kind == "value_error":  # our validators raise ValueError("must be ...")
        message = str(error["ctx"]["error"])
    if isinstance(error["input"], dict):  # a whole table: its key says where, not its text
        return message
    shown = _shown(error["input"])
    return message if shown in message else f"{message} (got {shown})"


def _some(value):
    if not value:
        raise ValueError("must not be empty")
    return value


# Marks a list or table that must hold something, checked once its entries are valid (so a bad
# entry is one problem, not two): `Annotated[tuple[str, ...], NonEmpty]`.
NonEmpty = AfterValidator(_some)


def render(exc: ValidationError, where: str, *, keyed: bool = True,
           hint: str = HINT) -> list[ConfigError]:
    """One ConfigError per error in `exc`. `keyed`: the key path goes into `where` as
    `<where> [a.b]`; otherwise (row files, whose `where` already names the row) into the text."""
    out = []
    for error in exc.errors():
        key = key_path(error["loc"])
        reason = _reason(error)
        if keyed:
            place = f"{where} [{key}]" if key else where
            out.append(ConfigError(reason, where=place, hint=hint))
        else:
            out.append(ConfigError(f"{key}: {reason}" if key else reason, where=where, hint=hint))
    return out


class Problems:
    """The problems found in one file so far."""

    def __init__(self, where: str, *, hint: str = HINT):
        self.where = where  # the file
        self.hint = hint
        self.found: list[ConfigError] = []

    def validate(self, model: type[M], data: Any, *, where: str = "",
                 keyed: bool = True) -> M | None:
        """`data` as `model`, or None with its problems recorded."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.found += render(exc, where or self.where, keyed=keyed, hint=self.hint)
            return None

    def run(self, load: Callable[..., T], *args, **kwargs) -> T | None:
        """`load(...)`, or None with its problems recorded: one bad file hides no other."""
        try:
            return load(*args, **kwargs)
        except ConfigError as exc:
            self.found += exc.problems
            return None

    def add(self, text: str, *, where: str = "", key: str = "", hint: str = "") -> None:
        place = where or self.where
        self.found.append(ConfigError(text, where=f"{place} [{key}]" if key else place,
                                      hint=hint or self.hint))

    def raise_any(self) -> None:
        """Raise the problems found: the one problem itself, or one ConfigError listing all."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise ConfigError(where=self.where, problems=tuple(self.found))


def load(model: type[M], data: Any, where: str, *, hint: str = HINT) -> M:
    """A whole keyed file as `model`; every problem in one ConfigError."""
    problems = Problems(where, hint=hint)
    result = problems.validate(model, data)
    problems.raise_any()
    return result  # type: ignore[return-value]
