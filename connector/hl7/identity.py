"""French national identifiers in HL7 v2: the patient's INS and identity status (PID-3, PID-32),
practitioners' IdNatPS / RPPS (XCN) and facilities' FINESS (XON, CWE, HD).

Rules (reference hl7-and-billing.md 9.2-9.4, FR Core, PAM-FR):
- PID-3 repeats. A repetition whose assigning authority (CX-4.2, else CX-4.1) is one of the INS
  OIDs of the mapping is the INS: INS-NIR `1.2.250.1.213.1.4.8`, INS-NIA `.9`; the test (`.10`)
  and demo (`.11`) OIDs are refused (ERR 103 at that repetition) unless the site runs in test
  mode. A CX-5 `INS` under any other authority is refused too (wrong OIDs circulate).
- The local identifier (IPP) is the first other repetition with an identifier type (CX-5) of
  `local_types` (PI), else the first one without a type; `local_authorities`, when set,
  restricts it to the facility's own authorities. The further repetitions of those types (or
  untyped), from any authority, are the patient's other identifiers: each finds the patient.
- PID-32 (identity reliability, table 0445 of the French extension) repeats: the statuses PROV,
  VALI, RECUP, QUAL (the weakest wins when several are sent), attribute codes kept as flags, and
  "doubt" codes (doubtful, fictitious identity) that force the status to PROV.
- The INS identifies the patient only when the status is QUAL; otherwise it is kept on the
  `Patient` (flagged unusable) and the IPP is the patient id.
- Practitioners: an IdNatPS (authority `1.2.250.1.71.4.2.1` or XCN-13 `IDNPS`) starting with 8
  is `8` + the 11-digit RPPS; XCN-13 `RPPS` is a bare RPPS.
- Facilities: FINESS from ORC-21 (XON-10, else XON-3, when XON-6 is the FINESS authority or
  XON-7 a FINESS type), ORC-17 (CWE with a FINESS coding system) or MSH-4 (HD holding a
  9-character FINESS), first found wins.

Error texts never quote the received values (ERR-7 must not carry patient data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Ge, Le
from pydantic import AfterValidator, StrictInt, StringConstraints

from connector.domain.model import (IDENTITY_STATUSES, QUALIFIED, Facility, valid_finess, valid_ins,
                                    valid_oid, valid_rpps)
from connector.validation import NonEmpty, SiteModel

from .errors import Hl7Error
from .parse import Location, ParsedMessage
from .readers import Codes, authority_of, position

INS_KINDS = ("nir", "nia", "test", "demo")
_RELIABILITY_MEANINGS = (*IDENTITY_STATUSES, "attribute", "doubt", "")


@dataclass(frozen=True)
class IdentityMapping:
    """[identity], [codes.identity_reliability] and [facility] of mappings/hl7/orm_o01.toml."""

    ins_authorities: tuple[tuple[str, str], ...]  # OID -> nir | nia | test | demo
    reliability: Location
    reliability_codes: tuple[tuple[str, str], ...]
    local_types: frozenset[str]
    local_authorities: frozenset[str]
    qualified_patient_id: str     # ins | local
    idnatps_authority: str
    practitioner_type_component: int  # XCN-13 identifier type code
    finess_authority: str
    finess_types: frozenset[str]
    facility_xon: tuple[Location, ...]
    facility_cwe: tuple[Location, ...]
    facility_hd: tuple[Location, ...]


def _oid(value: str) -> str:
    if not valid_oid(value):
        raise ValueError("must be an OID")
    return value


Oid = Annotated[str, AfterValidator(_oid)]


class IdentitySection(SiteModel):
    """[identity] of the ORM mapping."""

    ins_authorities: Annotated[dict[Oid, Literal[INS_KINDS]], NonEmpty]
    reliability: position(segment="PID")
    local_types: Codes
    local_authorities: tuple[Annotated[str, StringConstraints(strip_whitespace=True,
                                                              min_length=1)], ...]
    qualified_patient_id: Literal["ins", "local"]
    idnatps_authority: Oid
    practitioner_type_component: Annotated[StrictInt, Ge(1), Le(23)]  # an XCN component


class FacilitySection(SiteModel):
    """[facility] of the ORM mapping: where the requesting facility's FINESS is read."""

    xon: tuple[position(whole=True), ...]
    cwe: tuple[position(whole=True), ...]
    hd: tuple[position(whole=True), ...]
    finess_authority: Oid
    finess_types: Codes


ReliabilityCodes = dict[str, Literal[_RELIABILITY_MEANINGS]]


def identity_mapping(section: IdentitySection, facility: FacilitySection,
                     reliability_codes: dict[str, str]) -> IdentityMapping:
    return IdentityMapping(
        ins_authorities=tuple(section.ins_authorities.items()), reliability=section.reliability,
        reliability_codes=tuple((k.upper(), v) for k, v in reliability_codes.items()),
        local_types=frozenset(section.local_types),
        local_authorities=frozenset(section.local_authorities),
        qualified_patient_id=section.qualified_patient_id,
        idnatps_authority=section.idnatps_authority,
        practitioner_type_component=section.practitioner_type_component,
        finess_authority=facility.finess_authority, finess_types=frozenset(facility.finess_types),
        facility_xon=facility.xon, facility_cwe=facility.cwe, facility_hd=facility.hd)


@dataclass(frozen=True)
class PatientIds:
    """What PID-3 and PID-32 say about who the patient is."""

    id: str
    issuer: str
    ins: str = ""
    ins_oid: str = ""
    status: str = ""
    flags: tuple[str, ...] = ()
    other_ids: tuple[tuple[str, str], ...] = ()
    location: Location | None = None  # where the patient id was read (errors are put there)
    # (id, issuer, namespace given beside an OID issuer, CX-5 type) of each repetition that
    # had more than (id, issuer), so PID-3 goes back as it came
    details: tuple[tuple[str, str, str, str], ...] = ()


def _erl(loc: Location, repetition: int) -> str:
    """ERR-2 of one repetition of a field: `PID^1^3^2`."""
    return f"{loc.segment}^{loc.occurrence}^{loc.field}^{repetition}"


def patient_ids(msg: ParsedMessage, positions: tuple[Location, ...], m: IdentityMapping, *,
                test_mode: bool = False) -> PatientIds:
    """Read PID-3 (every repetition) and PID-32 into the patient's identifiers.

    Raises `Hl7Error` (AE): 101 when there is no identifier the patient may be known by (no IPP
    and no qualified INS), 102 for a malformed INS (at its repetition), 103 for a test or demo
    INS outside test mode, an INS type under a non-INS authority (at its repetition), or a
    PID-32 code not in the table (at its repetition).
    """
    loc = next((p for p in positions if any(msg.repetitions(p))), positions[0])
    kinds = dict(m.ins_authorities)
    ins: tuple[str, str] | None = None
    local: list[tuple[str, str, str]] = []  # (id, issuer, type)
    details: list[tuple[str, str, str, str]] = []
    for rep in range(1, len(msg.repetitions(loc)) + 1):
        here = loc.at(repetition=rep)
        ident = msg.part(here, 1)
        if not ident:
            continue
        oid = authority_of(msg, here, 4)
        id_type = msg.part(here, 5).upper()
        namespace = msg.part(here, 4, 1) if msg.part(here, 4, 2) else ""
        if namespace or id_type:
            details.append((ident, oid, namespace, msg.part(here, 5)))
        kind = kinds.get(oid)
        if kind is None:
            if id_type == "INS":
                raise Hl7Error("identifier typed INS has an assigning authority that is not an "
                               "INS OID", hl7_code=103, location=_erl(loc, rep),
                               hint="INS-NIR is 1.2.250.1.213.1.4.8, INS-NIA 1.2.250.1.213.1.4.9")
            local.append((ident, authority_of(msg, here, 4), id_type))
            continue
        if kind in ("test", "demo") and not test_mode:
            raise Hl7Error(f"{kind} INS (assigning authority of {kind} identities) is refused in "
                           "production", hl7_code=103, location=_erl(loc, rep),
                           hint="send the production INS-NIR (1.2.250.1.213.1.4.8) or INS-NIA "
                                "(1.2.250.1.213.1.4.9); test identities need hl7.test_mode")
        if not valid_ins(ident):
            raise Hl7Error("INS is not a 15-character NIR/NIA with a correct key", hl7_code=102,
                           location=_erl(loc, rep))
        if ins is None:
            ins = (ident, oid)
    status, flags = _reliability(msg, m)
    usable = ins is not None and status == QUALIFIED
    candidates = [c for c in local if not m.local_authorities or c[1] in m.local_authorities]
    chosen = ([c for c in candidates if c[2] in m.local_types]
              or [c for c in candidates if not c[2]] or [None])[0]
    if chosen is None and not usable:
        if ins is not None:
            raise Hl7Error("the patient has no local identifier (IPP) and the INS cannot "
                           "identify them: the identity is not qualified", hl7_code=101,
                           location=loc.erl(),
                           hint="send the IPP in PID-3 (identifier type PI), or the identity "
                                "status QUAL in PID-32")
        raise Hl7Error(f"patient identifier is missing ({loc.segment}-{loc.field})",
                       hl7_code=101, location=loc.erl(),
                       hint="send the IPP in PID-3 with identifier type "
                            + " or ".join(sorted(m.local_types)))
    ins_value, ins_oid = ins or ("", "")
    # The patient's further identifiers of the same kind (an IPP of another facility of the
    # network...), typed as local or untyped; account and visit numbers are not the patient's.
    further = tuple(dict.fromkeys((c[0], c[1]) for c in local if c is not chosen
                                  and (not c[2] or c[2] in m.local_types)))
    if usable and (m.qualified_patient_id == "ins" or chosen is None):
        others = ((chosen[0], chosen[1]),) if chosen else ()
        return PatientIds(ins_value, ins_oid, ins_value, ins_oid, status, flags,
                          others + further, loc, tuple(details))
    others = ((ins_value, ins_oid),) if usable else ()
    return PatientIds(chosen[0], chosen[1], ins_value, ins_oid, status, flags, others + further,
                      loc, tuple(details))


def _reliability(msg: ParsedMessage, m: IdentityMapping) -> tuple[str, tuple[str, ...]]:
    table = dict(m.reliability_codes)
    statuses, flags, doubt = [], [], False
    for rep, raw in enumerate(msg.repetitions(m.reliability), start=1):
        code = raw.strip().upper()
        if not code:
            continue
        meaning = table.get(code)
        if meaning is None:
            raise Hl7Error("identity reliability code is not in the accepted table (0445)",
                           hl7_code=103, location=_erl(m.reliability, rep),
                           hint="use one of " + ", ".join(sorted(table)))
        if meaning in IDENTITY_STATUSES:
            statuses.append(meaning)
        elif meaning in ("attribute", "doubt"):
            flags.append(code)
            doubt = doubt or meaning == "doubt"
    status = min(statuses, key=IDENTITY_STATUSES.index) if statuses else ""
    if doubt:
        status = "PROV"  # a doubtful or fictitious identity can only be provisional (RNIV)
    return status, tuple(flags)


def practitioner_ids(msg: ParsedMessage, loc: Location, m: IdentityMapping,
                     ident: str, authority: str) -> tuple[str, str]:
    """(identifier type as sent, RPPS or "") of an XCN at `loc`. Raises `Hl7Error` 102 there
    when an RPPS-based IdNatPS or a bare RPPS is not 11 digits."""
    id_type = msg.part(loc, m.practitioner_type_component).upper()
    rpps = ""
    if id_type == "RPPS":
        rpps = ident
    elif (authority == m.idnatps_authority or id_type == "IDNPS") and ident.startswith("8"):
        rpps = ident[1:]
    if rpps and not valid_rpps(rpps):
        raise Hl7Error("RPPS-based practitioner id must be 8 followed by the 11-digit RPPS "
                       "(or the 11 digits alone with type RPPS)", hl7_code=102,
                       location=loc.erl())
    return id_type, rpps


def facility(msg: ParsedMessage, m: IdentityMapping) -> Facility | None:
    """The requesting facility: FINESS and name from the first position that names one; None
    when the message names no facility at all. Raises `Hl7Error` 102 at an XON/CWE field that
    says it holds a FINESS but whose value is not one."""
    for loc in m.facility_xon:
        name = msg.part(loc, 1)
        authority = authority_of(msg, loc, 6)
        kind = msg.part(loc, 7).upper()
        ident = msg.part(loc, 10) or msg.part(loc, 3)
        if authority == m.finess_authority or kind in m.finess_types:
            _check_finess(ident, loc)
            return _facility(ident, name, kind)
        if name:
            return _facility("", name, "")
    for loc in m.facility_cwe:
        ident, name, system = msg.part(loc, 1), msg.part(loc, 2), msg.part(loc, 3).upper()
        if system in m.finess_types or system == m.finess_authority:
            _check_finess(ident, loc)
            return _facility(ident, name, system)
    for loc in m.facility_hd:
        namespace, universal = msg.part(loc, 1), msg.part(loc, 2)
        finess = next((v for v in (namespace, universal) if valid_finess(v)), "")
        name = namespace if namespace != finess else ""
        if finess or name:
            return _facility(finess, name, "")
    return None


def _check_finess(value: str, loc: Location) -> None:
    if not valid_finess(value):
        raise Hl7Error("FINESS number must be 9 characters (department + 7 digits)",
                       hl7_code=102, location=loc.erl())


def _facility(finess: str, name: str, kind: str) -> Facility:
    return Facility(finess=finess, name=name[:100], kind=kind if kind in ("FINEG", "FINEJ") else "")
