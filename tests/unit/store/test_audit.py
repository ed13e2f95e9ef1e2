"""Audit trail: each row chains the previous row's hash; verify finds the first broken row."""

import json
import threading

from sqlalchemy import delete, select, update

from connector.store import audit
from connector.store.schema import audit as audit_table
from tests.support.store_samples import TEST_AUDIT_KEY, stamp


def append_three(engine):
    with engine.begin() as conn:
        audit.append(conn, at=stamp(0), actor="hl7:DPI_CHU|CHU_NIMES", action="case.opened",
                     accession="TD00000001", detail={"placer": "CMD-1"})
        audit.append(conn, at=stamp(1), actor="api:dermato-1", action="image.attached",
                     accession="TD00000001", detail={"kind": "dermoscopy", "site": "épaule"})
        audit.append(conn, at=stamp(2), actor="system", action="config.loaded")
    with engine.connect() as conn:
        return conn.execute(select(audit_table).order_by(audit_table.c.id)).all()


def verify(engine):
    with engine.connect() as conn:
        return audit.verify(conn)


def test_verify_reports_no_rows_and_no_break_when_trail_is_empty(engine):
    assert verify(engine) == (0, None)


def test_append_chains_each_row_to_the_previous_hash_when_rows_follow(engine):
    rows = append_three(engine)
    assert rows[0].prev_hash == audit.GENESIS
    assert rows[1].prev_hash == rows[0].hash and rows[2].prev_hash == rows[1].hash
    assert len({r.hash for r in rows}) == 3 and all(len(r.hash) == 64 for r in rows)


def test_append_stores_detail_as_sorted_json_when_detail_has_accents(engine):
    rows = append_three(engine)
    assert rows[1].detail == '{"kind": "dermoscopy", "site": "épaule"}'
    assert json.loads(rows[2].detail) == {} and rows[2].accession is None


def test_verify_counts_every_row_when_chain_is_intact(engine):
    append_three(engine)
    assert verify(engine) == (3, None)


def test_verify_names_the_edited_row_when_a_detail_was_changed(engine):
    rows = append_three(engine)
    with engine.begin() as conn:
        conn.execute(update(audit_table).where(audit_table.c.id == rows[1].id).values(
            detail='{"kind": "photo", "site": "épaule"}'))
    assert verify(engine) == (2, rows[1].id)


def test_verify_names_the_edited_row_when_the_actor_was_changed(engine):
    rows = append_three(engine)
    with engine.begin() as conn:
        conn.execute(update(audit_table).where(audit_table.c.id == rows[0].id).values(actor="someone"))
    assert verify(engine) == (1, rows[0].id)


def test_verify_names_the_row_after_a_gap_when_a_row_was_deleted(engine):
    rows = append_three(engine)
    with engine.begin() as conn:
        conn.execute(delete(audit_table).where(audit_table.c.id == rows[1].id))
    assert verify(engine) == (2, rows[2].id)


def test_verify_names_the_next_row_when_an_edited_row_was_rehashed(engine):
    rows = append_three(engine)
    forged_detail = '{"placer": "CMD-999"}'
    forged_hash = audit._digest(TEST_AUDIT_KEY, rows[0].prev_hash, rows[0].at, rows[0].actor,
                                rows[0].action, rows[0].accession, forged_detail)
    with engine.begin() as conn:
        conn.execute(update(audit_table).where(audit_table.c.id == rows[0].id).values(
            detail=forged_detail, hash=forged_hash))
    assert verify(engine) == (2, rows[1].id)


def test_verify_names_the_first_row_when_the_chain_was_recomputed_without_the_key(engine):
    """Someone who can write the table but not read the key rebuilds the chain over an edited
    row with plain SHA-256 (or any other key): the first row no longer verifies."""
    rows = append_three(engine)
    prev = audit.GENESIS
    with engine.begin() as conn:
        for row in rows:
            detail = '{"placer": "CMD-999"}' if row.id == rows[0].id else row.detail
            digest = audit._digest(b"a guessed key", prev, row.at, row.actor, row.action,
                                   row.accession, detail)
            conn.execute(update(audit_table).where(audit_table.c.id == row.id).values(
                detail=detail, prev_hash=prev, hash=digest))
            prev = digest
    assert verify(engine) == (1, rows[0].id)


def test_rolled_back_append_leaves_the_chain_intact_when_transaction_fails(engine):
    append_three(engine)
    with engine.connect() as conn, conn.begin() as tx:
        audit.append(conn, at=stamp(3), actor="system", action="case.cancelled")
        tx.rollback()
    with engine.begin() as conn:
        audit.append(conn, at=stamp(4), actor="system", action="case.closed")
    assert verify(engine) == (4, None)


def test_chain_stays_whole_when_four_writers_append_at_once(engine):
    """Writers sharing one store (on PostgreSQL, transactions really run side by side): each
    row still chains the one committed before it, so `verify` finds no break."""
    errors, ready = [], threading.Barrier(4)

    def writer(n: int) -> None:
        try:
            ready.wait(10)
            for i in range(15):
                with engine.begin() as conn:
                    audit.append(conn, at=stamp(i), actor=f"worker-{n}", action="case.opened",
                                 accession=f"TD{n:04d}{i:04d}")
                    audit.append(conn, at=stamp(i), actor=f"worker-{n}", action="hl7.received")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert verify(engine) == (120, None)
