"""The moment a unit of work runs at, in every form the flow writes it.

One instant, taken once per transaction by the composition root's clock and passed in (the
domain reads no clock): the store writes it as ISO 8601 UTC text with microseconds (which
sorts as text), HL7 TS and DICOM DA/TM as local `YYYYMMDDHHMMSS`, billing as a local date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

_STORED = "%Y-%m-%dT%H:%M:%S.%fZ"


def iso(moment: dt.datetime) -> str:
    """An aware datetime as the store writes it (UTC, microseconds, `Z`)."""
    return moment.astimezone(dt.timezone.utc).strftime(_STORED)


def hl7_dt(moment: dt.datetime) -> str:
    """YYYYMMDDHHMMSS in local time, as HL7 TS and DICOM DA+TM expect."""
    return moment.astimezone().strftime("%Y%m%d%H%M%S")


@dataclass(frozen=True)
class Moment:
    """An aware instant and its stored (`iso`), HL7/DICOM (`hl7`) and local-day forms."""

    utc: dt.datetime
    iso: str = field(init=False, repr=False)
    hl7: str = field(init=False, repr=False)

    def __post_init__(self):
        if self.utc.tzinfo is None:
            raise ValueError("a Moment needs an aware datetime (with its time zone)")
        object.__setattr__(self, "iso", iso(self.utc))
        object.__setattr__(self, "hl7", hl7_dt(self.utc))

    @classmethod
    def from_iso(cls, text: str) -> "Moment":
        """The moment of a timestamp as the store wrote it (`iso`)."""
        return cls(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))

    @property
    def day(self) -> str:
        """The local date, YYYYMMDD."""
        return self.hl7[:8]

    @property
    def local(self) -> dt.datetime:
        return self.utc.astimezone()
