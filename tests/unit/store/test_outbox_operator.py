"""Operator actions on the outbox: list, retry a dead item, discard one, per-destination health."""

from connector.store import outbox
from tests.support.store_samples import at, stamp


def put(engine, key, destination="ehr", seconds=0):
    with engine.begin() as conn:
        outbox.enqueue(conn, kind="hl7.send", destination=destination, key=key,
                       payload=b"MSH|secret patient data", accession="TD00000001",
                       now=stamp(seconds))


def kill(engine, item, seconds=1, error="AE from peer"):
    with engine.begin() as conn:
        outbox.fail(conn, item, at(seconds), error, max_attempts=5, retryable=False)


def test_items_lists_newest_first_without_payloads(engine):
    put(engine, "a")
    put(engine, "b")
    with engine.connect() as conn:
        rows = outbox.items(conn)
    assert [r["status"] for r in rows] == ["pending", "pending"]
    assert rows[0]["id"] > rows[1]["id"]
    assert all("payload" not in r for r in rows)


def test_retry_puts_a_dead_item_back_at_the_head_of_its_destination(engine):
    put(engine, "first")
    put(engine, "second")
    (head,) = outbox.claim(engine, at(0))
    kill(engine, head)
    (next_item,) = outbox.claim(engine, at(2))
    assert next_item.key == "second"  # the dead head no longer blocks its destination
    with engine.begin() as conn:
        outbox.complete(conn, next_item.id, at(3))
        assert outbox.retry(conn, head.id, at(4)) is True
    (again,) = outbox.claim(engine, at(4))
    assert (again.key, again.attempts) == ("first", 0)


def test_discard_marks_the_item_with_the_reason_and_it_is_never_claimed(engine):
    put(engine, "only")
    (item,) = outbox.claim(engine, at(0))
    kill(engine, item)
    with engine.begin() as conn:
        assert outbox.discard(conn, item.id, "peer retired", at(5)) is True
        assert outbox.retry(conn, 999, at(5)) is False
    with engine.connect() as conn:
        (row,) = outbox.items(conn)
    assert row["status"] == "discarded" and row["last_error"] == "discarded: peer retired"
    assert outbox.claim(engine, at(100)) == []


def test_discard_refuses_an_item_already_done(engine):
    put(engine, "done")
    (item,) = outbox.claim(engine, at(0))
    with engine.begin() as conn:
        outbox.complete(conn, item.id, at(1))
        assert outbox.discard(conn, item.id, "oops", at(2)) is False


def test_destinations_report_last_success_pending_and_last_error(engine):
    put(engine, "e1", "ehr")
    put(engine, "a1", "accounting")
    put(engine, "a2", "accounting", seconds=1)
    items = {i.key: i for i in outbox.claim(engine, at(2))}
    with engine.begin() as conn:
        outbox.complete(conn, items["e1"].id, at(3))
        outbox.fail(conn, items["a1"], at(3), "connection refused", max_attempts=5)
    with engine.connect() as conn:
        health = outbox.destinations(conn)
    assert health["ehr"]["last_success"] == stamp(3) and health["ehr"]["pending"] == 0
    assert health["accounting"]["pending"] == 2
    assert health["accounting"]["oldest_pending"] == stamp(0)
    assert health["accounting"]["last_error"] == "connection refused"
    assert health["accounting"]["last_success"] is None
