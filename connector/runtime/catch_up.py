"""Catch-up on Orthanc's Changes Log, so a stable study is never missed.

The plugin's notification is best effort (the connector may be down when Orthanc sends it).
The worker runs this periodically: it reads `/changes?since=<cursor>` from a cursor saved in
the store (`counters`), marks the cases of every StableStudy it finds (`mark_ready`), then
saves the new cursor: a restart resumes where it left. Marking a case ready twice is harmless
(READY + images_stable stays READY).
"""

from __future__ import annotations

import logging

from ..bootstrap import Services
from ..domain.errors import NotFound
from ..workflow import mark_ready
from ..workflow.commands import MarkReady

log = logging.getLogger("connector.catch_up")
CURSOR = "orthanc_changes_cursor"


def run_once(services: Services, limit: int = 100) -> int:
    """Process every change since the cursor; returns how many StableStudy events were seen."""
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
                uow.counters.write(CURSOR, last)
            since = last
        if done or not changes:
            return seen
