"""The in-person follow-up a report's conduct calls for, to a scheduling system, v2.5, UTF-8:
the dermatologist asks to see the patient (or to excise), so the visit is planned, not left to
the requester's memory. One message per report that asks, in the form each scheduling
destination takes (`[[destinations]] follow_up_message`):

- `SIU^S12` (default): MSH, SCH, TQ1, NTE*, PID, PV1, RGS, AIS. SCH-1 placer appointment id
  `<accession>^TELEDERM` (our tele-expertise), SCH-6 event reason = the service asked for
  (the conduct's code and label), SCH-7 appointment reason (HL7 table 0276:
  ROUTINE or EMERGENCY), SCH-12 placer contact = the requester, SCH-16 (required in v2.5)
  and SCH-20 entered by = the dermatologist (the one to call about the request), SCH-25 filler status `Pending` (the booking is the
  scheduler's to make), SCH-26 placer order number = the requester's; TQ1-9 priority;
  AIS-3 the service asked for (the conduct's code and label).
- `ORM^O01` / `OMG^O19`: MSH, PID, PV1, ORC, [TQ1 (OMG)], OBR, NTE*. ORC-1 NW, ORC-2 placer
  order `<accession>^TELEDERM`, ORC-5 SC, ORC-7.6 (ORM) or TQ1-9 (OMG) priority, ORC-12 the
  requester; OBR-4 the conduct's code and label, OBR-13 the tele-expertise's question, OBR-16
  the requester, OBR-32 the dermatologist's identifier.

Priority: `A` (as soon as possible) for an urgent conduct, `R` routine. NTE-3 carries the
dermatologist's text, one NTE per line, so the scheduler reads why.
"""

from __future__ import annotations

from connector.domain.model import Order, Practitioner

from .segments import HD, escape, msh, pid, pv1_outpatient, segment, xcn

MESSAGE_TYPES = {"SIU^S12": "SIU^S12^SIU_S12", "ORM^O01": "ORM^O01^ORM_O01",
                 "OMG^O19": "OMG^O19^OMG_O19"}
URGENCIES = {"routine": ("R", "ROUTINE"), "urgent": ("A", "EMERGENCY")}  # TQ1-9, SCH-7 (0276)


def build_follow_up(*, control_id: str, now: str, message_type: str, urgency: str,
                    case_accession: str, order: Order, specialist: Practitioner,
                    conduct: tuple[str, str], text: str, namespace: str = "TELEDERM",
                    sending: tuple[HD, HD] = ("TELEDERM", "TELEDERM"),
                    receiving: tuple[HD, HD] = ("", "")) -> str:
    """The message text (segments separated by CR); `conduct` is (code, label)."""
    if message_type not in MESSAGE_TYPES:
        raise ValueError(f"follow-up message must be one of {', '.join(MESSAGE_TYPES)}, "
                         f"got {message_type!r}")
    if urgency not in URGENCIES:
        raise ValueError(f"follow-up urgency must be one of {', '.join(URGENCIES)}, "
                         f"got {urgency!r}")
    priority, reason = URGENCIES[urgency]
    ours = f"{escape(case_accession)}^{escape(namespace)}"
    requester, derm = xcn(order.requester), xcn(specialist)
    service = f"{escape(conduct[0])}^{escape(conduct[1])}^L"
    header = msh(sending=sending, receiving=receiving, now=now,
                 message_type=MESSAGE_TYPES[message_type], control_id=control_id)
    notes = [segment("NTE", str(n), "L", escape(line))
             for n, line in enumerate(_lines(text), start=1)]
    if message_type == "SIU^S12":
        lines = [
            header,
            segment("SCH", ours, "", "", "", "", service, f"{reason}^^HL70276", "", "", "",
                    "", requester, "", "", "", derm, "", "", "", derm, "", "",
                    "", "", "Pending^^HL70278", escape(order.placer_order_number)),
            segment("TQ1", "1", "", "", "", "", "", "", "", priority),
            *notes,
            pid(order.patient),
            pv1_outpatient(),
            segment("RGS", "1", "A"),
            segment("AIS", "1", "A", service),
        ]
    else:
        orm = message_type == "ORM^O01"
        lines = [
            header,
            pid(order.patient),
            pv1_outpatient(),
            segment("ORC", "NW", ours, "", "", "SC", "", f"^^^^^{priority}" if orm else "",
                    "", now, "", "", requester),
            *([] if orm else [segment("TQ1", "1", "", "", "", "", "", "", "", priority)]),
            segment("OBR", "1", ours, "", service, "", "", "", "", "", "", "", "",
                    escape(order.question), "", "", requester, "", "", "", "", "", now, "",
                    "", "", "", "", "", "", "", "", escape(specialist.id)),
            *notes,
        ]
    return "\r".join(lines) + "\r"


def _lines(text: str) -> list[str]:
    """The text's non-empty lines (NTE-3 is one line each)."""
    return [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            if line.strip()]
