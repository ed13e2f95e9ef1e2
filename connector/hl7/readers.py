"""Small readers shared by the inbound mappers (orders and identity, ADT, reports): positions
taken from a mapping file, assigning authorities, and the checks a mapping file gets when it is
loaded. Composite parts are read with `ParsedMessage.part`."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, PlainValidator

from connector.validation import NonEmpty

from .parse import Location, ParsedMessage


def parse_position(raw, *, whole: bool = False, segment: str = "") -> Location:
    """A mapping file's `PID-3.1`; ValueError saying what is expected."""
    if not isinstance(raw, str):
        raise ValueError("must be a position like PID-3.1")
    loc = Location.parse(raw.strip())
    if not loc.field:
        raise ValueError(f"{raw!r} names a segment, not a field")
    if whole and loc.component:
        raise ValueError(f"{raw!r} must name a whole field (MRG-1), not a component")
    if segment and loc.segment != segment:
        raise ValueError(f"{raw!r} must be an {segment} position")
    return loc


def position(*, whole: bool = False, segment: str = ""):
    """The model type of one position in a mapping file."""
    return Annotated[Location, PlainValidator(
        lambda raw: parse_position(raw, whole=whole, segment=segment))]


def positions(*, whole: bool = False, segment: str = ""):
    """The model type of a non-empty list of positions, tried in order."""
    return Annotated[tuple[position(whole=whole, segment=segment), ...], NonEmpty]


def _codes(raw: tuple[str, ...]) -> tuple[str, ...]:
    if not all(c.strip() for c in raw):
        raise ValueError("must be a list of non-empty codes")
    return tuple(c.strip().upper() for c in raw)


# A list of codes as the mappers compare them (stripped, upper case).
Codes = Annotated[tuple[str, ...], AfterValidator(_codes)]


def authority_of(msg: ParsedMessage, loc: Location, component: int) -> str:
    """An assigning authority (HD inside a composite): the universal id (OID) if given, else the
    namespace id: one rule for every mapper, so identifiers compare equal."""
    return msg.part(loc, component, 2) or msg.part(loc, component, 1)


def first_valued(msg: ParsedMessage, locs: tuple[Location, ...]) -> tuple[Location, str]:
    """(position, value) of the first position with a value, or (first position, "")."""
    for loc in locs:
        value = msg.value(loc).strip()
        if value:
            return loc, value
    return locs[0], ""


def where_missing(msg: ParsedMessage, locs: tuple[Location, ...]) -> Location:
    """Where to report a value none of `locs` holds: the first position whose segment the
    message has (an MDM is told about TXA, not OBR), else the first one."""
    present = set(msg.segment_ids())
    return next((loc for loc in locs if loc.segment in present), locs[0])
