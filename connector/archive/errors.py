"""Archive errors, split by what the caller should do next.

The outbox retries `ArchiveUnavailable` (Orthanc down, starting, too slow, or refusing our
credentials until the configuration is fixed: no work is lost by waiting) and dead-letters
`ArchiveRejected` (Orthanc refused the content itself: retrying the same bytes cannot help).
"""

from __future__ import annotations

from connector.domain.errors import ConnectorError


class ArchiveError(ConnectorError):
    """Anything that went wrong with the Orthanc archive (managed process or remote server)."""

    code = "archive-error"
    http_status = 502


class ArchiveUnavailable(ArchiveError):
    """Orthanc could not be reached, did not answer in time, or refused our credentials."""

    code = "archive-unavailable"
    http_status = 503


class ArchiveRejected(ArchiveError):
    """Orthanc answered but refused the content (e.g. not a DICOM file); do not retry."""

    code = "archive-rejected"
    retryable = False
    http_status = 422
