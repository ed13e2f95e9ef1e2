"""Catch-up on Orthanc's Changes Log, so a stable study is never missed.

The plugin's notification is best effort (the connector may be down when Orthanc sends it).
The worker runs this periodically: it reads `/changes?since=<cursor>` from a cursor saved in
the store (`counters`), marks the cases of every StableStudy it finds (`mark_ready`), then
saves the new cursor: a restart resumes where it left. Marking a case ready twice is harmless
(READY + images_stable stays READY). With several processes on one store, one of them follows
the log at a time (the worker's lease LEASE).
"""

from __future__ import annotations

import logging

from ..bootstrap import Services
from ..domain.errors import NotFound
from ..workflow import mark_ready
from ..workflow.commands import MarkReady

log = logging.getLogger("connector.catch_up")
CURSOR = "orthanc_changes_cursor"
LEASE = "orthanc-changes"  # the lease of the process that follows the log (several processes)


def run_once(services: Services, limit: int = 100, *, owner: str | None = None,
             lease_seconds: float = 60.0) -> int:
    """Process every change since the cursor; returns how many StableStudy events were seen.

    With `owner`, the cursor belongs to the process holding the lease LEASE (store/leases.py):
    each cursor write renews it in the same transaction, and a pass whose lease another
    process has taken stops without writing (the new owner goes on from the saved cursor)."""
    with services.reading() as uow:
        since = uow.counters.read(CURSOR)
    seen = 0
    while True:
        changes, last, done = services.archive.changes(since, limit)
        for change in changes:
            if change.get("ChangeType") == "StableStudy":
                seen += 1
                try:
                    study_uid = services.archive.study_uid(change["ID"])
                except NotFound:
                    continue  # deleted since: nothing to mark
                with services.unit() as uow:
                    mark_ready.handle(MarkReady(study_uid, "orthanc:changes"), uow)
        if last != since:
            with services.unit() as uow:
                if owner is not None and not uow.leases.hold(LEASE, owner, uow.moment.utc,
                                                             lease_seconds):
                    log.info("Orthanc changes cursor taken over by another process")
                    return seen
                uow.counters.write(CURSOR, last)
            since = last
        if done or not changes:
            return seen
