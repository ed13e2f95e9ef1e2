"""The care network's timers, fired by the worker (`runtime/worker.py`) when due: the
reminder before a case's deadline (ORC-1 SC with a reminder note to its specialist side,
`case.reminded`), and its escalation `grace` after the deadline: the case moves to its pool's
fallback pool and that pool's member present with the fewest open cases (`case.escalated`;
CA / NW / XO to the specialist sides as `assign_case.tell` says), and the fallback's own
escalation is armed when it has a fallback too.

A timer is claimed in the transaction that performs it (`store/routing.fire`), so it fires
once, whatever the number of workers and however often the connector restarts. A case that no
longer waits for an answer (answered, declined, cancelled) makes its timer fire with no effect.
"""

from __future__ import annotations

from ..store.uow import UnitOfWork
from . import assign_case
from .commands import FireTimer


def handle(cmd: FireTimer, uow: UnitOfWork) -> str | None:
    """Returns what the timer did (`reminded`, `escalated`, `void`), or None when another
    worker fired it first."""
    if not uow.routing.fire(cmd.timer_id, uow.moment.iso):
        return None
    timer = uow.routing.timer(cmd.timer_id)
    before = uow.routing.assignment(timer.accession)
    if before.status not in assign_case.WAITING:
        return "void"
    case = uow.cases.load(timer.accession)
    now = uow.moment.iso
    if timer.kind == "reminder":
        assign_case.tell(uow, case, before=before, after=before, reminder=True)
        uow.audit.append(at=now, actor=cmd.actor, action="case.reminded",
                         accession=case.accession, detail={"pool": before.pool,
                                                           "due_at": before.due_at})
        return "reminded"
    routing = assign_case.routing_of(uow)
    pool = routing.pools.get(before.pool)
    fallback = routing.pools.get(pool.fallback) if pool is not None else None
    if fallback is None:  # the file changed since the timer was armed
        return "void"
    member = assign_case.pick(uow, fallback)
    uow.routing.assign(case.accession, pool=fallback.id, assigned_to=member, now=now,
                       escalated=True)
    uow.audit.append(at=now, actor=cmd.actor, action="case.escalated", accession=case.accession,
                     detail={"from_pool": before.pool, "pool": fallback.id,
                             "previous": before.assigned_to, "assigned_to": member,
                             "due_at": before.due_at})
    after = uow.routing.assignment(case.accession)
    assign_case.tell(uow, case, before=before, after=after)
    assign_case.arm_escalation(uow, case.accession, fallback, uow.moment.utc,
                               round_=after.escalations)
    return "escalated"
