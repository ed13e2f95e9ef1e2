"""FT1-2 transaction ids of tele-expertise and teleconsultation charges and their credits.

Transaction ids (FT1-2, ST of at most 12 characters in v2.5) are the first 12 base32 characters
of SHA-256(accession, code, type): the same act always yields the same id, so a retried or
re-sent DFT never books a charge twice. FT1-23 (accession) and FT1-25 (code) carry the readable
references. Which charges an act yields is `connector.billing.engine.evaluate`'s business
(mappings/billing/rules.toml).
"""

from __future__ import annotations

import base64
import hashlib


def transaction_id(accession: str, code: str, type_: str, billing_round: int = 0) -> str:
    """A stable 12-character FT1-2 for one line of one act.

    `billing_round` is 0 for an act's first billing (the seed is the accession alone, so the
    ids stored for first billings never change); an act billed again after its charges were
    credited uses round 1, 2... so the new charge gets a new id instead of colliding with the
    credited one."""
    seed = accession if billing_round == 0 else f"{accession}#{billing_round}"
    return _b32(f"{seed}|{code}|{type_}")


def credit_id(charge_id: str) -> str:
    """The FT1-2 of the credit (CD) reversing the charge whose FT1-2 is `charge_id`: stable,
    12 characters, never equal to a charge id of the same scheme."""
    return _b32(f"{charge_id}|CD-of")


def _b32(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:12]
