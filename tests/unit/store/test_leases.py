"""Claims shared by several processes on one store: lease rows (`leases.hold`), advisory
locks held by a transaction (`leases.exclusive`), and outbox and inbox rows claimed
`FOR UPDATE SKIP LOCKED`. On PostgreSQL two engines stand for two processes; on SQLite (one
serving process) every lease is held at once and nothing is written."""

import pytest
from sqlalchemy import func, select, text

from connector.store import inbox, leases, outbox
from connector.store.db import make_engine, migrate
from connector.store.schema import leases as leases_table
from tests.support.store_samples import TEST_AUDIT_KEY, at, stamp


@pytest.fixture
def pair(postgres_server):
    """Two engines on one fresh PostgreSQL database: what two connector processes see."""
    url = postgres_server.fresh_url()
    first, second = make_engine(url, TEST_AUDIT_KEY), make_engine(url, TEST_AUDIT_KEY)
    migrate(first)
    yield first, second
    first.dispose()
    second.dispose()


def hold(engine, owner, seconds_now, name="orthanc-changes", seconds=30):
    with engine.begin() as conn:
        return leases.hold(conn, name, owner, at(seconds_now), seconds)


def test_every_lease_is_held_and_nothing_written_when_the_store_is_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'telederm.db'}", TEST_AUDIT_KEY)
    migrate(engine)
    assert hold(engine, "a", 0) and hold(engine, "b", 1)
    with engine.begin() as conn:
        assert leases.exclusive(conn, "inbox-applier")
        assert conn.execute(select(func.count()).select_from(leases_table)).scalar() == 0
    engine.dispose()


@pytest.mark.postgres
def test_a_lease_is_refused_to_another_owner_until_it_expires(pair):
    first, second = pair
    assert hold(first, "node-a", 0)
    assert not hold(second, "node-b", 10)
    assert hold(first, "node-a", 20)            # renewed until 50
    assert not hold(second, "node-b", 45)
    assert hold(second, "node-b", 51)           # node-a renewed nothing: taken over
    assert not hold(first, "node-a", 52)        # and node-a does not get it back
    with first.connect() as conn:
        [row] = leases.holders(conn)
    assert (row["name"], row["owner"], row["expires_at"]) == ("orthanc-changes", "node-b",
                                                              stamp(81))


@pytest.mark.postgres
def test_a_released_lease_is_taken_at_once_by_another_owner(pair):
    first, second = pair
    assert hold(first, "node-a", 0)
    with first.begin() as conn:
        assert not leases.release(conn, "orthanc-changes", "node-b")  # not its to give
        assert leases.release(conn, "orthanc-changes", "node-a")
    assert hold(second, "node-b", 1)


@pytest.mark.postgres
def test_leases_of_different_names_are_held_apart(pair):
    first, second = pair
    assert hold(first, "node-a", 0, name="routing-timers")
    assert hold(second, "node-b", 0, name="orthanc-changes")


@pytest.mark.postgres
def test_an_advisory_lock_is_refused_while_another_transaction_holds_it(pair):
    first, second = pair
    with first.begin() as holding:
        assert leases.exclusive(holding, "inbox-applier")
        with second.begin() as other:
            assert not leases.exclusive(other, "inbox-applier")
            assert leases.exclusive(other, "something-else")
    with second.begin() as conn:  # released with the first transaction
        assert leases.exclusive(conn, "inbox-applier")


def _no_waiting(conn):
    """Make a statement that waits for a row lock fail after a second (instead of waiting)."""
    conn.execute(text("SET LOCAL lock_timeout = '1s'"))


@pytest.mark.postgres
def test_outbox_heads_claimed_by_another_transaction_are_skipped_not_waited_for(pair):
    first, second = pair
    with first.begin() as conn:
        for key, destination in (("oru:1", "ehr"), ("dft:1", "accounting")):
            outbox.enqueue(conn, kind="hl7.send", destination=destination, key=key,
                           payload=b"MSH|...", accession="TD00000001", now=stamp(0))
    with first.begin() as claiming:
        [head] = outbox.claim_in(claiming, at(1), 60, limit=1)
        with second.begin() as other:
            _no_waiting(other)
            [other_head] = outbox.claim_in(other, at(1), 60)
        assert {head.key, other_head.key} == {"oru:1", "dft:1"}


@pytest.mark.postgres
def test_inbox_messages_claimed_by_another_transaction_are_skipped_until_it_ends(pair):
    first, second = pair
    with first.begin() as conn:
        for n in (1, 2):
            inbox.record(conn, sender="DPI|CHU", control_id=f"M{n}", message_type="ORM^O01",
                         received_at=stamp(n), raw=b"MSH|...", ack=b"MSH|...", ack_code="AA",
                         accession=None, state="pending")
    with first.begin() as applying:
        claimed = inbox.pending(applying, 10)
        assert len(claimed) == 2
        with second.begin() as other:
            _no_waiting(other)
            assert inbox.pending(other, 10) == []
        inbox.finish(applying, claimed[0].id, "done", accession=None)
    with second.begin() as other:  # the first one's, finished, is never taken again
        assert [row.id for row in inbox.pending(other, 10)] == [claimed[1].id]


@pytest.mark.postgres
def test_a_case_loaded_by_one_transaction_waits_for_it_in_another(pair):
    """A step's load-decide-save on a case is not interleaved with another process's: the
    second load waits for the first transaction (here: gives up after a second)."""
    from sqlalchemy.exc import OperationalError

    from connector.store import cases
    from tests.support.store_samples import open_case

    first, second = pair
    with first.begin() as conn:
        case = open_case(conn)
    with first.begin() as holding:
        cases.load(holding, case.accession)
        with second.begin() as other:
            _no_waiting(other)
            with pytest.raises(OperationalError, match="lock timeout"):
                cases.load(other, case.accession)
