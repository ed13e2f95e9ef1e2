"""HL7 errors as HL7 sees them: an ERR segment's code, location and severity plus the MSA-1 answer.

`Hl7Error` is a `ConnectorError`, so the same object renders as an ACK (`ack.py`), an HTTP
problem or a CLI line. `DeliveryError` is the sending side: it says whether the outbox may try
again on its own (`retryable`) or an operator must look.
"""

from __future__ import annotations

import re

from connector.domain.errors import ConnectorError

#: HL7 table 0357 (message error condition codes), v2.5: code -> ERR-3.2 text.
TABLE_0357 = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

# Errors that are not about the message's content: the sender may resend later (MSA-1 AR).
_CANNOT_ACCEPT = {"200", "201", "202", "203", "206", "207"}

_SLUGS = {
    "100": "hl7-segment-sequence",
    "101": "hl7-required-field-missing",
    "102": "hl7-data-type",
    "103": "hl7-table-value",
    "200": "hl7-unsupported-message-type",
    "201": "hl7-unsupported-event",
    "202": "hl7-unsupported-processing-id",
    "203": "hl7-unsupported-version",
    "204": "hl7-unknown-key",
    "205": "hl7-duplicate-key",
    "206": "hl7-record-locked",
    "207": "hl7-internal-error",
}

# ERL: segment id ^ segment sequence [^ field [^ repetition [^ component [^ subcomponent]]]].
_ERL = re.compile(r"[A-Z][A-Z0-9]{2}\^\d+(\^\d+){0,4}")


def is_erl(text: str) -> bool:
    """True for an ERR-2 error location (ERL) such as `PID^1^3`."""
    return bool(_ERL.fullmatch(text))


class Hl7Error(ConnectorError):
    """One ERR segment: `hl7_code` (table 0357), `location` (ERL such as `PID^1^3`), `severity`
    (E or W) and the MSA-1 code the whole message gets (`ack_code`: AE for content the sender must
    fix, AR for what we cannot take now or at all: unsupported type/event/version, store down).

    `text` becomes ERR-7 and must never contain patient data; `hint` becomes ERR-8.
    """

    http_status = 422

    def __init__(self, text: str, *, hl7_code: str | int, location: str = "",
                 severity: str = "E", ack_code: str | None = None, hint: str = ""):
        hl7_code = str(hl7_code)
        if not hl7_code.isdigit():
            raise ValueError(f"HL7 error code must be numeric (table 0357), got {hl7_code!r}")
        if location and not is_erl(location):
            raise ValueError(f"error location must be an ERL such as PID^1^3, got {location!r}")
        if severity not in ("E", "W", "I"):
            raise ValueError(f"severity must be E, W or I, got {severity!r}")
        if ack_code is None:
            ack_code = "AR" if hl7_code in _CANNOT_ACCEPT else "AE"
        if ack_code not in ("AE", "AR"):
            raise ValueError(f"ack code of an error must be AE or AR, got {ack_code!r}")
        super().__init__(text, where=location, hint=hint, code=_SLUGS.get(hl7_code, "hl7-error"))
        self.hl7_code = hl7_code
        self.severity = severity
        self.ack_code = ack_code

    @property
    def location(self) -> str:
        return self.where

    @property
    def label(self) -> str:
        """ERR-3.2: the table 0357 text for the code."""
        return TABLE_0357.get(self.hl7_code, "Application error")


class DeliveryError(ConnectorError):
    """A message we sent was not accepted. `retryable` is True when trying again later may work
    (AR, timeout, refused connection, ACK for another message) and False for AE (fix the data).
    `ack` holds the peer's answer when there was one."""

    http_status = 502

    def __init__(self, text: str, *, retryable: bool, ack=None, code: str = "hl7-delivery-failed"):
        super().__init__(text, code=code,
                         hint="retry later" if retryable else "an operator must check the message")
        self.retryable = retryable
        self.ack = ack
