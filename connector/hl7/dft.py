"""Charges to the accounting feed: DFT^P03^DFT_P03, v2.5 (IHE Charge Posting, one FT1 per act).

FT1-2 is the charge's stable transaction id, so the billing system can drop a repeat; a credit
(CD) carries a positive amount, the type says it is a credit. Amounts are CP `23.00&EUR`.

With a `facility` (connector.billing.facilities.Facility) each FT1 carries the facility's own
codes: FT1-7 `charge_code^label^coding_system`, FT1-13 its department, FT1-11/12 only when the
facility takes amounts; FT1-25 always carries the national code `code^label^NGAP`. Without
one, FT1-7 repeats the national code and `department` fills FT1-13.

FT1 fields written: 1 set id, 2 transaction id, 4 transaction date (DR: act date as a one-day
range), 5 posting date, 6 type (CG/CD, table 0017), 7 transaction code, 10 quantity 1,
11/12 amounts, 13 department, 20 performed by, 21 ordered by, 23 filler order number
(accession), 25 procedure code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.domain.model import Charge, Order

from .segments import HD, escape, msh, pid, pv1_outpatient, segment, xcn

if TYPE_CHECKING:
    from connector.billing.facilities import Facility

NATIONAL_SYSTEM = "NGAP"


def build_dft(*, control_id: str, now: str, order: Order, accession: str, charges: list[Charge],
              sending: tuple[HD, HD], receiving: tuple[HD, HD], department: str = "",
              labels: dict[str, str] | None = None, facility: "Facility | None" = None) -> str:
    """The DFT text (segments separated by CR). `labels` gives national act labels by code
    (FT1-25.2, and FT1-7.2 without a facility); without one the label component stays empty."""
    if not charges:
        raise ValueError("a DFT^P03 needs at least one charge")
    labels = labels or {}
    lines = [
        msh(sending=sending, receiving=receiving, now=now, message_type="DFT^P03^DFT_P03",
            control_id=control_id),
        segment("EVN", "P03", now),
        pid(order.patient),
        pv1_outpatient(),
    ]
    for n, charge in enumerate(charges, start=1):
        national = "^".join([escape(charge.code), escape(labels.get(charge.code, "")),
                             NATIONAL_SYSTEM])
        if facility is None:
            code, dept = national, escape(department)
            amount = f"{charge.amount_cents // 100}.{charge.amount_cents % 100:02d}&EUR"
        else:
            line = facility.line_for(charge)
            code = "^".join(escape(p) for p in (line.charge_code, line.charge_label,
                                                line.coding_system))
            dept = escape(line.department)
            amount = f"{line.amount}&{escape(line.currency)}" if line.amount else ""
        ordered_by = charge.ordered_by or order.requester
        lines.append(segment(
            "FT1", str(n), escape(charge.transaction_id), "",
            f"{charge.act_date}^{charge.act_date}", now, charge.type, code, "", "", "1",
            amount, amount, dept, "", "", "", "", "", "",
            xcn(charge.performed_by), xcn(ordered_by), "", escape(accession), "", national))
    return "\r".join(lines) + "\r"
