"""Charges to the accounting feed: DFT^P03^DFT_P03, v2.5 (IHE Charge Posting, one FT1 per act).

FT1-2 is the charge's stable transaction id, so the billing system can drop a repeat; a credit
(CD) carries a positive amount, the type says it is a credit. Amounts are CP `23.00&EUR`.
"""

from __future__ import annotations

from connector.domain.model import Charge, Order

from .segments import HD, escape, msh, pid, pv1_outpatient, segment, xcn


def build_dft(*, control_id: str, now: str, order: Order, accession: str, charges: list[Charge],
              sending: tuple[HD, HD], receiving: tuple[HD, HD], department: str = "",
              labels: dict[str, str] | None = None) -> str:
    """The DFT text (segments separated by CR). `labels` gives act labels by code (FT1-7.2,
    FT1-25.2); without one the label component stays empty."""
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
        code = f"{escape(charge.code)}^{escape(labels.get(charge.code, ''))}^NGAP"
        amount = f"{charge.amount_cents // 100}.{charge.amount_cents % 100:02d}&EUR"
        ordered_by = charge.ordered_by or order.requester
        lines.append(segment(
            "FT1", str(n), escape(charge.transaction_id), "",
            f"{charge.act_date}^{charge.act_date}", now, charge.type, code, "", "", "1",
            amount, amount, escape(department), "", "", "", "", "", "",
            xcn(charge.performed_by), xcn(ordered_by), "", escape(accession), "", code))
    return "\r".join(lines) + "\r"
