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


class NotPermitted(ConnectorError):
    """An act the caller is authenticated for but may not do as it asks (e.g. sign as another
    practitioner than its token or login is bound to)."""

    code = "forbidden"
    http_status = 403
    retryable = False


class ImageError(ConnectorError):
    code = "bad-image"
    http_status = 422


class ConfigError(ConnectorError):
    """A bad config or mapping file. A file with several problems raises one ConfigError whose
    `problems` holds one ConfigError per problem (each with its own `where`), so the site sees
    all of them at once and a CLI prints one line each; a single problem is its own list."""

    code = "bad-config"
    http_status = 500

    def __init__(self, text: str = "", *, where: str = "", hint: str = "",
                 code: str | None = None, problems: tuple["ConfigError", ...] = ()):
        if problems:
            text = "\n".join(p.one_line() for p in problems)
        super().__init__(text, where=where, hint=hint, code=code)
        self.problems: tuple[ConfigError, ...] = tuple(problems) or (self,)

    def one_line(self) -> str:
        """One line per problem."""
        if len(self.problems) > 1:
            return self.text
        return super().one_line()


class StoreUnavailable(ConnectorError):
    code = "store-unavailable"
    http_status = 503
