"""The unit of work: one transaction over the store, the repositories a step writes through,
and the moment it runs at.

A step of the flow is `handle(command, uow)`: everything it changes (case state, image and
report rows, outbox effects, audit rows) goes through `uow`'s repositories and commits
together when the `with store.unit(...)` block ends, or not at all. Steps never see a
connection or SQL: the repositories are the store modules (`cases`, `images`, `reports`,
`charges`, `outbox`, `audit`, `inbox`, `counters`, `users`, `tokens`, `forwarded`,
`routing`, `identity`, `follow_ups`, `leases`) with this transaction bound as their first argument, so
`uow.cases.load(accession)` is `cases.load(conn, accession)`.
"""

from __future__ import annotations

import contextlib
import functools
from types import ModuleType
from typing import Any, Iterator

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from ..domain.errors import StoreUnavailable
from ..domain.moment import Moment
from . import (audit, cases, charges, counters, follow_ups, forwarded, identity, images, inbox,
               leases, outbox, queries, reports, routing, tokens, users)
from .db import WriterGate, engine_and_gate


class Repository:
    """A store module's public functions with a connection bound as their first argument."""

    def __init__(self, module: ModuleType, conn: Connection):
        self._module = module
        self._conn = conn

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        function = getattr(self._module, name)
        if not callable(function):
            return function
        bound = lambda *args, **kwargs: function(self._conn, *args, **kwargs)  # noqa: E731
        setattr(self, name, bound)  # found once per unit of work
        return bound


class UnitOfWork:
    """One transaction (or, from `Store.reading`, one read connection) and its moment.

    `services` is what the composition root gives the steps (configuration, mappings, the
    archive client): the store holds it for them and never looks inside."""

    def __init__(self, conn: Connection, moment: Moment | None, services: Any = None,
                 audit_line: str = ""):
        self._conn = conn
        self.moment = moment
        self.services = services
        self._audit_line = audit_line
        self.cases = Repository(cases, conn)
        self.images = Repository(images, conn)
        self.reports = Repository(reports, conn)
        self.charges = Repository(charges, conn)
        self.outbox = Repository(outbox, conn)
        self.audit = Repository(audit, conn)
        if audit_line:  # every audit row also goes to the ATNA repository's outbox line
            self.audit.append = functools.partial(audit.append, conn, forward_to=audit_line)
        self.inbox = Repository(inbox, conn)
        self.counters = Repository(counters, conn)
        self.forwarded = Repository(forwarded, conn)
        self.queries = Repository(queries, conn)
        self.users = Repository(users, conn)
        self.routing = Repository(routing, conn)
        self.tokens = Repository(tokens, conn)
        self.identity = Repository(identity, conn)
        self.follow_ups = Repository(follow_ups, conn)
        self.leases = Repository(leases, conn)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator["UnitOfWork"]:
        """A part of the transaction that is undone alone when its block raises."""
        with self._conn.begin_nested():
            yield self

    def at(self, moment: Moment) -> "UnitOfWork":
        """The same transaction at another moment (a stored message applied as of when it
        was received)."""
        return UnitOfWork(self._conn, moment, self.services, self._audit_line)


class Store:
    """The database as the connector uses it: units of work, reads, and (SQLite) the writer
    gate that lets a thread answering a peer go first. Built by the composition root only."""

    def __init__(self, engine: Engine, gate: WriterGate | None = None):
        self.engine = engine
        self.gate = gate
        # The outbox line every audit row is also queued on ([audit] syslog, set by the
        # composition root); empty: the trail stays in the database.
        self.audit_line = ""

    @classmethod
    def open(cls, url: str, audit_key: bytes, db_key: bytes | None = None) -> "Store":
        return cls(*engine_and_gate(url, audit_key, db_key))

    def close(self) -> None:
        """Close the pooled connections (the process is stopping)."""
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        """"sqlite" or "postgresql"."""
        return self.engine.dialect.name

    @contextlib.contextmanager
    def unit(self, moment: Moment, services: Any = None, *,
             urgent: bool = False) -> Iterator[UnitOfWork]:
        """A transaction committed when the block ends normally, rolled back when it raises.
        `urgent`: a peer waits for it (an ACK), it goes before background writers.
        The database being unreachable or locked is StoreUnavailable (callers retry later)."""
        with _unavailable_as_domain(), self.urgent() if urgent else contextlib.nullcontext():
            with self.engine.begin() as conn:
                yield UnitOfWork(conn, moment, services, self.audit_line)

    @contextlib.contextmanager
    def reading(self, services: Any = None) -> Iterator[UnitOfWork]:
        """A connection for reads only (no transaction is held open for writers); the
        database unreachable is StoreUnavailable, as for `unit`."""
        with _unavailable_as_domain(), self.engine.connect() as conn:
            yield UnitOfWork(conn, None, services)

    def urgent(self):
        """Mark this thread's transactions as answering a peer (SQLite; nothing elsewhere)."""
        return self.gate.urgent() if self.gate is not None else contextlib.nullcontext()

    def urgent_waiting(self) -> bool:
        return self.gate is not None and self.gate.urgent_waiting()

    def urgent_within(self, seconds: float) -> bool:
        return self.gate is not None and self.gate.urgent_within(seconds)


@contextlib.contextmanager
def _unavailable_as_domain() -> Iterator[None]:
    """SQLAlchemy's OperationalError (cannot connect, database locked, disk I/O) as the domain's
    StoreUnavailable, so that channels answer "retry later" without knowing SQLAlchemy."""
    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailable(f"the database is unavailable: {type(exc.orig).__name__}",
                               hint="retry later") from None
