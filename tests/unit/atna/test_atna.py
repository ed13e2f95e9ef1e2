"""The DICOM audit message and its syslog framing, as bytes (connector/atna/)."""

import xml.etree.ElementTree as ET

import pytest

from connector.atna import message, syslog

SOURCE = message.AuditSource(site_id="HUB01", source_id="TELEDERM", host="connector.local")


def test_actions_map_to_dicom_event_ids_by_exact_name_then_family_then_default():
    assert message.event_of("report.final") == (message.PATIENT_RECORD, "C")
    assert message.event_of("case.read") == (message.PATIENT_RECORD, "R")
    assert message.event_of("order.changed") == (message.ORDER_RECORD, "U")
    assert message.event_of("token.revoked") == (message.SECURITY_ALERT, "E")
    assert message.event_of("something.new") == message.DEFAULT_EVENT


def test_a_refused_image_is_a_failure_and_the_peer_is_its_address():
    event = message.AuditEvent(at="2026-12-03T10:00:00+00:00", actor="dicom:CAM@10.0.0.5:4000",
                               action="image.refused", outcome_ok=False, peer="10.0.0.5:4000")
    root = ET.fromstring(message.build(event, SOURCE))
    assert root.find("EventIdentification").get("EventOutcomeIndicator") == "4"
    requestor = root.find("ActiveParticipant")
    assert (requestor.get("NetworkAccessPointID"),
            requestor.get("NetworkAccessPointTypeCode")) == ("10.0.0.5", "2")
    assert root.find("ParticipantObjectIdentification") is None  # no case: no object


def test_the_message_is_rfc5424_with_a_bom_and_octet_counted_for_tcp():
    framed = syslog.frame(b"<AuditMessage/>", timestamp="2026-12-03T10:00:00+00:00",
                          hostname="a host\u00e9", procid="42")
    assert framed == (b"<85>1 2026-12-03T10:00:00+00:00 ahost telederm 42 IHE+RFC-3881 - "
                      b"\xef\xbb\xbf<AuditMessage/>")
    assert syslog.octet_counted(b"abc") == b"3 abc"
    assert syslog.frame(b"x", timestamp="", hostname="").split(b" ")[1:3] == [b"-", b"-"]


def test_targets_parse_and_a_datagram_too_large_is_refused():
    assert syslog.Target.parse("udp://[::1]:514") == syslog.Target("udp", "::1", 514)
    with pytest.raises(OSError, match="too large for UDP"):
        syslog.send(syslog.Target("udp", "127.0.0.1", 9), b"x" * (syslog.MAX_UDP + 1))
