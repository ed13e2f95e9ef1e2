"""Read models for the API and the CLI: plain queries, no aggregate loading."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from .schema import cases, charges, images, outbox, patients, reports


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
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _base():
    return select(cases, patients.c.patient_id, patients.c.issuer, patients.c.family,
                  patients.c.given, patients.c.birth_date, patients.c.sex).join(
        patients, cases.c.patient_pk == patients.c.id)


def list_cases(conn: Connection, *, status: str | None = None, priority: str | None = None,
               placer_order_number: str | None = None, patient_id: str | None = None,
               limit: int = 100) -> list[dict]:
    query = _base()
    if status:
        query = query.where(cases.c.status == status)
    if priority:
        query = query.where(cases.c.priority == priority)
    if placer_order_number:
        query = query.where(cases.c.placer_order_number == placer_order_number)
    if patient_id:
        query = query.where(patients.c.patient_id == patient_id)
    rows = conn.execute(query.order_by(cases.c.created_at.desc()).limit(limit)).all()
    return [_case_dict(r) for r in rows]


def case_detail(conn: Connection, accession: str) -> dict | None:
    row = conn.execute(_base().where(cases.c.accession == accession)).first()
    if row is None:
        return None
    out = _case_dict(row)
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
    }


def charge_rows(conn: Connection, *, first_day: str = "", last_day: str = "") -> list[dict]:
    """Charge lines as `billing.reconcile.reconcile` reads them, act date (YYYYMMDD) within
    [first_day, last_day] when given, oldest first."""
    query = select(charges.c.transaction_id, charges.c.accession, charges.c.code, charges.c.role,
                   charges.c.type, charges.c.amount_cents, charges.c.act_date,
                   charges.c.performed_by, charges.c.status, charges.c.reason)
    if first_day:
        query = query.where(charges.c.act_date >= first_day)
    if last_day:
        query = query.where(charges.c.act_date <= last_day)
    return [dict(r._mapping) for r in conn.execute(query.order_by(charges.c.id))]
