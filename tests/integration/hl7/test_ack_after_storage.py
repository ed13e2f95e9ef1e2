"""`hl7.ack_mode = "storage"`: the ACK follows validation and a durable write; the message is
applied just after, in arrival order, by `process_pending` (the applier thread in the server).

What the sender can be told at once (a malformed order, a missing consent, an unsupported
event) is still in the ACK; what needs the case store (an unknown order to cancel) ends the
stored message as `failed`, with the HL7 error its ACK would have carried.
"""

from __future__ import annotations

import json
import socket
from dataclasses import replace

from sqlalchemy import select

from connector.config import HttpSection
from connector.hl7.ack import read_ack
from connector.hl7.mllp import FrameReader, frame
from connector.hl7.parse import parse
from connector.runtime.server import RunningConnector
from connector.store import inbox, queries
from connector.store.schema import inbox as inbox_table
from connector.entrypoints import hl7_intake
from connector.runtime import hl7_applier
from connector.bootstrap import build
from tests.support.inbound import SENDER, adt, order, pid
from tests.support.wait import wait_until


def storage_mode(inbound):
    services = inbound.services
    config = services.config.model_copy(update={
        "hl7": services.config.hl7.model_copy(update={"ack_mode": "storage"})})
    return replace(services, config=config)


def rows(services) -> list[dict]:
    with services.store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(inbox_table).order_by(inbox_table.c.id))]


def test_order_is_acknowledged_before_it_opens_a_case_and_opens_it_when_applied(inbound):
    services = storage_mode(inbound)
    ack = read_ack(hl7_intake.handle(services, order("P-1"), "test"))
    assert ack.code == "AA"
    assert inbound.accession("P-1") is None
    assert [r["state"] for r in rows(services)] == ["pending"]

    assert hl7_applier.process_pending(services) == 1
    accession = inbound.accession("P-1")
    assert accession
    [row] = rows(services)
    assert (row["state"], row["accession"], row["outcome"]) == ("done", accession, "")
    assert hl7_applier.process_pending(services) == 0


def test_messages_are_applied_in_arrival_order_when_a_cancel_follows_its_order(inbound):
    services = storage_mode(inbound)
    for raw in (order("P-2"), order("P-2", control="CA")):
        assert read_ack(hl7_intake.handle(services, raw, "test")).code == "AA"
    hl7_applier.process_pending(services)
    assert inbound.case(inbound.accession("P-2"))["status"] == "CANCELLED"
    assert [r["state"] for r in rows(services)] == ["done", "done"]


def test_cancel_of_an_unknown_order_is_acknowledged_then_marked_failed_with_err_204(inbound):
    services = storage_mode(inbound)
    assert read_ack(hl7_intake.handle(services, order("NOPE", control="CA"), "test")).code == "AA"
    hl7_applier.process_pending(services)
    [row] = rows(services)
    assert row["state"] == "failed"
    [error] = json.loads(row["outcome"])
    assert (error["code"], error["location"]) == ("204", "ORC^1^2")
    [entry] = [a for a in inbound.audit("hl7.received") if a["detail"].get("applied")]
    assert entry["detail"]["applied"] == "failed" and entry["detail"]["errors"] == ["204"]
    with services.store.engine.connect() as conn:
        report = queries.health(conn, orthanc_reachable=True)
    assert report["inbox"] == {"pending": 0, "oldest_pending_at": None, "failed": 1}
    assert any("acknowledged but not applied" in p for p in report["problems"])


def test_invalid_order_is_refused_in_the_ack_and_never_applied_when_pid_is_missing(inbound):
    services = storage_mode(inbound)
    raw = order("P-3").replace(pid().encode(), b"PID|1")
    ack = read_ack(hl7_intake.handle(services, raw, "test"))
    assert ack.code == "AE" and ack.errors[0].hl7_code == "101"
    assert [r["state"] for r in rows(services)] == ["done"]
    assert hl7_applier.process_pending(services) == 0


def test_unsupported_event_is_rejected_ar_and_not_stored_when_acked_after_storage(inbound):
    services = storage_mode(inbound)
    raw = adt("A08").replace(b"ADT^A08^ADT_A01", b"ADT^A01^ADT_A01")
    ack = read_ack(hl7_intake.handle(services, raw, "test"))
    assert (ack.code, ack.errors[0].hl7_code) == ("AR", "201")
    assert rows(services) == []


def test_resent_message_gets_the_stored_ack_and_is_applied_once_when_pending(inbound):
    services = storage_mode(inbound)
    raw = order("P-4", control_id="SAME-1")
    first = hl7_intake.handle(services, raw, "test")
    assert hl7_intake.handle(services, raw, "test") == first
    hl7_applier.process_pending(services)
    assert hl7_intake.handle(services, raw, "test") == first
    assert len(rows(services)) == 1 and len(inbound.cases_of("IPP-1")) == 1


def test_batch_with_a_duplicate_inside_answers_both_and_stores_one_when_sent_together(inbound):
    services = storage_mode(inbound)
    raw = order("P-5", control_id="TWICE")
    acks = hl7_intake.handle_batch(services, [(raw, "a"), (order("P-6"), "b"), (raw, "c")])
    assert acks[0] == acks[2] and read_ack(acks[1]).code == "AA"
    assert len(rows(services)) == 2


def test_adt_update_is_applied_after_storage_when_the_patient_has_a_case(inbound):
    services = storage_mode(inbound)
    accession = inbound.open_case("P-7")
    assert read_ack(hl7_intake.handle(services, adt("A08", name="MARTIN^Hélène"),
                                       "test")).code == "AA"
    hl7_applier.process_pending(services)
    assert inbound.case(accession)["patient"]["name"] == "MARTIN^Hélène"


def test_pending_messages_are_applied_after_a_restart_when_the_first_run_stopped_early(inbound):
    services = storage_mode(inbound)
    for n in range(3):
        hl7_intake.handle(services, order(f"P-R{n}"), "test")
    services.store.engine.dispose()
    restarted = build(services.config)  # same data folder: what a new process sees
    with restarted.store.engine.connect() as conn:
        assert len(inbox.pending(conn, 10)) == 3
    while hl7_applier.process_pending(restarted):
        pass
    with restarted.store.engine.connect() as conn:
        assert inbox.backlog(conn) == (0, None)
    assert all(inbound.accession(f"P-R{n}") for n in range(3))
    restarted.store.close()


def test_running_connector_applies_orders_acknowledged_over_mllp_in_storage_mode(inbound):
    base = inbound.services.config
    config = base.model_copy(update={
        "hl7": base.hl7.model_copy(update={"ack_mode": "storage", "listen": "127.0.0.1:0"}),
        "orthanc": base.orthanc.model_copy(update={"managed": False}),
        "http": HttpSection(listen="127.0.0.1:0")})
    with RunningConnector(config) as running:
        with socket.create_connection(("127.0.0.1", running.hl7_port)) as sock:
            reader = FrameReader()
            for n in range(20):
                sock.sendall(frame(order(f"P-M{n}")))
                acks: list = []
                while not acks:
                    acks = reader.feed(sock.recv(65536))
                assert read_ack(acks[0]).code == "AA"

        def applied():
            with running.services.store.engine.connect() as conn:
                return inbox.backlog(conn)[0] == 0
        wait_until(applied, 30, "stored orders applied")
    assert all(inbound.accession(f"P-M{n}") for n in range(20))
    assert SENDER  # the placer numbers above are scoped to the `inbound` fixture's sender


def with_order_status(services):
    """The requester destination takes order status messages (ORM^O01)."""
    destinations = tuple(d.model_copy(update={"order_status": "ORM^O01"})
                         if d.role == "requester" else d for d in services.config.destinations)
    return replace(services, config=services.config.model_copy(
        update={"destinations": destinations}))


def test_requester_learns_of_an_acknowledged_order_that_could_not_be_applied(inbound):
    services = with_order_status(storage_mode(inbound))
    new, duplicate = order("DUP-1"), order("DUP-1")
    cancel, change = order("NOPE", control="CA"), order("NOPE-2", control="XO")
    for raw in (new, duplicate, cancel, change):
        assert read_ack(hl7_intake.handle(services, raw, "test")).code == "AA"
    hl7_applier.process_pending(services)
    assert [r["state"] for r in rows(services)] == ["done", "failed", "failed", "failed"]
    sent = [parse(json.loads(item["payload"])["message"].encode("utf-8"))
            for item in inbound.outbox("hl7.send")]
    unable = [m for m in sent if m.value("ORC-1") != "OK"]  # the first order was accepted
    assert [(m.value("ORC-1"), m.value("ORC-2"), m.value("ORC-3"), m.value("ORC-5"),
             m.value("ORC-16.1"), m.value("ORC-16.3")) for m in unable] == [
        ("UA", "DUP-1", "", "", "205", "HL70357"),
        ("UC", "NOPE", "", "", "204", "HL70357"),
        ("UX", "NOPE-2", "", "", "204", "HL70357")]
    assert all(m.control_id.startswith("RJ") and len(m.control_id) == 20 for m in unable)
    assert len({m.control_id for m in unable}) == 3
    assert unable[0].value("ORC-16.2") == "this placer order number already has a case"


def test_the_refusal_notice_is_queued_once_when_the_same_message_is_applied_again(inbound):
    services = with_order_status(storage_mode(inbound))
    hl7_intake.handle(services, order("NOPE", control="CA"), "test")
    hl7_applier.process_pending(services)
    with services.store.engine.begin() as conn:  # as if the applier had stopped before its commit
        conn.execute(inbox_table.update().values(state="pending"))
    hl7_applier.process_pending(services)
    assert len(inbound.outbox("hl7.send")) == 1


def test_no_refusal_notice_when_the_requester_takes_no_order_status(inbound):
    services = storage_mode(inbound)
    hl7_intake.handle(services, order("NOPE", control="CA"), "test")
    hl7_applier.process_pending(services)
    assert rows(services)[0]["state"] == "failed" and inbound.outbox("hl7.send") == []


def test_a_notice_that_cannot_be_built_does_not_hold_up_the_messages_behind(inbound,
                                                                            monkeypatch):
    services = with_order_status(storage_mode(inbound))

    def broken(*_args, **_kwargs):
        raise ValueError("cannot build")

    monkeypatch.setattr(hl7_applier.notify_status, "unable", broken)
    hl7_intake.handle(services, order("NOPE", control="CA"), "test")
    hl7_intake.handle(services, order("NEXT-1"), "test")
    hl7_applier.process_pending(services)
    assert [r["state"] for r in rows(services)] == ["failed", "done"]
    assert inbound.accession("NEXT-1")
