"""IHE ATNA: with `[audit] syslog`, every audit row also goes through the outbox as a DICOM
PS3.15 audit message over syslog. A collector started by the test (tests/support/syslog.py)
receives, for a report submitted by ORU^R01, a well-formed RFC 5424 message whose XML names
the event (Patient Record, created), the specialist's system as the requestor, the connector
as the audit source, and the patient by identifier only; over TCP, TLS and UDP."""

import ssl
import xml.etree.ElementTree as ET

import pytest

from connector.bootstrap import build
from connector.config import Destination, load_config
from connector.store.audit import ATNA_LINE
from tests.support.inbound import Inbound, oru
from tests.support.net import unused_url
from tests.support.peers import RecordingPeer
from tests.support.syslog import SyslogCollector, parse
from tests.support.cli import EXAMPLE_DEVICES


def inbound_to(tmp_path, syslog_env: dict) -> Inbound:
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    config = load_config(None, environ={
        **EXAMPLE_DEVICES, "TELEDERM_DATA_DIR": str(tmp_path / "data"),
        "TELEDERM_ORTHANC_URL": unused_url(), **syslog_env})
    services = build(config.model_copy(update={"destinations": (
        Destination(name="ehr", role="requester", address=f"127.0.0.1:{ehr.port}"),
        Destination(name="accounting", role="accounting",
                    address=f"127.0.0.1:{accounting.port}"))}))
    return Inbound(services, ehr, accounting)


@pytest.fixture
def collector_and_inbound(request, tmp_path, pki):
    scheme = request.param
    tls = None
    env = {}
    if scheme == "tls":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(pki.server_cert, pki.server_key)
        env = {"TELEDERM_AUDIT_SYSLOG_CA_FILE": str(pki.ca)}
    collector = SyslogCollector(scheme, tls=tls).start()
    inbound = inbound_to(tmp_path, {"TELEDERM_AUDIT_SYSLOG": collector.url, **env})
    yield collector, inbound
    inbound.services.store.close()
    inbound.ehr.stop()
    inbound.accounting.stop()
    collector.stop()


@pytest.mark.parametrize("collector_and_inbound", ["tcp", "tls", "udp"], indirect=True)
def test_a_report_submission_reaches_the_repository_as_a_dicom_audit_message(
        collector_and_inbound):
    collector, inbound = collector_and_inbound
    accession = inbound.open_case("PL-ATNA", images=1)
    assert inbound.send(oru(accession=accession, placer="PL-ATNA")).code == "AA"
    (row,) = inbound.audit("report.final")
    inbound.drain(ATNA_LINE)
    assert collector.errors == []
    reports = []
    for raw in collector.messages:
        message = parse(raw)
        assert (message.pri, message.version, message.app_name, message.msgid) == (
            "85", "1", "telederm", "IHE+RFC-3881")
        root = ET.fromstring(message.msg)  # well-formed XML, or this raises
        assert root.tag == "AuditMessage"
        if root.find("EventIdentification/EventTypeCode").get("csd-code") == "report.final":
            reports.append(root)
    (report,) = reports
    ident = report.find("EventIdentification")
    assert ident.get("EventActionCode") == "C" and ident.get("EventOutcomeIndicator") == "0"
    assert ident.get("EventDateTime") == row["at"]
    assert (ident.find("EventID").get("csd-code"), ident.find("EventID").get("codeSystemName")
            ) == ("110110", "DCM")
    requestor, connector = report.findall("ActiveParticipant")
    assert requestor.get("UserID") == row["actor"] and requestor.get("UserIsRequestor") == "true"
    assert connector.get("UserIsRequestor") == "false"
    source = report.find("AuditSourceIdentification")
    assert source.get("AuditEnterpriseSiteID") == inbound.services.config.facility.id
    assert source.find("AuditSourceTypeCode").get("csd-code") == "4"
    patient, study = report.findall("ParticipantObjectIdentification")
    case = inbound.case(accession)
    assert (patient.get("ParticipantObjectTypeCode"), patient.get("ParticipantObjectTypeCodeRole"),
            patient.get("ParticipantObjectID")) == ("1", "1", case["patient"]["id"])
    assert study.get("ParticipantObjectID") == case["study_instance_uid"]
    assert study.find("ParticipantObjectDescription/Accession").get("Number") == accession
    text = b"".join(collector.messages).decode("utf-8")
    assert "DUPONT" not in text and "Hélène" not in text  # no patient name leaves
    assert "Naevus" not in text  # nor the report's text
