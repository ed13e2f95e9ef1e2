"""Inbox: the ACK stored per (sender, MSH-10)."""

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from connector.store import inbox
from connector.store.schema import inbox as inbox_table
from tests.support.store_samples import stamp

RAW = "MSH|^~\\&|DPI_CHU|CHU_NIMES|TELEDERM|TELEDERM|20261115092500||ORM^O01|MSG0001|P|2.5\rPID|||IPP1||LEFÈVRE^Hélène\r".encode()
ACK = b"MSH|^~\\&|TELEDERM|TELEDERM|DPI_CHU|CHU_NIMES|20261115092501||ACK^O01|A1|P|2.5\rMSA|AA|MSG0001\r"


def record(conn, sender="DPI_CHU|CHU_NIMES", control_id="MSG0001", ack=ACK, ack_code="AA",
           accession="TD00000001"):
    inbox.record(conn, sender=sender, control_id=control_id, message_type="ORM^O01",
                 received_at=stamp(), raw=RAW, ack=ack, ack_code=ack_code, accession=accession)


def test_stored_ack_is_none_when_message_was_never_received(engine):
    with engine.connect() as conn:
        assert inbox.stored_ack(conn, "DPI_CHU|CHU_NIMES", "MSG0001") is None


def test_stored_ack_returns_the_exact_bytes_when_message_was_recorded(engine):
    with engine.begin() as conn:
        record(conn)
    with engine.connect() as conn:
        assert inbox.stored_ack(conn, "DPI_CHU|CHU_NIMES", "MSG0001") == ACK


def test_record_keeps_raw_bytes_and_fields_when_message_has_accents(engine):
    with engine.begin() as conn:
        record(conn, ack_code="AE", accession=None)
    with engine.connect() as conn:
        row = conn.execute(select(inbox_table)).one()
    assert row.raw == RAW
    assert (row.message_type, row.ack_code, row.accession) == ("ORM^O01", "AE", None)


def test_stored_ack_is_none_when_same_control_id_comes_from_another_sender(engine):
    with engine.begin() as conn:
        record(conn)
    with engine.connect() as conn:
        assert inbox.stored_ack(conn, "OTHER|SITE", "MSG0001") is None


def test_record_accepts_same_control_id_when_senders_differ(engine):
    other_ack = ACK.replace(b"DPI_CHU", b"OTHER")
    with engine.begin() as conn:
        record(conn)
        record(conn, sender="OTHER|SITE", ack=other_ack)
    with engine.connect() as conn:
        assert inbox.stored_ack(conn, "OTHER|SITE", "MSG0001") == other_ack
        assert inbox.stored_ack(conn, "DPI_CHU|CHU_NIMES", "MSG0001") == ACK


def test_record_is_refused_when_sender_and_control_id_repeat(engine):
    with engine.begin() as conn:
        record(conn)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        record(conn, ack=b"MSA|AA|other")
    with engine.connect() as conn:
        assert inbox.stored_ack(conn, "DPI_CHU|CHU_NIMES", "MSG0001") == ACK
