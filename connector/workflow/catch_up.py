"""Catch-up on Orthanc's Changes Log, so a stable study is never missed.

The plugin's notification is best effort (the connector may be down when Orthanc sends it).
This step reads `/changes?since=<cursor>` from a cursor saved in the store, marks the cases
of every StableStudy it finds, then saves the new cursor: a restart resumes where it left.
Marking a case ready twice is harmless (READY + images_stable stays READY).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from ..domain.errors import NotFound
from ..store.schema import counters
from . import mark_ready
from ..bootstrap import Services

log = logging.getLogger("connector.catch_up")
CURSOR = "orthanc_changes_cursor"


def _cursor(services: Services) -> int:
    with services.engine.connect() as conn:
        return conn.execute(select(counters.c.value).where(counters.c.name == CURSOR)).scalar() or 0


def _save(services: Services, value: int) -> None:
    with services.engine.begin() as conn:
        if conn.execute(update(counters).where(counters.c.name == CURSOR)
                        .values(value=value)).rowcount == 0:
            conn.execute(counters.insert().values(name=CURSOR, value=value))


def run_once(services: Services, limit: int = 100) -> int:
    """Process every change since the cursor; returns how many StableStudy events were seen."""
    since, seen = _cursor(services), 0
    while True:
        changes, last, done = services.archive.changes(since, limit)
        for change in changes:
            if change.get("ChangeType") == "StableStudy":
                seen += 1
                try:
                    study_uid = services.archive.study_uid(change["ID"])
                except NotFound:
                    continue  # deleted since: nothing to mark
                mark_ready.handle(services, study_uid, actor="orthanc:changes")
        if last != since:
            _save(services, last)
            since = last
        if done or not changes:
            return seen
