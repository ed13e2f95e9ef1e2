"""One error shape for the whole connector, rendered as HL7 ERR, HTTP problem+json or a CLI line.

`code` is a stable slug, `where` says which field or input is at fault (an HL7 location such as
`PID^1^3`, a form field, a file), `text` says what is wrong without patient data, and `hint`
says what the user should do.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base error; subclasses only set the default `code` and HTTP status."""

    code = "connector-error"
    http_status = 400
    retryable = True  # whether doing the same thing again later may succeed (the outbox asks)

    def __init__(self, text: str, *, where: str = "", hint: str = "", code: str | None = None):
        super().__init__(text)
        self.text = text
        self.where = where
        self.hint = hint
        if code:
            self.code = code

    def one_line(self) -> str:
        where = f" ({self.where})" if self.where else ""
        hint = f": {self.hint}" if self.hint else ""
        return f"{self.text}{where}{hint}"


class DomainError(ConnectorError):
    code = "invalid-value"
    http_status = 422
    retryable = False


class StateConflict(DomainError):
    """An action that the case's current state does not allow."""

    code = "state-conflict"
    http_status = 409


class NotFound(ConnectorError):
    code = "not-found"
    http_status = 404
    retryable = False


class ImageError(ConnectorError):
    code = "bad-image"
    http_status = 422


class ConfigError(ConnectorError):
    code = "bad-config"
    http_status = 500


class StoreUnavailable(ConnectorError):
    code = "store-unavailable"
    http_status = 503
