"""The care network's assignment (`mappings/routing.toml`, `connector/routing.py`): a new case
gets a pool, a specialist and a deadline (`route`, called by `open_case`); a specialist takes a
case (`handle`) or hands it back (`release`). Every assignment is audited (`case.assigned`,
`case.taken`, `case.released`); a cancelled or declined case leaves the network (`withdraw`).

The specialist side is told through the outbox (`connector/hl7/assignment.py`): ORC-1 NW when
the case reaches a destination, XO when its assignee changes there, CA when it leaves it
(moved to another pool's destination, or withdrawn). A
specialist taking a case tells the requesters that take order status messages that the work
has started (SC/IP, `notify_status.in_progress`, once per case whether READY came first or not).

Deadline timers are rows in the store (`store/routing.py`), armed here in the transaction that
assigns: a reminder `reminder_before` the deadline (when that is still ahead), the escalation
`grace` after it (when the pool has a fallback), fired by the worker (`escalate_case`).
"""

from __future__ import annotations

import datetime as dt

from ..domain.errors import DomainError, StateConflict
from ..domain.model import Case
from ..domain.moment import Moment, hl7_dt, iso
from ..domain.states import AWAITING_ANSWER
from ..hl7.assignment import build_specialist_order
from ..routing import Absence, Pool, Routing
from ..store.routing import Assignment
from ..store.uow import UnitOfWork
from . import notify_status
from .commands import AssignCase, ReleaseCase
from .outbound import enqueue_hl7

WAITING = tuple(s.value for s in AWAITING_ANSWER)


def routing_of(uow: UnitOfWork) -> Routing:
    return uow.services.mappings.routing


def route(uow: UnitOfWork, case: Case, *, actor: str) -> Assignment:
    """Give the new case its pool (first matching rule), its specialist (present, fewest open
    cases) and its deadline; arm its timers and send it to the pool's specialist side."""
    routing, now = routing_of(uow), uow.moment
    pool = routing.pool_for(case.order)
    member = pick(uow, pool)
    due = now.utc + routing.delays[case.order.priority]
    uow.routing.assign(case.accession, pool=pool.id, assigned_to=member, due_at=iso(due),
                       now=now.iso)
    if routing.reminder_before is not None and due - routing.reminder_before > now.utc:
        uow.routing.arm(key=f"reminder:{case.accession}:0", accession=case.accession,
                        kind="reminder", due_at=iso(due - routing.reminder_before), now=now.iso)
    arm_escalation(uow, case.accession, pool, due, round_=0)
    uow.audit.append(at=now.iso, actor=actor, action="case.assigned", accession=case.accession,
                     detail={"pool": pool.id, "assigned_to": member, "due_at": iso(due)})
    got = uow.routing.assignment(case.accession)
    tell(uow, case, before=None, after=got)
    return got


def arm_escalation(uow: UnitOfWork, accession: str, pool: Pool, after: dt.datetime, *,
                   round_: int) -> None:
    """The escalation timer of `pool` (none when it has no fallback), `grace` after `after`."""
    if pool.fallback:
        uow.routing.arm(key=f"escalation:{accession}:{round_}", accession=accession,
                        kind="escalation", due_at=iso(after + routing_of(uow).grace),
                        now=uow.moment.iso)


def pick(uow: UnitOfWork, pool: Pool, *, exclude: str = "") -> str:
    """The member of `pool` a case goes to now ("" when nobody is present)."""
    day = uow.moment.local.date()
    entered = tuple(Absence(a["member"], dt.date.fromisoformat(a["starts_on"]),
                            dt.date.fromisoformat(a["ends_on"]))
                    for a in uow.routing.absence_rows())
    return routing_of(uow).pick(pool, day, uow.routing.open_counts(pool.members), entered,
                                exclude=exclude)


def handle(cmd: AssignCase, uow: UnitOfWork) -> Assignment:
    """`cmd.specialist` takes the case: they must read its pool (`Pool.admits`), and the case
    still waits for an answer. Taking a case one already holds changes nothing."""
    before = _waiting(uow, cmd.accession)
    pool = routing_of(uow).pools.get(before.pool)
    if pool is None or not pool.admits(cmd.specialist):
        raise DomainError(f"{cmd.specialist} is not a member of pool {before.pool or '-'}",
                          code="not-in-pool", where="specialist",
                          hint=f"add them to the pool's members in {routing_of(uow).source}")
    if before.assigned_to == cmd.specialist:
        return before
    now = uow.moment.iso
    uow.routing.assign(cmd.accession, pool=before.pool, assigned_to=cmd.specialist, now=now)
    uow.audit.append(at=now, actor=cmd.actor, action="case.taken", accession=cmd.accession,
                     detail={"pool": before.pool, "assigned_to": cmd.specialist,
                             "previous": before.assigned_to})
    after = uow.routing.assignment(cmd.accession)
    case = uow.cases.load(cmd.accession)
    tell(uow, case, before=before, after=after)
    notify_status.in_progress(uow, case)  # SC/IP to the requester, once per case
    return after


def release(cmd: ReleaseCase, uow: UnitOfWork) -> Assignment:
    """The assignee hands the case back (`cmd.specialist` "" : an admin, for whoever holds
    it): it goes to another member present, or waits in the pool unassigned."""
    before = _waiting(uow, cmd.accession)
    if not before.assigned_to:
        raise StateConflict(f"case {cmd.accession} is not assigned to anyone",
                            code="not-assigned", where="accession")
    if cmd.specialist and cmd.specialist != before.assigned_to:
        raise StateConflict(f"case {cmd.accession} is assigned to someone else",
                            code="not-yours", where="accession",
                            hint="only its assignee or an admin may hand it back")
    pool = routing_of(uow).pools.get(before.pool)
    member = pick(uow, pool, exclude=before.assigned_to) if pool is not None else ""
    now = uow.moment.iso
    uow.routing.assign(cmd.accession, pool=before.pool, assigned_to=member, now=now)
    uow.audit.append(at=now, actor=cmd.actor, action="case.released", accession=cmd.accession,
                     detail={"pool": before.pool, "previous": before.assigned_to,
                             "assigned_to": member})
    after = uow.routing.assignment(cmd.accession)
    tell(uow, uow.cases.load(cmd.accession), before=before, after=after)
    return after


def _waiting(uow: UnitOfWork, accession: str) -> Assignment:
    got = uow.routing.assignment(accession)
    if got.status not in WAITING:
        raise StateConflict(f"case {accession} is {got.status}: it no longer waits for an "
                            "answer", code="not-waiting", where="accession")
    return got


def destinations_of(uow: UnitOfWork, pool_id: str) -> tuple[str, ...]:
    """The specialist destinations a pool's orders go to (its own, else every one)."""
    pool = routing_of(uow).pools.get(pool_id)
    config = uow.services.config
    if pool is not None and pool.destination:
        return (pool.destination,)
    return tuple(d.name for d in config.destinations_for("specialist"))


def withdraw(uow: UnitOfWork, case: Case) -> str | None:
    """The case leaves the care network (cancelled, declined): its pending timers are
    cancelled and its pool's specialist side gets ORC-1 CA. A case that never had a pool (opened
    before the care network) was never sent there. Returns the CA's MSH-10, or None."""
    uow.routing.cancel(case.accession)
    before = uow.routing.assignment(case.accession)
    if not before.pool:
        return None
    return tell(uow, case, before=before, after=None)


def tell(uow: UnitOfWork, case: Case, *, before: Assignment | None, after: Assignment | None,
         reminder: bool = False) -> str | None:
    """Queue what the specialist side must hear of a change from `before` to `after` (None:
    the case is withdrawn): NW where the case arrives, XO where it stays, CA where it leaves
    (SC with `reminder`). Returns the MSH-10, or None when no specialist destination is
    concerned."""
    old = destinations_of(uow, before.pool) if before is not None else ()
    new = destinations_of(uow, after.pool) if after is not None else ()
    controls = ([(d, "SC") for d in new] if reminder else
                [(d, "CA") for d in old if d not in new]
                + [(d, "XO" if d in old else "NW") for d in new])
    if not controls:
        return None
    config = uow.services.config
    sequence = f"spec:{case.accession}"
    number = uow.counters.read(sequence) + 1
    uow.counters.write(sequence, number)
    shown = after or before
    due = hl7_dt(Moment.from_iso(shown.due_at).utc) if shown.due_at else ""
    control_id = f"SP{case.accession}{'R' if reminder else 'A'}{number}"
    kinds = {d.name: d.order_message for d in config.destinations_for("specialist")}
    for name, control in controls:
        message = build_specialist_order(
            control_id=control_id, now=uow.moment.hl7, message_type=kinds[name],
            order_control=control, case_accession=case.accession, order=case.order,
            assignee=after.assigned_to if control != "CA" else before.assigned_to, due=due,
            reminder=reminder, sending=(config.facility.name, config.facility.id),
            receiving=(name, ""))
        enqueue_hl7(uow, destination=name, control_id=control_id, message=message,
                    accession=case.accession)
    return control_id


def ensure_answerer(uow: UnitOfWork, accession: str, practitioner_id: str) -> None:
    """A specialist answers (reports, corrects, withdraws, declines) a case waiting in their
    pool or assigned to them, never one assigned to another member: StateConflict (409) then,
    naming what to do. Admins and the reporting system's HL7 messages do not pass here."""
    assignee = uow.routing.assignment(accession).assigned_to
    if assignee and assignee != practitioner_id:
        raise StateConflict(f"case {accession} is assigned to another specialist",
                            where="assigned_to", code="assigned-elsewhere",
                            hint=f"ask its assignee or an admin to hand it back "
                                 f"(POST /api/cases/{accession}/release), then take it")
