"""Outbox pieces the worker's lanes and restarts rely on: claiming one destination's head or all
but some, leases left by a dead process, and each destination's last failure kept after a
later success."""

from connector.store import outbox
from tests.support.store_samples import at, stamp


def put(engine, key, destination="ehr", seconds=0):
    with engine.begin() as conn:
        outbox.enqueue(conn, kind="hl7.send", destination=destination, key=key,
                       payload=b"MSH|...", accession="TD00000001", now=stamp(seconds))


def keys(items):
    return [i.key for i in items]


def test_claim_takes_the_head_of_one_destination_or_of_all_but_the_excluded(engine):
    put(engine, "e1", "ehr")
    put(engine, "e2", "ehr")
    put(engine, "a1", "accounting")
    put(engine, "r1", "archive")
    assert keys(outbox.claim(engine, at(1), destination="accounting")) == ["a1"]
    assert keys(outbox.claim(engine, at(1), exclude=("archive",))) == ["e1"]  # a1 is leased
    assert outbox.claim(engine, at(1), destination="ehr") == []  # its head is leased: e2 waits
    assert keys(outbox.claim(engine, at(1))) == ["r1"]


def test_claim_in_takes_the_next_item_in_the_transaction_that_completes_the_previous(engine):
    put(engine, "e1")
    put(engine, "e2")
    (first,) = outbox.claim(engine, at(1))
    with engine.begin() as conn:
        outbox.complete(conn, first.id, at(2))
        assert keys(outbox.claim_in(conn, at(2), limit=1, destination="ehr")) == ["e2"]


def test_release_leases_frees_what_a_dead_process_held(engine):
    put(engine, "e1")
    put(engine, "a1", "accounting")
    assert len(outbox.claim(engine, at(1), lease_seconds=60)) == 2
    assert outbox.claim(engine, at(2)) == []  # leased for another minute
    with engine.begin() as conn:
        assert outbox.release_leases(conn) == 2
    assert keys(outbox.claim(engine, at(2))) == ["e1", "a1"]


def test_release_gives_back_one_claimed_item(engine):
    put(engine, "e1")
    (item,) = outbox.claim(engine, at(1))
    with engine.begin() as conn:
        outbox.release(conn, item.id)
    assert keys(outbox.claim(engine, at(1))) == ["e1"]


def test_destinations_keep_the_last_failure_after_a_later_success(engine):
    put(engine, "a1", "accounting")
    put(engine, "e1", "ehr")
    with engine.connect() as conn:
        assert outbox.destinations(conn)["accounting"]["last_failure"] is None
    items = {i.key: i for i in outbox.claim(engine, at(1))}
    with engine.begin() as conn:
        outbox.fail(conn, items["a1"], at(5), "DeliveryError: connection refused", max_attempts=5)
        outbox.complete(conn, items["e1"].id, at(5))
    (again,) = outbox.claim(engine, at(30))
    with engine.begin() as conn:
        outbox.complete(conn, again.id, at(31))
    with engine.connect() as conn:
        health = outbox.destinations(conn)
    accounting = health["accounting"]
    assert accounting["last_success"] == stamp(31) and accounting["last_error"] == ""
    assert accounting["last_failure"] == {"at": stamp(5),
                                          "error": "DeliveryError: connection refused"}
    assert health["ehr"]["last_failure"] is None
