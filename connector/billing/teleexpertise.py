"""The charges a final tele-expertise report yields (NGAP), one Charge per FT1.

- Acts from 1 Apr 2022 (avenant 9): the requis (the dermatologist who answers) bills TE2, the
  single level since then, ordered by the requester; the requérant bills RQD.
- Acts from 10 Feb 2019 to 31 Mar 2022: the requis bills TE2 (level 2: we do not yet tell a
  level-1 "simple question" apart, so every answered case is level 2). The requérant had no act
  code then: CNAM computed a yearly lump from the acts it had paid (ngap.toml records it as
  `billing = "yearly_lump"`), so no line is produced for the requester.

Transaction ids (FT1-2, ST of at most 12 characters in v2.5) are the first 12 base32 characters
of SHA-256(accession, code, type): the same act always yields the same id, so a retried or
re-sent DFT never books a charge twice. FT1-23 (accession) and FT1-25 (code) carry the readable
references.

`charges_for_final_report` applies no limit, exclusion or combination rule: it is kept for
callers that predate the rules engine. New callers use `connector.billing.engine.evaluate`,
which applies mappings/billing/rules.toml and uses the same transaction ids.
"""

from __future__ import annotations

import base64
import hashlib

from connector.billing.tariffs import TariffTable
from connector.domain.errors import DomainError
from connector.domain.model import Charge, Practitioner, valid_date

RQD_FROM = "20220401"  # avenant 9, UNCAM decision of 13 Jan 2022: RQD for the requérant


def charges_for_final_report(*, tariffs: TariffTable, accession: str, act_date: str,
                             requester: Practitioner, specialist: Practitioner) -> list[Charge]:
    """TE2 for the specialist, plus RQD for the requester on acts from 2022-04-01."""
    if not accession.strip():
        raise DomainError("accession is empty", where="accession")
    if not valid_date(act_date):
        raise DomainError("act date is not a valid YYYYMMDD date", where="act_date")
    if requester.id == specialist.id:
        raise DomainError("requester and specialist are the same practitioner",
                          where="specialist",
                          hint="a tele-expertise is asked by one doctor and answered by another")
    charges = [_charge(tariffs, accession, act_date, "TE2", "requis", specialist, requester)]
    if act_date >= RQD_FROM:
        charges.append(_charge(tariffs, accession, act_date, "RQD", "requerant", requester, None))
    return charges


def _charge(tariffs: TariffTable, accession: str, act_date: str, code: str, role: str,
            performed_by: Practitioner, ordered_by: Practitioner | None) -> Charge:
    return Charge(
        transaction_id=transaction_id(accession, code, "CG"),
        code=code,
        role=role,
        amount_cents=tariffs.amount_cents(code, role, act_date),
        type="CG",
        act_date=act_date,
        performed_by=performed_by,
        ordered_by=ordered_by,
    )


def transaction_id(accession: str, code: str, type_: str, billing_round: int = 0) -> str:
    """A stable 12-character FT1-2 for one line of one act.

    `billing_round` is 0 for an act's first billing (ids unchanged from the first release);
    an act billed again after its charges were credited uses round 1, 2... so the new charge
    gets a new id instead of colliding with the credited one."""
    seed = accession if billing_round == 0 else f"{accession}#{billing_round}"
    return _b32(f"{seed}|{code}|{type_}")


def credit_id(charge_id: str) -> str:
    """The FT1-2 of the credit (CD) reversing the charge whose FT1-2 is `charge_id`: stable,
    12 characters, never equal to a charge id of the same scheme."""
    return _b32(f"{charge_id}|CD-of")


def _b32(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:12]
