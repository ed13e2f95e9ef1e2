"""The accounting feed as files: one CSV per batch (what one DFT^P03 would carry), dropped into
a folder the facility's billing system polls.

- One row per charge, the same content as the DFT's FT1 (columns in `COLUMNS`, documented in
  mappings/billing/README.md): RFC 4180, comma-separated, UTF-8 without BOM, CRLF line ends,
  a header row.
- The file name comes from the batch's message control id only (`file_name`), so a retry of
  the same batch rewrites the same file instead of adding a second one; and each row carries
  the stable `transaction_id` (FT1-2), so a feed that already booked a row can drop a repeat.
- The file appears whole or not at all: written to a hidden temporary file in the same folder
  (`.<name>.tmp`, which pollers must ignore), flushed and fsync'ed, renamed over the final
  name, then the folder is fsync'ed so the rename survives a crash.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from connector.domain.model import Charge, Order

if TYPE_CHECKING:
    from connector.billing.facilities import Facility

COLUMNS = (
    "control_id", "line", "transaction_id", "transaction_type", "act_date", "posted_at",
    "facility", "charge_code", "charge_label", "coding_system", "department",
    "national_code", "national_label", "role", "quantity", "amount", "currency",
    "performed_by", "performed_by_name", "ordered_by", "ordered_by_name",
    "filler_order_number", "patient_id", "patient_authority",
)
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_name(control_id: str) -> str:
    """`DFT_<control id>.csv`; characters unsafe in a file name become `_`, and then a short
    hash of the original id keeps two ids that differ only there apart."""
    if not control_id.strip():
        raise ValueError("control id is empty")
    safe = _SAFE.sub("_", control_id)
    if safe != control_id or safe.startswith("."):
        safe = f"{safe.lstrip('.')}_{hashlib.sha256(control_id.encode()).hexdigest()[:8]}"
    return f"DFT_{safe}.csv"


def render_csv(*, control_id: str, now: str, order: Order, accession: str,
               charges: list[Charge], facility: "Facility", labels: dict[str, str]) -> str:
    """The CSV text of one batch (same inputs as hl7.dft.build_dft)."""
    if not charges:
        raise ValueError("a batch needs at least one charge")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    patient = order.patient
    for n, charge in enumerate(charges, start=1):
        line = facility.line_for(charge)
        ordered_by = charge.ordered_by or order.requester
        writer.writerow([
            control_id, n, charge.transaction_id, charge.type, charge.act_date, now,
            facility.id, line.charge_code, line.charge_label, line.coding_system, line.department,
            charge.code, labels.get(charge.code, ""), charge.role, 1, line.amount,
            line.currency if line.amount else "",
            charge.performed_by.id, charge.performed_by.name.hl7(),
            ordered_by.id, ordered_by.name.hl7(),
            accession, patient.id, patient.issuer,
        ])
    return out.getvalue()


def drop(folder: str | Path, *, control_id: str, text: str) -> Path:
    """Write a rendered batch (`render_csv`) atomically as `folder/file_name(control_id)`.

    The outbox renders the batch in the transaction that records its charges and the worker
    drops it later with this function: a retry writes the same bytes to the same file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / file_name(control_id)
    temp = folder / f".{final.name}.tmp"
    with open(temp, "wb") as handle:
        handle.write(text.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, final)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final
