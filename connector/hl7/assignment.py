"""Orders to the specialist side (the reporting system of a pool), v2.5, UTF-8: we place the
case with the dermatologists as the requester placed it with us.

| event | ORC-1 | ORC-5 | NTE |
|---|---|---|---|
| the case is assigned to the pool and its specialist | NW | SC | - |
| another specialist of the same destination takes it, or it is handed back | XO | SC | - |
| the case leaves this destination (escalated to a pool elsewhere), or is cancelled | CA | CA | - |
| the deadline is near | SC | SC | `REMINDER: answer due <TS>` |

Segments: ORM_O01 MSH, PID, PV1, ORC, OBR, [NTE]; OMG_O19 MSH, PID, PV1, ORC, TQ1, OBR, [NTE]
(v2.5 ORM has no TQ1: its timing is ORC-7, TQ).
ORC: 1 control, 2 placer order number (the requester's), 3 filler order number (our
accession), 5 status, 7 (ORM) quantity/timing: 7.5 end date/time = the answer deadline, 7.6
priority (S stat, A urgent, R routine), 9 date/time of the transaction, 12 ordering provider
(the requester).
TQ1 (OMG): 1 `1`, 8 end date/time = the answer deadline, 9 priority.
OBR: 1 `1`, 2 placer, 3 filler, 4 the service (as in the report), 13 the question, 16 the
ordering provider, 22 the date/time of the change, 32 principal result interpreter (the
assigned specialist's IdNatPS; empty while the case waits in the pool unassigned).
"""

from __future__ import annotations

from connector.domain.model import Order, Priority

from .oru import SERVICE
from .segments import HD, escape, msh, pid, pv1_outpatient, segment, xcn

MESSAGE_TYPES = {"ORM^O01": "ORM^O01^ORM_O01", "OMG^O19": "OMG^O19^OMG_O19"}
CONTROLS = {"NW": "SC", "XO": "SC", "CA": "CA", "SC": "SC"}  # ORC-1 -> ORC-5
PRIORITY_CODES = {Priority.STAT: "S", Priority.URGENT: "A", Priority.ROUTINE: "R"}


def build_specialist_order(*, control_id: str, now: str, message_type: str,
                           order_control: str, case_accession: str, order: Order,
                           assignee: str, due: str, reminder: bool = False,
                           sending: tuple[HD, HD] = ("TELEDERM", "TELEDERM"),
                           receiving: tuple[HD, HD] = ("", "")) -> str:
    """The message text (segments separated by CR). `due` is the deadline as HL7 TS (local
    time); `reminder` adds the NTE of an ORC-1 SC reminder."""
    if message_type not in MESSAGE_TYPES:
        raise ValueError(f"specialist order message must be one of {', '.join(MESSAGE_TYPES)}, "
                         f"got {message_type!r}")
    if order_control not in CONTROLS:
        raise ValueError(f"ORC-1 must be one of {', '.join(CONTROLS)}, got {order_control!r}")
    if reminder != (order_control == "SC"):
        raise ValueError("a reminder is sent, and only sent, with ORC-1 SC")
    placer, filler = escape(order.placer_order_number), escape(case_accession)
    requester = xcn(order.requester)
    priority, orm = PRIORITY_CODES[order.priority], message_type == "ORM^O01"
    timing = f"^^^^{escape(due)}^{priority}" if orm else ""
    lines = [
        msh(sending=sending, receiving=receiving, now=now,
            message_type=MESSAGE_TYPES[message_type], control_id=control_id),
        pid(order.patient),
        pv1_outpatient(),
        segment("ORC", order_control, placer, filler, "", CONTROLS[order_control], "", timing,
                "", now, "", "", requester),
        *([] if orm else [segment("TQ1", "1", "", "", "", "", "", "", escape(due), priority)]),
        segment("OBR", "1", placer, filler, SERVICE, "", "", "", "", "", "", "", "",
                escape(order.question), "", "", requester, "", "", "", "", "", now, "", "", "",
                "", "", "", "", "", "", escape(assignee)),
    ]
    if reminder:
        lines.append(segment("NTE", "1", "L", f"REMINDER: answer due {escape(due)}"))
    return "\r".join(lines) + "\r"
