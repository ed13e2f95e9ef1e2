"""Outbox: idempotent enqueue, per-destination order, leases, back-off and dead letters."""

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import select

from connector.store import audit, outbox
from connector.domain.moment import iso
from connector.store.schema import outbox as outbox_table
from tests.support.store_samples import at, stamp


def put(engine, key, destination="ehr", payload=b"MSH|...", accession="TD00000001", now=0):
    with engine.begin() as conn:
        return outbox.enqueue(conn, kind="hl7.send", destination=destination, key=key,
                              payload=payload, accession=accession, now=stamp(now))


def row(engine, item_id):
    with engine.connect() as conn:
        return conn.execute(select(outbox_table).where(outbox_table.c.id == item_id)).one()


def due_seconds(engine, item_id) -> float:
    """next_attempt_at of an item, in seconds after T0."""
    due = dt.datetime.strptime(row(engine, item_id).next_attempt_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    return (due.replace(tzinfo=dt.UTC) - at(0)).total_seconds()


def keys(items):
    return [i.key for i in items]


def fail(engine, item, seconds, **kwargs):
    kwargs.setdefault("max_attempts", 5)
    with engine.begin() as conn:
        return outbox.fail(conn, item, at(seconds), "ConnectionRefusedError: peer down", **kwargs)


def complete(engine, item, seconds):
    with engine.begin() as conn:
        outbox.complete(conn, item.id, at(seconds))


def test_enqueue_adds_one_pending_item_when_key_is_new(engine):
    assert put(engine, "oru:TD00000001:1", payload="MSH|LEFÈVRE".encode()) is True
    [item] = outbox.claim(engine, at(1))
    assert (item.kind, item.destination, item.key, item.accession, item.payload, item.attempts) == (
        "hl7.send", "ehr", "oru:TD00000001:1", "TD00000001", "MSH|LEFÈVRE".encode(), 0)


def test_enqueue_is_a_no_op_when_the_key_already_exists(engine):
    assert put(engine, "k1", payload=b"first") is True
    assert put(engine, "k1", destination="accounting", payload=b"second") is False
    with engine.connect() as conn:
        rows = conn.execute(select(outbox_table)).all()
    assert [(r.destination, r.payload) for r in rows] == [("ehr", b"first")]


def test_enqueue_twice_in_one_transaction_adds_one_item_when_keys_match(engine):
    with engine.begin() as conn:
        results = [outbox.enqueue(conn, kind="archive.store", destination="archive", key="archive:1.2",
                                  payload=b"/x.dcm", accession=None, now=stamp()) for _ in range(2)]
    assert results == [True, False]
    with engine.connect() as conn:
        assert outbox.depth(conn) == {"pending": 1}


def test_enqueued_item_is_discarded_when_transaction_rolls_back_after_an_earlier_write(engine):
    with engine.connect() as conn, conn.begin() as tx:
        audit.append(conn, at=stamp(), actor="test", action="case.opened")
        outbox.enqueue(conn, kind="hl7.send", destination="ehr", key="k1", payload=b"x",
                       accession=None, now=stamp())
        tx.rollback()
    assert outbox.claim(engine, at(1)) == []


def test_enqueued_item_is_discarded_when_transaction_rolls_back_and_enqueue_was_the_first_write(engine):
    with pytest.raises(RuntimeError), engine.begin() as conn:
        outbox.enqueue(conn, kind="hl7.send", destination="ehr", key="k1", payload=b"x",
                       accession=None, now=stamp())
        audit.append(conn, at=stamp(), actor="test", action="report.final")
        raise RuntimeError("a later step of the same unit of work failed")
    with engine.connect() as conn:
        assert outbox.depth(conn) == {}


def test_claim_returns_nothing_when_outbox_is_empty(engine):
    assert outbox.claim(engine, at(0)) == []


def test_claim_takes_only_the_head_item_when_a_destination_has_several(engine):
    for key in ("first", "second", "third"):
        put(engine, key)
    assert keys(outbox.claim(engine, at(1))) == ["first"]


def test_claim_takes_the_head_of_each_destination_when_several_are_due(engine):
    put(engine, "ehr-1", destination="ehr")
    put(engine, "acc-1", destination="accounting")
    put(engine, "ehr-2", destination="ehr")
    put(engine, "arc-1", destination="archive")
    assert keys(outbox.claim(engine, at(1))) == ["ehr-1", "acc-1", "arc-1"]


def test_claim_respects_the_limit_when_more_destinations_are_due(engine):
    for n in range(5):
        put(engine, f"k{n}", destination=f"dest{n}")
    assert keys(outbox.claim(engine, at(1), limit=2)) == ["k0", "k1"]


def test_claim_skips_an_item_when_it_is_not_yet_due(engine):
    put(engine, "later", now=100)
    assert outbox.claim(engine, at(50)) == []
    assert keys(outbox.claim(engine, at(100))) == ["later"]


def test_claimed_item_is_not_claimed_again_when_its_lease_is_running(engine):
    put(engine, "k1")
    put(engine, "k2")
    assert keys(outbox.claim(engine, at(0), lease_seconds=60)) == ["k1"]
    assert outbox.claim(engine, at(30)) == []


def test_claimed_item_is_claimed_again_when_its_lease_has_expired(engine):
    put(engine, "k1")
    [first] = outbox.claim(engine, at(0), lease_seconds=60)
    [again] = outbox.claim(engine, at(61), lease_seconds=60)
    assert again.id == first.id and again.attempts == 0
    assert row(engine, again.id).lease_until == iso(at(121))


def test_next_item_is_claimed_when_the_head_is_completed(engine):
    put(engine, "k1")
    put(engine, "k2")
    [head] = outbox.claim(engine, at(0))
    complete(engine, head, 1)
    assert keys(outbox.claim(engine, at(2))) == ["k2"]


def test_each_item_is_delivered_once_and_in_order_when_four_workers_claim_at_once(engine):
    """Workers sharing one store (on PostgreSQL, transactions really run side by side): a
    leased head is never taken by another worker, and a destination's items go in order."""
    expected = {d: [f"{d}-{n:02d}" for n in range(15)] for d in ("ehr", "accounting", "pacs")}
    for d, item_keys in expected.items():
        for key in item_keys:
            put(engine, key, destination=d)
    delivered, errors, ready = [], [], threading.Barrier(4)

    def worker():
        try:
            ready.wait(10)
            deadline = time.monotonic() + 30
            while len(delivered) < 45 and time.monotonic() < deadline:
                claimed = outbox.claim(engine, at(0))
                for item in claimed:
                    delivered.append(item.key)
                    complete(engine, item, 0)
                if not claimed:
                    time.sleep(0.001)  # a worker's idle pause, part of what runs here
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(delivered) == sorted(k for ks in expected.values() for k in ks)
    for d, item_keys in expected.items():
        assert [k for k in delivered if k.startswith(f"{d}-")] == item_keys


def test_complete_marks_the_item_done_when_delivery_succeeded(engine):
    put(engine, "k1")
    [item] = outbox.claim(engine, at(0))
    complete(engine, item, 5)
    done = row(engine, item.id)
    assert (done.status, done.done_at, done.lease_until, done.attempts) == ("done", iso(at(5)), None, 1)
    assert outbox.claim(engine, at(100)) == []


def test_fail_schedules_a_retry_in_the_future_when_retryable(engine):
    put(engine, "k1")
    [item] = outbox.claim(engine, at(0))
    assert fail(engine, item, 10, base_seconds=4) == "pending"
    after = row(engine, item.id)
    assert after.status == "pending" and after.attempts == 1 and after.lease_until is None
    assert after.last_error == "ConnectionRefusedError: peer down"
    # first retry waits base * [0.5, 1.0]: between 2 and 4 seconds
    assert 2 <= due_seconds(engine, item.id) - 10 <= 4


def test_failed_head_blocks_its_destination_when_retry_is_not_due(engine):
    put(engine, "ehr-1", destination="ehr")
    put(engine, "ehr-2", destination="ehr")
    put(engine, "acc-1", destination="accounting")
    claimed = outbox.claim(engine, at(0))
    ehr_head = next(i for i in claimed if i.key == "ehr-1")
    fail(engine, ehr_head, 1, base_seconds=100)
    complete(engine, next(i for i in claimed if i.key == "acc-1"), 1)
    assert outbox.claim(engine, at(2)) == []
    [retry] = outbox.claim(engine, at(1000))
    assert (retry.key, retry.attempts) == ("ehr-1", 1)


def test_retry_delay_grows_when_failures_repeat(engine):
    put(engine, "k1")
    waits = []
    for n in range(4):
        now = n * 10_000
        [item] = outbox.claim(engine, at(now))
        fail(engine, item, now, max_attempts=10, base_seconds=1, cap_seconds=1000)
        waits.append(due_seconds(engine, item.id) - now)
    # attempt n waits 2**(n-1) seconds scaled by a jitter in [0.5, 1.0]
    for n, wait in enumerate(waits, start=1):
        assert 2 ** (n - 1) * 0.5 <= wait <= 2 ** (n - 1)
    assert waits[3] > waits[1] > waits[0]


def test_retry_delay_is_capped_when_many_failures_accumulate(engine):
    put(engine, "k1")
    for n in range(12):
        now = n * 100
        [item] = outbox.claim(engine, at(now))
        fail(engine, item, now, max_attempts=50, base_seconds=1, cap_seconds=30)
    assert item.attempts == 11
    assert 15 <= due_seconds(engine, item.id) - now <= 30


def test_item_becomes_dead_when_attempts_reach_max_attempts(engine):
    put(engine, "k1")
    statuses = []
    now = 0.0
    for _ in range(3):
        [item] = outbox.claim(engine, at(now))
        statuses.append(fail(engine, item, now, max_attempts=3))
        now += 1000
    assert statuses == ["pending", "pending", "dead"]
    dead = row(engine, item.id)
    assert (dead.status, dead.attempts, dead.last_error) == ("dead", 3, "ConnectionRefusedError: peer down")
    assert outbox.claim(engine, at(now + 10_000)) == []


def test_item_becomes_dead_at_once_when_failure_is_not_retryable(engine):
    put(engine, "k1")
    [item] = outbox.claim(engine, at(0))
    assert fail(engine, item, 1, max_attempts=20, retryable=False) == "dead"
    assert row(engine, item.id).attempts == 1


def test_dead_head_unblocks_the_next_item_when_destination_has_more(engine):
    put(engine, "k1")
    put(engine, "k2")
    [head] = outbox.claim(engine, at(0))
    fail(engine, head, 1, max_attempts=20, retryable=False)
    assert keys(outbox.claim(engine, at(2))) == ["k2"]


def test_fail_truncates_the_error_when_it_is_very_long(engine):
    put(engine, "k1")
    [item] = outbox.claim(engine, at(0))
    with engine.begin() as conn:
        outbox.fail(conn, item, at(1), "x" * 5000, max_attempts=1)
    assert len(row(engine, item.id).last_error) == 2000


def test_depth_counts_items_by_status_when_items_are_in_every_state(engine):
    with engine.connect() as conn:
        assert outbox.depth(conn) == {}
    for n in range(4):
        put(engine, f"k{n}", destination=f"d{n}")
    claimed = outbox.claim(engine, at(0))
    complete(engine, claimed[0], 1)
    fail(engine, claimed[1], 1, retryable=False)
    fail(engine, claimed[2], 1)
    with engine.connect() as conn:
        assert outbox.depth(conn) == {"pending": 2, "done": 1, "dead": 1}
