"""Identity vigilance: whether a message's patient may be the patient a record holds, and what
the record becomes when it is.

A record is known by all its identifiers (IPP per assigning authority, INS, other PID-3
repetitions); each (identifier, authority) belongs to one record. A message is refused, never
applied, when its identifiers name two records (only a merge joins records), when it brings an
identifier of an authority under which the record already has another one (two IPPs of one
hospital for one person), or, for an order, when its traits differ from the record's (name,
birth date, sex): an order is no identity feed, so a difference there means the identifiers
were mis-keyed. Identity feeds (ADT) change traits; that is what they are for.
"""

from __future__ import annotations

import dataclasses

from .errors import DomainError
from .model import QUALIFIED, Patient


class IdentityConflict(DomainError):
    """What a message says about a patient contradicts what is known of them. `where` is the
    trait at fault (`patient.id`, `patient.name`, `patient.birth_date`, `patient.sex`),
    `identifier` the (identifier, authority) at fault for `patient.id`, and `party` which of
    the message's patients it is about (2: the other patient of a link)."""

    code = "identity-conflict"
    http_status = 409

    def __init__(self, text: str, *, where: str, identifier: tuple[str, str] = ("", "")):
        super().__init__(text, where=where,
                         hint="the identity-vigilance team must check both identities; "
                              "merge them (ADT^A40) if they are one person")
        self.identifier = identifier
        self.party = 1


def keys(patient: Patient) -> list[tuple[str, str]]:
    """Every (identifier, authority) the patient is known by: the identifier first, then the
    other identifiers and the INS (whatever its status: it is theirs even while unusable)."""
    found = [(patient.id, patient.issuer), *patient.other_ids]
    if patient.ins:
        found.append((patient.ins, patient.ins_oid))
    return list(dict.fromkeys(found))


def one_record(found: dict[tuple[str, str], int]) -> int | None:
    """The record the message's identifiers name (`found`: identifier -> record, for those
    known), None when none is known. Raises `IdentityConflict` when they name two records."""
    records = list(dict.fromkeys(found.values()))
    if len(records) > 1:
        other = next(k for k, pk in found.items() if pk != records[0])
        raise IdentityConflict("the patient's identifiers belong to two different patients "
                               "here", where="patient.id", identifier=other)
    return records[0] if records else None


def check(stored: Patient, held: set[tuple[str, str]], incoming: Patient, *,
          traits: bool, ignore: frozenset[tuple[str, str]] = frozenset()) -> None:
    """Raise `IdentityConflict` when `incoming` cannot be the patient of the record `stored`
    whose identifiers are `held`: an identifier new to the record under an authority where it
    holds another one (`ignore`: identifiers a merge or a change of identifier retires), and,
    with `traits`, another name, birth date or sex."""
    held = held - ignore
    authorities = {authority for _, authority in held}
    for ident in keys(incoming):
        if ident not in held and ident not in ignore and ident[1] in authorities:
            raise IdentityConflict("the patient is known here with another identifier of this "
                                   "assigning authority", where="patient.id", identifier=ident)
    if not traits:
        return
    if (_folded(stored.name.family), _folded(stored.name.given)) != (
            _folded(incoming.name.family), _folded(incoming.name.given)):
        raise IdentityConflict("the patient is known here with another name", where="patient.name")
    for trait in ("birth_date", "sex"):
        mine, theirs = getattr(stored, trait), getattr(incoming, trait)
        if mine and theirs and mine != theirs:
            raise IdentityConflict(f"the patient is known here with another "
                                   f"{trait.replace('_', ' ')}", where=f"patient.{trait}")


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def combine(stored: Patient, incoming: Patient,
            retired: frozenset[tuple[str, str]] = frozenset()) -> Patient:
    """The record once `incoming` is applied: its demographics (a trait it leaves empty is
    kept), its INS and identity status when it sends an INS, else the stored INS with the
    status it sends (a system that does not hold the INS may still lower the status); the
    identifier is the INS only while that stays qualified and was or becomes the identifier.
    Other identifiers are the union of both, less the `retired` ones (a retired identifier is
    never the identifier either: the message's, else the stored one, takes its place)."""
    if incoming.ins:
        ins, oid, status = incoming.ins, incoming.ins_oid, incoming.identity_status
        flags, primary = incoming.identity_flags, (incoming.id, incoming.issuer)
    else:
        ins, oid = stored.ins, stored.ins_oid
        status = incoming.identity_status or stored.identity_status
        flags = incoming.identity_flags or stored.identity_flags
        keyed_on_ins = stored.ins and (stored.id, stored.issuer) == (stored.ins, stored.ins_oid)
        primary = ((stored.id, stored.issuer) if keyed_on_ins and status == QUALIFIED
                   else (incoming.id, incoming.issuer))
    if primary in retired:
        primary = ((incoming.id, incoming.issuer) if (incoming.id, incoming.issuer) not in retired
                   else (stored.id, stored.issuer))
    usable_ins = (ins, oid) if ins and status == QUALIFIED else None
    others = [k for k in [*keys(incoming), *keys(stored)]
              if k != primary and k not in retired and (k != (ins, oid) or usable_ins)]
    details = {(d[0], d[1]): d for d in [*stored.id_details, *incoming.id_details]
               if (d[0], d[1]) not in retired}
    return dataclasses.replace(
        incoming, id=primary[0], issuer=primary[1],
        birth_date=incoming.birth_date or stored.birth_date, sex=incoming.sex or stored.sex,
        ins=ins, ins_oid=oid, identity_status=status, identity_flags=flags,
        other_ids=tuple(dict.fromkeys(others)), id_details=tuple(details.values()))
