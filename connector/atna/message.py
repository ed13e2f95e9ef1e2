"""One audit event as a DICOM audit message (PS3.15 A.5, the RFC 3881 schema as DICOM
refined it): EventIdentification, the active participants, AuditSourceIdentification and the
participant objects.

Why a table of our actions: the audit trail says what happened in the connector's words
(`report.final`, `case.read`, `ui.login`); a repository files events by DICOM's EventID
(CID 403) and action code (C, R, U, D, E). `EVENTS` maps each action family onto them; an
action not listed is a Patient Record execute ("E"), never dropped.

What goes in: who (the actor as our audit row names it, and the connector as the other
participant), where from when known, the outcome, and the objects: the patient by
identifier only (PS3.15 identifies the patient by ID; no name, no birth date) and the study
with its accession number. Nothing else of the case leaves.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

# (csd-code, originalText) of DICOM's EventID codes (CID 403, coding scheme DCM)
APPLICATION_ACTIVITY = ("110100", "Application Activity")
INSTANCES_ACCESSED = ("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = ("110104", "DICOM Instances Transferred")
EXPORT = ("110106", "Export")
ORDER_RECORD = ("110109", "Order Record")
PATIENT_RECORD = ("110110", "Patient Record")
USER_AUTHENTICATION = ("110114", "User Authentication")
SECURITY_ALERT = ("110113", "Security Alert")

# Our action (exact, else its family before the dot) -> (EventID, EventActionCode)
EVENTS: dict[str, tuple[tuple[str, str], str]] = {
    "report.final": (PATIENT_RECORD, "C"),
    "report.corrected": (PATIENT_RECORD, "U"),
    "report.withdrawn": (PATIENT_RECORD, "D"),
    "report.pdf_read": (PATIENT_RECORD, "R"),
    "report.resent": (EXPORT, "R"),
    "report.pdf_by_reference": (EXPORT, "R"),
    "case.read": (PATIENT_RECORD, "R"),
    "case.opened": (ORDER_RECORD, "C"),
    "case.cancelled": (ORDER_RECORD, "D"),
    "order": (ORDER_RECORD, "U"),
    "case": (ORDER_RECORD, "U"),
    "image.received": (INSTANCES_TRANSFERRED, "C"),
    "image.attached": (INSTANCES_TRANSFERRED, "C"),
    "image.refused": (INSTANCES_TRANSFERRED, "C"),
    "image": (INSTANCES_ACCESSED, "R"),
    "patient": (PATIENT_RECORD, "U"),
    "ui.login": (USER_AUTHENTICATION, "E"),
    "user": (SECURITY_ALERT, "E"),
    "token": (SECURITY_ALERT, "E"),
    "config": (APPLICATION_ACTIVITY, "E"),
}
DEFAULT_EVENT = (PATIENT_RECORD, "E")
SUCCESS, MINOR_FAILURE = "0", "4"  # EventOutcomeIndicator
FAILED_ACTIONS = ("image.refused",)  # actions that record something refused


@dataclass(frozen=True)
class AuditEvent:
    """What one audit row says, with the case's identifiers looked up for it."""

    at: str                      # ISO 8601 instant, with its offset
    actor: str                   # "specialist:dr-leroy", "ui:alice", "dicom:CAM@10.0.0.5:4000"
    action: str
    outcome_ok: bool = True
    peer: str = ""               # the requestor's network address, when known
    accession: str = ""
    patient_id: str = ""
    study_uid: str = ""


@dataclass(frozen=True)
class AuditSource:
    """The connector as the audit source: its site (facility id) and its own name."""

    site_id: str
    source_id: str
    host: str


def event_of(action: str) -> tuple[tuple[str, str], str]:
    return EVENTS.get(action) or EVENTS.get(action.partition(".")[0]) or DEFAULT_EVENT


def _code(parent: ET.Element, tag: str, code: str, scheme: str, text: str) -> ET.Element:
    return ET.SubElement(parent, tag, {"csd-code": code, "codeSystemName": scheme,
                                       "originalText": text})


def build(event: AuditEvent, source: AuditSource) -> bytes:
    """The audit message as UTF-8 XML bytes."""
    (event_id, action_code) = event_of(event.action)
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(root, "EventIdentification", {
        "EventActionCode": action_code, "EventDateTime": event.at,
        "EventOutcomeIndicator": SUCCESS if event.outcome_ok else MINOR_FAILURE})
    _code(ident, "EventID", event_id[0], "DCM", event_id[1])
    _code(ident, "EventTypeCode", event.action[:64], "TELEDERM", event.action)
    requestor = {"UserID": event.actor, "UserIsRequestor": "true"}
    if event.peer:
        requestor |= {"NetworkAccessPointID": event.peer.rpartition(":")[0] or event.peer,
                      "NetworkAccessPointTypeCode": "2"}  # 2: IP address
    ET.SubElement(root, "ActiveParticipant", requestor)
    ET.SubElement(root, "ActiveParticipant", {
        "UserID": source.source_id, "UserIsRequestor": "false",
        "NetworkAccessPointID": source.host, "NetworkAccessPointTypeCode": "1"})  # 1: name
    audit_source = ET.SubElement(root, "AuditSourceIdentification", {
        "AuditEnterpriseSiteID": source.site_id, "AuditSourceID": source.source_id})
    _code(audit_source, "AuditSourceTypeCode", "4", "DCM", "Application Server Process")
    if event.patient_id:
        patient = ET.SubElement(root, "ParticipantObjectIdentification", {
            "ParticipantObjectID": event.patient_id, "ParticipantObjectTypeCode": "1",
            "ParticipantObjectTypeCodeRole": "1"})  # 1 Person, 1 Patient
        _code(patient, "ParticipantObjectIDTypeCode", "2", "RFC-3881", "Patient Number")
    if event.study_uid:
        study = ET.SubElement(root, "ParticipantObjectIdentification", {
            "ParticipantObjectID": event.study_uid, "ParticipantObjectTypeCode": "2",
            "ParticipantObjectTypeCodeRole": "3"})  # 2 System Object, 3 Report
        _code(study, "ParticipantObjectIDTypeCode", "110180", "DCM", "Study Instance UID")
        if event.accession:
            description = ET.SubElement(study, "ParticipantObjectDescription")
            ET.SubElement(description, "Accession", {"Number": event.accession})
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
