"""The report as a medical document: MDM^T02 / MDM^T10 / MDM^T04 (structure MDM_T02), v2.5.

For requesters configured with `report_message = "MDM^T02"`. The trigger follows the report
status, as the ANS "CDA in HL7 v2" profile maps it (reference hl7-and-billing.md 3.3):

| report status | trigger | meaning | TXA-19 availability |
|---|---|---|---|
| F (final) | T02 | original document notification and content | AV |
| C (corrected) | T10 | document replacement notification and content (TXA-13 = the replaced version) | AV |
| D (withdrawn) | T04 | document status change notification and content (TXA-21 = the reason) | CA (deleted) |

Segments: MSH, EVN (EVN-1 the trigger, EVN-2 `now`), PID, PV1, the order (ORC + OBR, as in
the ORU: `oru.order_segments`), TXA, then the same OBX as the ORU (`oru.observation_segments`:
report lines, conduct, Study Instance UID, viewer link, PDF embedded or by reference),
OBX-11 F / C / D.

TXA: 1 set id `1`; 2 document type `CN` (consultation, table 0270); 3 content presentation `TX`
(table 0191: the OBX TX lines are the document; the PDF is the same document as ED); 4 activity
and 6 origination date/time = signature time; 5 primary activity provider and 9 originator =
the signing dermatologist (XCN); 12 unique document number `<document uid>^<namespace>`
(the SOP Instance UID of the report's Encapsulated PDF in the archive, so one document has one
number everywhere); 13 parent document number (T10 only); 14 placer and 15 filler order
numbers; 17 completion status `LA` (legally authenticated: the report is signed); 19
availability; 21 change reason (T04); 22 authentication person and time (PPN).
"""

from __future__ import annotations

from connector.domain.model import Order, Report, ResultStatusValues

from .oru import observation_segments, order_segments
from .segments import HD, escape, msh, pid, ppn, pv1_outpatient, segment, xcn

_FINAL = ResultStatusValues.FINAL.value
_CORRECTED = ResultStatusValues.CORRECTED.value
_DELETED = ResultStatusValues.DELETED.value
TRIGGERS = {_FINAL: "T02", _CORRECTED: "T10", _DELETED: "T04"}
AVAILABILITY = {_FINAL: "AV", _CORRECTED: "AV", _DELETED: "CA"}  # table 0273: available / deleted
DOCUMENT_TYPE = "CN"        # table 0270: consultation
CONTENT_PRESENTATION = "TX"  # table 0191
COMPLETION = "LA"           # table 0271: legally authenticated


def trigger_for(status: str) -> str:
    """The MDM trigger event of a report status (F, C, D)."""
    try:
        return TRIGGERS[status]
    except KeyError:
        raise ValueError(f"report status must be F, C or D, got {status!r}") from None


def build_mdm(*, control_id: str, now: str, case_accession: str, study_uid: str, order: Order,
              report: Report, conduct_label: str, pdf: bytes, document_id: str,
              parent_document_id: str = "", change_reason: str = "", viewer_url: str = "",
              pdf_url: str = "", namespace: str = "TELEDERM", sending: tuple[HD, HD] = ("TELEDERM", "TELEDERM"),
              receiving: tuple[HD, HD] = ("", ""), follow_up: str = "") -> str:
    """The MDM text (segments separated by CR); encode it with `parse.encode`.

    `document_id` is this version's unique document number; `parent_document_id` the version it
    replaces (a correction, T10); `change_reason` why it changes (a withdrawal, T04). The PDF
    goes as in the ORU (`oru.observation_segments`): by reference, embedded, or not at all."""
    trigger = trigger_for(report.status)
    if report.status == _CORRECTED and not parent_document_id:
        raise ValueError("a corrected report (MDM^T10) needs the document it replaces")
    if not document_id:
        raise ValueError("an MDM needs a unique document number (TXA-12)")
    ns = escape(namespace)
    txa = segment(
        "TXA", "1", DOCUMENT_TYPE, CONTENT_PRESENTATION, report.signed_at,
        xcn(report.specialist), report.signed_at, "", "", xcn(report.specialist), "", "",
        f"{escape(document_id)}^{ns}",
        f"{escape(parent_document_id)}^{ns}" if report.status == _CORRECTED else "",
        escape(order.placer_order_number), escape(case_accession), "", COMPLETION, "",
        AVAILABILITY[report.status], "", escape(change_reason) if report.status == _DELETED else "",
        ppn(report.specialist, report.signed_at))
    lines = [
        msh(sending=sending, receiving=receiving, now=now,
            message_type=f"MDM^{trigger}^MDM_T02", control_id=control_id),
        segment("EVN", trigger, now),
        pid(order.patient),
        pv1_outpatient(),
        *order_segments(now=now, case_accession=case_accession, order=order, report=report),
        txa,
        *observation_segments(study_uid=study_uid, report=report, conduct_label=conduct_label,
                              pdf=pdf, viewer_url=viewer_url, pdf_url=pdf_url,
                              follow_up=follow_up),
    ]
    return "\r".join(lines) + "\r"
