"""Read models for the API and the CLI: plain queries, no aggregate loading."""

from __future__ import annotations

import base64
import datetime as dt
import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case as when, func, literal, or_, select
from sqlalchemy.engine import Connection

from ..domain.errors import DomainError
from ..domain.roles import ANY, EVERYTHING, Reach
from ..domain.states import AWAITING_ANSWER
from . import cases as cases_store
from . import identity, inbox
from . import outbox as outbox_store
from .schema import audit as audit_table
from .schema import (cases, charges, follow_ups, images, outbox, patient_identifiers, patients,
                     reports)
from .schema import inbox as inbox_table


def _pn(family: str, given: str) -> str:
    return f"{family}^{given}" if given else family


def _case_dict(row) -> dict:
    return {
        "accession": row.accession,
        "status": row.status,
        "priority": row.priority,
        "placer_order_number": row.placer_order_number,
        "study_instance_uid": row.study_uid,
        "patient": {"id": row.patient_id, "issuer": row.issuer,
                    "name": _pn(row.family, row.given),
                    "birth_date": row.birth_date, "sex": row.sex},
        "requester": {"id": row.requester_id,
                      "name": _pn(row.requester_family, row.requester_given)},
        "question": row.question,
        "triage": {"level": row.triage_level, "score": row.triage_score},
        "service": row.service or None,
        "pool": row.pool or None,
        "assigned_to": row.assigned_to or None,
        "due_at": row.due_at or None,
        "overdue": bool(row.overdue),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


_WAITING = tuple(s.value for s in AWAITING_ANSWER)


def _overdue(now: str):
    """Past its deadline and still waiting for an answer (the worklist's flag)."""
    return and_(cases.c.due_at != "", cases.c.due_at < now, cases.c.status.in_(_WAITING))


def _base(now: str = ""):
    """Cases with their patient and the `overdue` flag as of `now` (never overdue when "")."""
    flag = when((_overdue(now), True), else_=False) if now else literal(False)
    return select(cases, flag.label("overdue"), patients.c.patient_id, patients.c.issuer, patients.c.family,
                  patients.c.given, patients.c.birth_date, patients.c.sex, patients.c.ins,
                  patients.c.ins_oid, patients.c.identity_status, patients.c.identity_flags).join(
        patients, cases.c.patient_pk == patients.c.id)


SORTS = ("created", "triage")


def _sort_keys(sort: str) -> tuple[tuple[Any, bool], ...]:
    """The sort as (expression, descending) pairs, ending on the accession so that the order is
    total and a page can start strictly after the last case of the previous one.

    `created`: newest first. `triage`: most urgent first — triage level (STAT ... LOW, never
    assessed last), score, the order priority, then the case waiting longest."""
    if sort == "triage":
        level = when({"STAT": 0, "HIGH": 1, "MEDIUM": 2, "ROUTINE": 3, "LOW": 4},
                     value=cases.c.triage_level, else_=5)
        priority = when({"stat": 0, "urgent": 1}, value=cases.c.priority, else_=2)
        return ((level, False), (cases.c.triage_score, True), (priority, False),
                (cases.c.created_at, False), (cases.c.accession, False))
    if sort == "created":
        return (cases.c.created_at, True), (cases.c.accession, True)
    raise ValueError(f"sort must be one of {', '.join(SORTS)}")


def within(reach: Reach):
    """The SQL form of `Reach.sees`: the cases of the reach's scopes (facility/service pairs)
    and pools (or assigned to its practitioner, or routed to no pool); None for everything."""
    if reach.everything:
        return None
    parts = []
    if reach.scopes is not None:
        parts.append(or_(literal(False), *(and_(
            *(() if s.facility == ANY else (cases.c.facility_finess == s.facility,)),
            *(() if s.service == ANY else (cases.c.service == s.service,)), literal(True))
            for s in reach.scopes)))
    if reach.pools is not None:
        pooled = [cases.c.pool == "", cases.c.pool.in_(reach.pools)]
        if reach.practitioner_id:
            pooled.append(cases.c.assigned_to == reach.practitioner_id)
        parts.append(or_(*pooled))
    return and_(*parts)


def _reached(query, reach: Reach):
    condition = within(reach)
    return query if condition is None else query.where(condition)


def in_reach(conn: Connection, accession: str, reach: Reach = EVERYTHING) -> bool:
    """Whether the case exists and is within `reach` (callers answer 404 alike otherwise)."""
    query = _reached(select(cases.c.accession).where(cases.c.accession == accession), reach)
    return conn.execute(query).first() is not None


def _filtered(query, *, status, priority, placer_order_number, patient_id, overdue=None,
              now="", pool=None, assigned_to=None, reach: Reach = EVERYTHING):
    query = _reached(query, reach)
    if overdue is not None and now:
        query = query.where(_overdue(now) if overdue else ~_overdue(now))
    if pool:
        query = query.where(cases.c.pool == pool)
    if assigned_to:
        query = query.where(cases.c.assigned_to == assigned_to)
    if status:
        query = query.where(cases.c.status == status)
    if priority:
        query = query.where(cases.c.priority == priority)
    if placer_order_number:
        query = query.where(cases.c.placer_order_number == placer_order_number)
    if patient_id:  # any identifier of the patient (IPP, INS, other ids): the index, and the
        # records linked to theirs (A24): one person's cases, each on its own record
        query = query.where(patients.c.id.in_(identity.group_of(
            select(patient_identifiers.c.patient_pk)
            .where(patient_identifiers.c.identifier == patient_id))))
    return query


def _after(keys: tuple[tuple[Any, bool], ...], values: list) -> Any:
    """Rows strictly after `values` in the order of `keys` (keyset paging: a case opened while a
    client pages neither shifts nor repeats the pages it has not read yet)."""
    branches = []
    for i, (expr, descending) in enumerate(keys):
        beyond = expr < values[i] if descending else expr > values[i]
        branches.append(and_(*(e == v for (e, _), v in zip(keys[:i], values[:i])), beyond))
    return or_(*branches)


def encode_cursor(sort: str, values: list) -> str:
    raw = json.dumps([sort, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> list:
    """The sort-key values a cursor carries; DomainError for one this server did not give for
    this sort."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        data = None
    width = len(_sort_keys(sort))
    if (not isinstance(data, list) or len(data) != width + 1 or data[0] != sort
            or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in data[1:])):
        raise DomainError("cursor is not one this server gave for this sort", where="cursor",
                          hint="follow the Link rel=\"next\" URL of the previous page as given")
    return data[1:]


@dataclass(frozen=True)
class CasePage:
    items: list[dict]
    total: int  # cases matching the filters, all pages together
    next_cursor: str | None  # None on the last page


def list_cases(conn: Connection, *, status: str | None = None, priority: str | None = None,
               placer_order_number: str | None = None, patient_id: str | None = None,
               limit: int = 100, sort: str = "created", cursor: str | None = None,
               overdue: bool | None = None, pool: str | None = None,
               assigned_to: str | None = None, now: str = "",
               reach: Reach = EVERYTHING) -> CasePage:
    """One page of the cases matching the filters and within `reach`, in the order of `sort`
    (see `_sort_keys`), starting after `cursor` (the previous page's `next_cursor`). `now`
    (stored form) is when `overdue` is judged: past `due_at` and still waiting for an answer."""
    keys = _sort_keys(sort)
    filters = dict(status=status, priority=priority, placer_order_number=placer_order_number,
                   patient_id=patient_id, overdue=overdue, now=now, pool=pool,
                   assigned_to=assigned_to, reach=reach)
    query = _filtered(_base(now).add_columns(*(e.label(f"sort_key_{i}") for i, (e, _) in enumerate(keys))),
                      **filters)
    if cursor is not None:
        query = query.where(_after(keys, decode_cursor(sort, cursor)))
    order = [e.desc() if descending else e for e, descending in keys]
    rows = conn.execute(query.order_by(*order).limit(limit + 1)).all()
    total = conn.execute(_filtered(select(func.count()).select_from(
        cases.join(patients, cases.c.patient_pk == patients.c.id)), **filters)).scalar_one()
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = (encode_cursor(sort, [getattr(rows[-1], f"sort_key_{i}") for i in range(len(keys))])
                   if more else None)
    return CasePage([_case_dict(r) for r in rows], total, next_cursor)


def worklist(conn: Connection, *, status: str | None = None, limit: int = 500, now: str = "",
             reach: Reach = EVERYTHING) -> list[dict]:
    """The cases still waiting for an answer (`AWAITING_ANSWER`, or the one of them given),
    most urgent first (`_sort_keys("triage")`: triage level, score, priority, then the oldest),
    flagged overdue as of `now`; within `reach` only (a specialist's pools)."""
    waiting = _WAITING
    wanted = (status,) if status in waiting else waiting
    query = _reached(_base(now).where(cases.c.status.in_(wanted)), reach)
    rows = conn.execute(query
                        .order_by(*(e.desc() if descending else e
                                    for e, descending in _sort_keys("triage")))
                        .limit(limit)).all()
    return [_case_dict(r) for r in rows]


def case_detail(conn: Connection, accession: str, now: str = "") -> dict | None:
    row = conn.execute(_base(now).where(cases.c.accession == accession)).first()
    if row is None:
        return None
    out = _case_dict(row)
    # An INS is shown only when it may be used (qualified identity); otherwise only that one
    # was received, and under which authority (FR Core: transmit the INS of a QUAL identity only).
    usable = bool(row.ins) and row.identity_status == "QUAL"
    out["patient"].update(
        identity_status=row.identity_status,
        ins={"value": row.ins if usable else None, "oid": row.ins_oid, "usable": usable}
        if row.ins else None,
        identity_flags=row.identity_flags.split(),
        other_ids=[{"id": i, "issuer": s}
                   for i, s in cases_store.patient(conn, row.patient_pk).other_ids],
        linked=[{"id": p.id, "issuer": p.issuer, "name": p.name.hl7()}
                for p in (cases_store.patient(conn, pk)
                          for pk in sorted(identity.linked(conn, row.patient_pk)))])
    out["requester"].update(authority=row.requester_authority, id_type=row.requester_id_type,
                            rpps=row.requester_rpps)
    out["facility"] = ({"finess": row.facility_finess, "name": row.facility_name,
                        "kind": row.facility_kind}
                       if row.facility_finess or row.facility_name else None)
    out["consent"] = json.loads(row.consent) if row.consent else None
    answers = json.loads(row.questionnaire or "[]")
    out["questionnaire"] = [
        {"item": a["item"], "label": {"fr": a["label"][0], "en": a["label"][1]},
         "values": a["values"],
         "answers": [{"code": code, "label": {"fr": fr, "en": en}}
                     for code, fr, en in a["value_labels"]],
         "weight": a["weight"], "red_flags": a["red_flags"]} for a in answers]
    out["triage"]["red_flags"] = [f"{a['item']}:{v}" for a in answers for v in a["red_flags"]]
    out["images"] = [
        {"sop_instance_uid": r.sop_uid, "kind": r.kind, "site": r.site_code,
         "laterality": r.laterality, "archived": r.archived_at is not None,
         "quality": json.loads(r.quality).get("flags", [])}
        for r in conn.execute(select(images).where(images.c.accession == accession)
                              .order_by(images.c.id))]
    out["reports"] = [
        {"version": r.version, "status": r.status, "conduct": r.conduct, "signed_at": r.signed_at,
         "specialist": r.specialist_id, "digest": r.digest}
        for r in conn.execute(select(reports).where(reports.c.accession == accession)
                              .order_by(reports.c.version))]
    out["follow_ups"] = [
        {"destination": r.destination, "version": r.version, "message_type": r.message_type,
         "urgency": r.urgency, "status": r.status, "reason": r.reason,
         "requested_at": r.requested_at, "updated_at": r.updated_at}
        for r in conn.execute(select(follow_ups).where(follow_ups.c.accession == accession)
                              .order_by(follow_ups.c.id))]
    out["charges"] = [
        {"transaction_id": r.transaction_id, "code": r.code, "role": r.role, "type": r.type,
         "amount": f"{r.amount_cents / 100:.2f}", "act_date": r.act_date, "status": r.status,
         "reason": r.reason, "message_control_id": r.message_control_id}
        for r in conn.execute(select(charges).where(charges.c.accession == accession)
                              .order_by(charges.c.id))]
    out["outbox"] = [
        {"kind": r.kind, "destination": r.destination, "status": r.status,
         "attempts": r.attempts, "last_error": r.last_error}
        for r in conn.execute(select(outbox).where(outbox.c.accession == accession)
                              .order_by(outbox.c.id))]
    return out


def study_context(conn: Connection, study_uid: str, sites: Mapping[str, Any]) -> dict | None:
    """The tele-expertise context of the case whose study this is, as the Orthanc plugin shows
    it beside the images (`orthanc_plugin/`), or None when the study is no case's: see
    `case_context`."""
    accession = conn.execute(select(cases.c.accession)
                             .where(cases.c.study_uid == study_uid)).scalar()
    detail = case_detail(conn, accession) if accession is not None else None
    return case_context(detail, sites) if detail is not None else None


def case_context(detail: dict, sites: Mapping[str, Any]) -> dict:
    """What reading the photos of a case needs, from its `case_detail`: the plugin's panel and
    the /ui/ case page show the same thing.

    No patient identity (Orthanc holds it already), no charges or outbox. `sites` maps a
    body-site code to its entry in mappings/body_sites.csv (`meaning_en`, `label_fr`).
    `assigned_specialist` (IdNatPS) and `deadline` come from the care network
    (`mappings/routing.toml`), null while the case has none.
    """

    def site(code: str | None) -> dict | None:
        if not code:
            return None
        entry = sites.get(code)
        return {"code": code, "label": {"fr": entry.label_fr, "en": entry.meaning_en}
                if entry is not None else None}

    return {
        **{key: detail[key] for key in ("accession", "status", "priority", "triage", "question",
                                        "questionnaire", "consent", "requester",
                                        "study_instance_uid", "created_at", "updated_at")},
        "assigned_specialist": detail["assigned_to"],
        "deadline": detail["due_at"],
        "images": [{"sop_instance_uid": i["sop_instance_uid"], "kind": i["kind"],
                    "site": site(i["site"]), "laterality": i["laterality"],
                    "quality": i["quality"]} for i in detail["images"]],
    }


def case_with_context(conn: Connection, accession: str, sites: Mapping[str, Any],
                      now: str = "") -> dict | None:
    """`case_detail` plus its `case_context` under "context" (the /ui/ case page), or None."""
    detail = case_detail(conn, accession, now)
    return {**detail, "context": case_context(detail, sites)} if detail is not None else None


def stats(conn: Connection) -> dict:
    by_status = dict(conn.execute(select(cases.c.status, func.count()).group_by(cases.c.status)).all())
    queue = dict(conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all())
    oldest = conn.execute(select(func.min(outbox.c.created_at)).where(
        outbox.c.status == "pending")).scalar()
    return {
        "cases": {"total": sum(by_status.values()), "by_status": by_status},
        "images": conn.execute(select(func.count()).select_from(images)).scalar(),
        "reports": conn.execute(select(func.count()).select_from(reports)).scalar(),
        "charges": conn.execute(select(func.count()).select_from(charges)).scalar(),
        "outbox": {"pending": queue.get("pending", 0), "done": queue.get("done", 0),
                   "dead": queue.get("dead", 0), "oldest_pending": oldest},
        "deadlines": deadlines(conn),
    }


def deadlines(conn: Connection, *, start: str = "", end: str = "") -> dict:
    """Per priority, the cases with a deadline (opened in [start, end) when given) that were
    answered, how many of them in time (first answer at or before `due_at`) and that share
    (null when none was answered)."""
    in_time = func.count().filter(cases.c.answered_at <= cases.c.due_at)
    query = select(cases.c.priority, func.count(), in_time).where(
        cases.c.due_at != "", cases.c.answered_at != "")
    if start:
        query = query.where(cases.c.created_at >= start)
    if end:
        query = query.where(cases.c.created_at < end)
    rows = conn.execute(query.group_by(cases.c.priority)).all()
    got = {priority: (answered, ok) for priority, answered, ok in rows}
    out = {}
    for priority in ("stat", "urgent", "routine"):
        answered, ok = got.get(priority, (0, 0))
        out[priority] = {"answered": answered, "in_time": ok,
                         "share_in_time": round(ok / answered, 4) if answered else None}
    return out


def overdue_digest(conn: Connection, now: str, reach: Reach = EVERYTHING) -> dict:
    """The cases past their deadline within `reach`, per pool, for a site's notification
    tooling: no patient data, the accession leads to the case."""
    rows = conn.execute(_reached(select(cases.c.pool, cases.c.accession, cases.c.priority,
                                        cases.c.status, cases.c.assigned_to, cases.c.due_at,
                                        cases.c.escalations).where(_overdue(now)), reach)
                        .order_by(cases.c.pool, cases.c.due_at, cases.c.accession)).all()
    pools: dict[str, list] = {}
    for r in rows:
        pools.setdefault(r.pool, []).append(
            {"accession": r.accession, "priority": r.priority, "status": r.status,
             "assigned_to": r.assigned_to or None, "due_at": r.due_at,
             "escalations": r.escalations})
    return {"at": now, "total": len(rows),
            "pools": [{"pool": pool, "overdue": len(items), "cases": items}
                      for pool, items in pools.items()]}


# Outbox kinds that carry a batch of charge lines (`workflow/post_charges.py`); their key
# ends with ":" and the batch's MSH-10.
BATCH_KINDS = ("hl7.send", "billing.csv")


def charge_rows(conn: Connection, *, first_day: str = "", last_day: str = "") -> list[dict]:
    """Charge lines as `billing.reconcile.reconcile` reads them, act date (YYYYMMDD) within
    [first_day, last_day] when given, oldest first.

    A line still `sent` in the charges table is only as far as the outbox got its batch: `sent`
    when an item of the batch was delivered (a CSV file dropped; an HL7 peer's AA already made
    it `acknowledged`), `pending` while one is still queued, `undelivered` when none ever will
    be (dead without an answer, discarded, or no accounting destination)."""
    query = select(charges.c.transaction_id, charges.c.accession, charges.c.code, charges.c.role,
                   charges.c.type, charges.c.amount_cents, charges.c.act_date,
                   charges.c.performed_by, charges.c.status, charges.c.reason,
                   charges.c.message_control_id)
    if first_day:
        query = query.where(charges.c.act_date >= first_day)
    if last_day:
        query = query.where(charges.c.act_date <= last_day)
    rows = [dict(r._mapping) for r in conn.execute(query.order_by(charges.c.id))]
    batches = {r["message_control_id"] for r in rows if r["status"] == "sent"}
    delivery: dict[str, set[str]] = {}
    accessions = sorted({r["accession"] for r in rows if r["status"] == "sent"})
    for start in range(0, len(accessions), 500):  # bound the number of bound parameters
        items = select(outbox.c.key, outbox.c.status).where(
            outbox.c.kind.in_(BATCH_KINDS), outbox.c.accession.in_(accessions[start:start + 500]))
        for key, status in conn.execute(items):
            control_id = key.rsplit(":", 1)[-1]
            if control_id in batches:
                delivery.setdefault(control_id, set()).add(status)
    for row in rows:
        if row["status"] == "sent":
            got = delivery.get(row.pop("message_control_id"), set())
            row["status"] = ("sent" if "done" in got else "pending" if "pending" in got
                             else "undelivered")
        else:
            row.pop("message_control_id")
    return rows


def oldest_pending(conn: Connection) -> dict | None:
    """The outbox item waiting longest (no payload: it holds patient data), or None."""
    row = conn.execute(select(
        outbox.c.id, outbox.c.kind, outbox.c.destination, outbox.c.accession,
        outbox.c.created_at, outbox.c.attempts, outbox.c.next_attempt_at, outbox.c.last_error)
        .where(outbox.c.status == "pending").order_by(outbox.c.created_at, outbox.c.id)
        .limit(1)).first()
    return dict(row._mapping) if row else None


def health(conn: Connection, orthanc_reachable: bool) -> dict:
    """What `GET /api/health` and `telederm status` report: outbox depths and its oldest pending
    item, each destination's last success and failure, the inbox (messages stored but not
    applied yet, and those that could not be applied), Orthanc reachability, the identity
    events (`identity.summary`: about unknown patients, conflicts refused), and `problems`."""
    depth = stats(conn)["outbox"]
    depth["oldest_pending_item"] = oldest_pending(conn)
    peers = outbox_store.destinations(conn)
    waiting, oldest = inbox.backlog(conn)
    failed = conn.execute(select(func.count()).select_from(inbox_table)
                          .where(inbox_table.c.state == "failed")).scalar()
    problems = health_problems(depth, peers, orthanc_reachable)
    if failed:
        problems.append(f"{failed} HL7 message(s) acknowledged but not applied "
                        "(inbox state failed; see the audit trail)")
    identities = identity.summary(conn)
    if identities["conflicts"]:
        problems.append(f"{identities['conflicts']} identity incident(s): messages refused "
                        "because their identity contradicts a known patient (for the "
                        "identity-vigilance team; see identity.latest_conflicts)")
    return {"outbox": depth, "destinations": peers,
            "inbox": {"pending": waiting, "oldest_pending_at": oldest, "failed": failed},
            "orthanc": {"reachable": orthanc_reachable}, "identity": identities,
            "problems": problems}


def health_problems(queue: dict, destinations: dict[str, dict], orthanc_reachable: bool) -> list[str]:
    """What an operator should look at, one line each (empty when all is well): Orthanc not
    answering, dead letters, destinations failing now. `queue` is `stats()["outbox"]`,
    `destinations` is `outbox.destinations()`."""
    problems = [] if orthanc_reachable else ["orthanc is unreachable"]
    if queue.get("dead"):
        problems.append(f"{queue['dead']} dead letter(s) in the outbox "
                        "(telederm queue list --status dead)")
    for name, entry in sorted(destinations.items()):
        if entry["pending"] and entry["last_error"]:
            problems.append(f"destination {name}: {entry['pending']} waiting, last attempt "
                            f"failed: {entry['last_error'][:200]}")
    return problems


# --- messages: the HL7 traffic, in (the inbox) and out (the outbox's hl7.send items) ---------

DIRECTIONS = ("in", "out")


def messages(conn: Connection, *, direction: str | None = None, accession: str | None = None,
             limit: int = 50) -> list[dict]:
    """The latest HL7 messages received and sent (of one direction, of one case, when given),
    newest first, each with its raw bytes under `raw` for the caller to read the header from
    (and to show only where patient data may be shown): inbound with the ACK code we answered
    and its state; outbound with its delivery status (`ack` "accepted" once the peer took it),
    attempts and last error."""
    out: list[dict] = []
    if direction in (None, "in"):
        query = select(inbox_table.c.id, inbox_table.c.received_at, inbox_table.c.sender,
                       inbox_table.c.control_id, inbox_table.c.message_type,
                       inbox_table.c.ack_code, inbox_table.c.state, inbox_table.c.accession,
                       inbox_table.c.raw)
        if accession:
            query = query.where(inbox_table.c.accession == accession)
        for r in conn.execute(query.order_by(inbox_table.c.id.desc()).limit(limit)):
            out.append({"id": f"in-{r.id}", "direction": "in", "at": r.received_at,
                        "peer": r.sender, "control_id": r.control_id,
                        "type": r.message_type, "accession": r.accession,
                        "status": r.state, "ack": r.ack_code, "raw": bytes(r.raw)})
    if direction in (None, "out"):
        query = select(outbox.c.id, outbox.c.created_at, outbox.c.destination, outbox.c.key,
                       outbox.c.accession, outbox.c.status, outbox.c.attempts, outbox.c.done_at,
                       outbox.c.last_error, outbox.c.payload).where(outbox.c.kind == "hl7.send")
        if accession:
            query = query.where(outbox.c.accession == accession)
        for r in conn.execute(query.order_by(outbox.c.id.desc()).limit(limit)):
            out.append({"id": f"out-{r.id}", "direction": "out", "at": r.created_at,
                        "peer": r.destination, "control_id": r.key.rsplit(":", 1)[-1],
                        "accession": r.accession, "status": r.status,
                        "ack": "accepted" if r.status == "done" else "", "attempts": r.attempts,
                        "done_at": r.done_at, "last_error": r.last_error,
                        "raw": json.loads(r.payload)["message"].encode("utf-8")})
    out.sort(key=lambda m: m["at"], reverse=True)
    return out[:limit]


def message(conn: Connection, message_id: str) -> dict | None:
    """One message of `messages` by its id (`in-N` or `out-N`), with the ACK we answered to an
    inbound one (`ack_raw`) and why it could not be applied (`outcome`); None when unknown."""
    direction, _, number = message_id.partition("-")
    if direction not in DIRECTIONS or not number.isdigit():
        return None
    if direction == "in":
        r = conn.execute(select(inbox_table).where(inbox_table.c.id == int(number))).first()
        if r is None:
            return None
        return {"id": message_id, "direction": "in", "at": r.received_at, "peer": r.sender,
                "control_id": r.control_id, "type": r.message_type, "accession": r.accession,
                "status": r.state, "ack": r.ack_code, "ack_raw": bytes(r.ack),
                "outcome": r.outcome, "raw": bytes(r.raw)}
    r = conn.execute(select(outbox).where(outbox.c.id == int(number),
                                          outbox.c.kind == "hl7.send")).first()
    if r is None:
        return None
    return {"id": message_id, "direction": "out", "at": r.created_at, "peer": r.destination,
            "control_id": r.key.rsplit(":", 1)[-1], "accession": r.accession,
            "status": r.status, "ack": "accepted" if r.status == "done" else "",
            "attempts": r.attempts, "done_at": r.done_at, "last_error": r.last_error,
            "raw": json.loads(r.payload)["message"].encode("utf-8")}


# --- figures of a period: what `telederm stats`, GET /api/stats and /ui/dashboard show -------

def case_figures(conn: Connection, *, start: str, end: str, without_visit: frozenset[str],
                 urgent_referral: frozenset[str], within_hours: tuple[int, ...]) -> dict:
    """The figures of the cases opened in [start, end) (stored timestamps, UTC).

    A case is answered at its first final report (audit `report.final`); its outcome is the
    conduct of its latest report; `without_visit` and `urgent_referral` are the conduct codes
    (mappings/statistics.toml) that count as answered without an in-person visit and as an
    urgent referral. Turnaround is in hours, from opening to answer, with the share of answers
    within each of `within_hours`, and how many answers fall in each bin of `HISTOGRAM_HOURS`.
    Weeks are ISO weeks (`2026-W03`) of the opening (requests)
    or of the answer (per specialist)."""
    opened = {r.accession: r for r in conn.execute(
        select(cases.c.accession, cases.c.created_at, cases.c.priority, cases.c.status,
               cases.c.sender).where(cases.c.created_at >= start, cases.c.created_at < end))}
    answered_at: dict[str, str] = {}
    declined: dict[str, str] = {}
    events = select(audit_table.c.accession, audit_table.c.action, audit_table.c.at,
                    audit_table.c.detail).where(
        audit_table.c.action.in_(("report.final", "case.declined")),
        audit_table.c.accession.in_(select(cases.c.accession).where(
            cases.c.created_at >= start, cases.c.created_at < end)))
    for r in conn.execute(events.order_by(audit_table.c.id)):
        if r.action == "report.final":
            answered_at.setdefault(r.accession, r.at)
        else:
            declined[r.accession] = json.loads(r.detail or "{}").get("reason", "")
    latest: dict[str, tuple[str, str]] = {}  # accession -> (conduct, specialist) of the last
    for r in conn.execute(select(reports.c.accession, reports.c.conduct, reports.c.specialist_id)
                          .where(reports.c.accession.in_(list(answered_at) or [""]))
                          .order_by(reports.c.version)):
        latest[r.accession] = (r.conduct, r.specialist_id)

    def hours(accession: str) -> float:
        return (_instant(answered_at[accession]) - _instant(opened[accession].created_at)
                ).total_seconds() / 3600

    turnaround = {"all": _distribution([hours(a) for a in answered_at], within_hours)}
    histogram = {label: 0 for label in HISTOGRAM_LABELS}
    for accession in answered_at:
        value = hours(accession)
        label = next((f"<={edge}h" for edge in HISTOGRAM_HOURS if value <= edge),
                     HISTOGRAM_LABELS[-1])
        histogram[label] += 1
    for priority in sorted({r.priority for r in opened.values()}):
        turnaround[priority] = _distribution(
            [hours(a) for a in answered_at if opened[a].priority == priority], within_hours)
    conducts: dict[str, int] = {}
    for conduct, _ in latest.values():
        conducts[conduct] = conducts.get(conduct, 0) + 1
    answered = len(latest)
    no_visit = sum(n for c, n in conducts.items() if c in without_visit)
    urgent = sum(n for c, n in conducts.items() if c in urgent_referral)
    reasons: dict[str, int] = {}
    for reason in declined.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    by_status: dict[str, int] = {}
    per_week: dict[str, int] = {}
    per_service: dict[str, int] = {}
    for r in opened.values():
        by_status[r.status] = by_status.get(r.status, 0) + 1
        week = _iso_week(r.created_at)
        per_week[week] = per_week.get(week, 0) + 1
        per_service[r.sender] = per_service.get(r.sender, 0) + 1
    per_specialist: dict[str, dict[str, int]] = {}
    for accession, (_, specialist) in latest.items():
        weeks = per_specialist.setdefault(specialist, {})
        week = _iso_week(answered_at[accession])
        weeks[week] = weeks.get(week, 0) + 1
    return {
        "period": {"start": start, "end": end},
        "cases": {"opened": len(opened), "by_status": dict(sorted(by_status.items()))},
        "turnaround_hours": turnaround,
        "turnaround_histogram": histogram,
        "outcomes": {
            "answered": answered, "by_conduct": dict(sorted(conducts.items())),
            "without_visit": no_visit, "without_visit_share": _share(no_visit, answered),
            "urgent_referrals": urgent, "urgent_referral_share": _share(urgent, answered),
            "refused": len(declined), "refusal_reasons": dict(sorted(reasons.items())),
        },
        "volumes": {
            "requests_per_week": dict(sorted(per_week.items())),
            "per_requesting_service": dict(sorted(per_service.items())),
            "per_specialist_per_week": {s: dict(sorted(w.items()))
                                        for s, w in sorted(per_specialist.items())},
        },
        "photo_quality": _quality(conn, list(opened)),
        "incidents": _incidents(conn, start, end),
    }


# Bins of the turnaround histogram: answers within 6 h, within 12 h (and over 6), ... over 72.
HISTOGRAM_HOURS = (6, 12, 24, 48, 72)
HISTOGRAM_LABELS = tuple(f"<={edge}h" for edge in HISTOGRAM_HOURS) + (f">{HISTOGRAM_HOURS[-1]}h",)


def _instant(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _iso_week(stamp: str) -> str:
    year, week, _ = _instant(stamp).isocalendar()
    return f"{year}-W{week:02d}"


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _distribution(values: list[float], within_hours: tuple[int, ...]) -> dict:
    """Count, median and quartiles (inclusive method: the quartiles of the values themselves)
    and the share within each target, of turnaround hours; None where there is nothing."""
    values = sorted(values)
    out: dict[str, Any] = {"answered": len(values), "median": None, "q1": None, "q3": None}
    if len(values) == 1:
        out.update(median=round(values[0], 2), q1=round(values[0], 2), q3=round(values[0], 2))
    elif values:
        q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
        out.update(median=round(q2, 2), q1=round(q1, 2), q3=round(q3, 2))
    for limit in within_hours:
        out[f"within_{limit}h"] = _share(sum(1 for v in values if v <= limit), len(values))
    return out


def _quality(conn: Connection, accessions: list[str]) -> dict:
    """Images of these cases, those the quality gate flagged, and how often each flag came."""
    total = flagged = 0
    flags: dict[str, int] = {}
    for start in range(0, len(accessions), 500):
        for (quality,) in conn.execute(select(images.c.quality).where(
                images.c.accession.in_(accessions[start:start + 500]))):
            total += 1
            found = json.loads(quality or "{}").get("flags", [])
            flagged += bool(found)
            for flag in found:
                flags[flag] = flags.get(flag, 0) + 1
    return {"images": total, "flagged": flagged, "flagged_share": _share(flagged, total),
            "by_flag": dict(sorted(flags.items()))}


def _incidents(conn: Connection, start: str, end: str) -> dict:
    """What went wrong in the period: outbox items given up (dead, discarded), per destination,
    and HL7 messages we refused (AE/AR) or acknowledged but could not apply."""
    given_up: dict[str, dict[str, int]] = {}
    for destination, status, count in conn.execute(
            select(outbox.c.destination, outbox.c.status, func.count())
            .where(outbox.c.status.in_(("dead", "discarded")), outbox.c.created_at >= start,
                   outbox.c.created_at < end)
            .group_by(outbox.c.destination, outbox.c.status)):
        given_up.setdefault(destination, {"dead": 0, "discarded": 0})[status] = count
    window = and_(inbox_table.c.received_at >= start, inbox_table.c.received_at < end)
    refused = conn.execute(select(func.count()).select_from(inbox_table).where(
        window, inbox_table.c.ack_code.in_(("AE", "AR", "CE", "CR")))).scalar()
    failed = conn.execute(select(func.count()).select_from(inbox_table).where(
        window, inbox_table.c.state == "failed")).scalar()
    return {"outbox_given_up": dict(sorted(given_up.items())),
            "dead_letters": sum(v["dead"] for v in given_up.values()),
            "discarded": sum(v["discarded"] for v in given_up.values()),
            "hl7_refused": refused, "hl7_not_applied": failed}
