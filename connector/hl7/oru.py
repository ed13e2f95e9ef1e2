"""The report going back to the requester: ORU^R01^ORU_R01, v2.5, UTF-8.

One OBX TX per report line (receivers that show OBX-5 verbatim keep the layout), then the
conduct (CE), when a visit was asked of the scheduling systems the follow-up (CE `FOLLOWUP`,
`requested-routine` / `requested-urgent`), the Study Instance UID, an optional viewer link (RP) and the signed PDF: embedded
(ED, base64, never wrapped), or by reference (RP: the URL of our API where the requester
fetches it with its credentials), or left out. OBR-25 and every OBX-11 carry the report status
(F final, C corrected).

HL7 v2.5 limits one field to 65,536 characters (`MAX_FIELD`; nHapi enforces it): an ED whose
OBX-5 would exceed it is refused here, and the sender sends that PDF by reference
(`pdf_fits`).

A withdrawn report (status D) is sent as the same observations with OBX-11 `D` (delete, table
0085), and OBR-25 `C` (table 0123 has no "deleted": a final result only changes through a
correction, which here removes every observation).

`order_segments` (ORC + OBR) and `observation_segments` (the OBX) are shared with the MDM form
of the report (`mdm.py`), so both carry the same order references and the same content.
"""

from __future__ import annotations

import base64

from connector.domain.model import Order, Report, ResultStatusValues

from .segments import HD, cnn, escape, msh, pid, pv1_outpatient, segment, xcn

SERVICE = "TELEDERM^Tele-expertise dermatologie^L"  # OBR-4, our local service code
REPORT_TEXT = "REPORT^Compte rendu^L"
CONDUCT = "CONDUCT^Conduite a tenir^L"
STUDY_UID = "110180^Study Instance UID^DCM"
VIEWER = "VIEWER^Visualiseur d'images^L"
PDF = "PDF^Compte rendu PDF^L"
FOLLOW_UP = "FOLLOWUP^Suivi en consultation^L"
# OBX-5 of the follow-up observation: the visit the conduct calls for was asked of the
# scheduling systems, with this urgency (workflow/request_follow_up.py)
FOLLOW_UP_VALUES = {"routine": "requested-routine^Consultation demandee^L",
                    "urgent": "requested-urgent^Consultation urgente demandee^L"}
MAX_FIELD = 65_536  # characters in one field (HL7 v2.5)
_ED_PDF = "^AP^PDF^Base64^"  # OBX-5 ED: source application, type, subtype, encoding, data


def pdf_fits(pdf: bytes) -> bool:
    """Whether `pdf` embedded (OBX-5 ED, base64) stays within one v2.5 field."""
    return len(_ED_PDF) + 4 * ((len(pdf) + 2) // 3) <= MAX_FIELD


def build_oru(*, control_id: str, now: str, case_accession: str, study_uid: str, order: Order,
              report: Report, conduct_label: str, pdf: bytes, viewer_url: str = "",
              pdf_url: str = "", sending: tuple[HD, HD] = ("TELEDERM", "TELEDERM"),
              receiving: tuple[HD, HD] = ("", ""), follow_up: str = "") -> str:
    """The ORU text (segments separated by CR); encode it with `parse.encode`. The PDF goes by
    reference when `pdf_url` is given, embedded when `pdf` is, else not at all."""
    lines = [
        msh(sending=sending, receiving=receiving, now=now, message_type="ORU^R01^ORU_R01",
            control_id=control_id),
        pid(order.patient),
        pv1_outpatient(),
        *order_segments(now=now, case_accession=case_accession, order=order, report=report),
        *observation_segments(study_uid=study_uid, report=report, conduct_label=conduct_label,
                              pdf=pdf, viewer_url=viewer_url, pdf_url=pdf_url,
                              follow_up=follow_up),
    ]
    return "\r".join(lines) + "\r"


def order_segments(*, now: str, case_accession: str, order: Order, report: Report) -> list[str]:
    """ORC (RE: observations follow) and OBR: the requester's and our order numbers, the
    requester, the signature time (OBR-7), OBR-22 `now`, OBR-25 the result status (table 0123:
    F, C, and C for a withdrawal) and the signing dermatologist (OBR-32)."""
    result_status = (ResultStatusValues.CORRECTED.value
                     if report.status == ResultStatusValues.DELETED else report.status)
    placer, filler = escape(order.placer_order_number), escape(case_accession)
    return [
        segment("ORC", "RE", placer, filler, "", "", "", "", "", now, "", "",
                xcn(order.requester)),
        segment("OBR", "1", placer, filler, SERVICE, "", "", report.signed_at, "", "", "", "",
                "", "", "", "", xcn(order.requester), "", "", "", "", "", now, "", "",
                result_status, "", "", "", "", "", "", cnn(report.specialist)),
    ]


def observation_segments(*, study_uid: str, report: Report, conduct_label: str, pdf: bytes,
                         viewer_url: str = "", pdf_url: str = "",
                         follow_up: str = "") -> list[str]:
    """The OBX: report lines (TX), conduct (CE), Study Instance UID (ST), viewer link (RP, when
    given) and the PDF (RP to `pdf_url` when given, else ED when `pdf` is not empty); OBX-11 is
    the report status (F, C or D). A PDF too large for one field (`pdf_fits`) is a ValueError:
    send it by reference."""
    observations = [("TX", REPORT_TEXT, escape(line)) for line in _lines(report.text)]
    observations.append(("CE", CONDUCT, f"{escape(report.conduct)}^{escape(conduct_label)}^L"))
    if follow_up:
        observations.append(("CE", FOLLOW_UP, FOLLOW_UP_VALUES[follow_up]))
    if study_uid:
        observations.append(("ST", STUDY_UID, escape(study_uid)))
    if viewer_url:
        observations.append(("RP", VIEWER, f"{escape(viewer_url)}^^TEXT^HTML"))
    if pdf_url:
        observations.append(("RP", PDF, f"{escape(pdf_url)}^^AP^PDF"))
    elif pdf:
        if not pdf_fits(pdf):
            raise ValueError(f"a {len(pdf)}-byte PDF exceeds {MAX_FIELD} characters embedded: "
                             "send it by reference")
        observations.append(("ED", PDF, _ED_PDF + base64.b64encode(pdf).decode("ascii")))
    return [segment("OBX", str(n), kind, code, "", value, "", "", "", "", "", report.status)
            for n, (kind, code, value) in enumerate(observations, start=1)]


def _lines(text: str) -> list[str]:
    """Report lines, keeping inner blank lines (paragraphs) but not the trailing ones."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines
