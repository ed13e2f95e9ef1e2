"""Order status to the requester (we are the order filler), v2.5, UTF-8.

What we say about an order, as ORC-1 (order control, table 0119) and ORC-5 (order status,
table 0038):

| event | ORC-1 | ORC-5 | ORC-16 (reason) |
|---|---|---|---|
| order accepted, case opened | OK | SC | - |
| work starts: images archived, case READY (or back in review after a withdrawal) | SC | IP | - |
| the report is sent | SC | CM | - |
| the requester's cancel request (ORC-1 CA) was applied | CR | CA | - |
| we refuse or cancel the order (dermatologist declines, operator cancels) | OC | CA | code^text^L |
| an order acknowledged once stored (`ack_mode = "storage"`) could not be applied: new order, cancel, change | UA, UC, UX | - | ERR code^text^HL70357 |

Message structure, per requester destination (`order_status` in its config):
- `ORM^O01` (ORM_O01): the filler's unsolicited order message as IHE Scheduled Workflow
  "Filler Order Management" sends it in v2.3.1/2.5, and the same structure the requester sends
  us its orders in.
- `OMG^O19` (OMG_O19): its v2.5.1 successor (IHE SWF.b option; ORM is withdrawn from v2.7).
- `ORU^R01` (ORU_R01): the French ANS tele-radiology profile answers a request with an ORU^R01
  whose ORC-1 is OK (accepted) or OC (refused, reason in ORC-16).
The segments are the same in the three: MSH, PID, PV1, ORC, OBR. ORR^O02 (the application
response to an ORM) is not used: IHE and ANS acknowledge orders with a plain ACK, and these
messages are unsolicited (sent later, each on its own).

ORC: 1 control, 2 placer order number, 3 filler order number (accession; none for UA/UC/UX),
5 status, 9 date/time of the transaction, 12 ordering provider (the requester, echoed), 16 order
control code reason (CE: code ^ text ^ system; OC and U* only), 19 action by (who refused, when
known).
OBR: 1 `1`, 2 placer, 3 filler, 4 the service (as in the report), 16 ordering provider,
22 status change date/time.
"""

from __future__ import annotations

from connector.domain.model import Order, Practitioner

from .oru import SERVICE
from .segments import HD, escape, msh, pid, pv1_outpatient, segment, xcn

MESSAGE_TYPES = {
    "ORM^O01": "ORM^O01^ORM_O01",
    "OMG^O19": "OMG^O19^OMG_O19",
    "ORU^R01": "ORU^R01^ORU_R01",
}
CONTROLS = ("OK", "OC", "SC", "CR", "UA", "UC", "UX")  # the ORC-1 codes we send (table 0119)
UNABLE = ("UA", "UC", "UX")  # unable to accept / cancel / change: no status, no filler number
STATUSES = ("SC", "IP", "CM", "CA")   # the ORC-5 codes we send (table 0038)


def build_order_status(*, control_id: str, now: str, message_type: str, order_control: str,
                       order_status: str, case_accession: str, order: Order,
                       reason: tuple[str, str] = ("", ""), reason_system: str = "L",
                       action_by: Practitioner | None = None,
                       sending: tuple[HD, HD] = ("TELEDERM", "TELEDERM"),
                       receiving: tuple[HD, HD] = ("", "")) -> str:
    """The message text (segments separated by CR). `message_type` is a key of MESSAGE_TYPES;
    `reason` (code, text) fills ORC-16 with `reason_system` (`L`, or `HL70357` for an ERR
    code), for OC and the U* controls only. A U* control has no ORC-5 and no accession."""
    if message_type not in MESSAGE_TYPES:
        raise ValueError(f"order status message must be one of {', '.join(MESSAGE_TYPES)}, "
                         f"got {message_type!r}")
    if order_control not in CONTROLS:
        raise ValueError(f"ORC-1 must be one of {', '.join(CONTROLS)}, got {order_control!r}")
    if order_control in UNABLE:
        if order_status or case_accession:
            raise ValueError(f"ORC-1 {order_control} carries no ORC-5 and no accession")
    elif order_status not in STATUSES:
        raise ValueError(f"ORC-5 must be one of {', '.join(STATUSES)}, got {order_status!r}")
    code, text = reason
    if (code or text) and order_control not in ("OC", *UNABLE):
        raise ValueError("ORC-16 (reason) is sent with ORC-1 OC, UA, UC or UX only")
    ce = "^".join([escape(code), escape(text), reason_system]) if (code or text) else ""
    placer, filler = escape(order.placer_order_number), escape(case_accession)
    requester = xcn(order.requester)
    lines = [
        msh(sending=sending, receiving=receiving, now=now,
            message_type=MESSAGE_TYPES[message_type], control_id=control_id),
        pid(order.patient),
        pv1_outpatient(),
        segment("ORC", order_control, placer, filler, "", order_status, "", "", "", now, "",
                "", requester, "", "", "", ce, "", "", xcn(action_by) if action_by else ""),
        segment("OBR", "1", placer, filler, SERVICE, "", "", "", "", "", "", "", "", "", "",
                "", requester, "", "", "", "", "", now),
    ]
    return "\r".join(lines) + "\r"
