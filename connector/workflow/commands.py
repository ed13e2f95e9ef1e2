"""What a channel asks the flow to do: one small frozen dataclass per step (`handle(command,
uow)`), built by the entry points (HL7 router, DICOM SCP, watched folder, API, CLI) from what
they received.

Commands live in the workflow layer, not in `domain/`, because some carry what an adapter read
and the step still needs to place an error precisely (an inbound report's HL7 locations, a
reported teleconsultation's OBX positions). `actor` is who asks, as the audit trail records it
(`hl7:<sender>`, `api:<token name>`, `dicom:<AE>@<peer>` ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.model import Order, Patient, Practitioner
from ..hl7.orm import ReportedTeleconsultation
from ..hl7.report_in import InboundReport


@dataclass(frozen=True)
class OpenCase:
    order: Order
    actor: str
    worklist: bool = True  # False: an act already done takes no images, no worklist entry
    route: bool = True  # False: an act already done goes to no pool (mappings/routing.toml)


@dataclass(frozen=True)
class RecordTeleconsultation:
    order: Order
    act: ReportedTeleconsultation
    actor: str


@dataclass(frozen=True)
class ChangeOrder:
    order: Order
    key: str  # the message's key (`update_patient.message_key`)
    actor: str


@dataclass(frozen=True)
class CancelOrder:
    """The order to cancel, by the placer's number (scoped by its sender), our accession (the
    filler number), or both ("" for the one not given)."""

    sender: str
    placer_order_number: str
    accession: str
    actor: str


@dataclass(frozen=True)
class AttachImage:
    accession: str
    data: bytes
    actor: str
    kind: str = "photo"
    site: str = ""
    laterality: str = ""
    description: str = ""
    device: str = ""
    tracking_id: str = ""


@dataclass(frozen=True)
class ReceiveObject:
    """A DICOM Part-10 object from a device (C-STORE, a watched folder's .dcm)."""

    data: bytes
    actor: str
    accession: str | None = None  # the channel named the case
    expect: tuple[str, str] | None = None  # (SOP Class, SOP Instance) the C-STORE announced
    source: str = "dicom"


@dataclass(frozen=True)
class MarkReady:
    study_uid: str
    actor: str


@dataclass(frozen=True)
class DeclineCase:
    accession: str
    reason: str
    actor: str
    specialist: Practitioner | None = None


@dataclass(frozen=True)
class CancelCase:
    accession: str
    reason: str
    actor: str


@dataclass(frozen=True)
class RecordReport:
    accession: str
    text: str
    conduct: str
    specialist: Practitioner
    actor: str
    correction: bool = False
    reason: str = ""  # why a correction is made (API, web form); HL7 carries none


@dataclass(frozen=True)
class ReceiveReport:
    """A report from a reporting system (ORU^R01, MDM^T02/T10), as read from the message."""

    report: InboundReport
    actor: str


@dataclass(frozen=True)
class WithdrawReport:
    accession: str
    reason: str
    actor: str


@dataclass(frozen=True)
class UpdatePatient:
    patient: Patient
    event: str  # A08, A31, XO ...
    key: str
    actor: str


@dataclass(frozen=True)
class MergePatients:
    surviving: Patient
    prior_id: str
    prior_issuer: str
    event: str
    key: str
    actor: str


@dataclass(frozen=True)
class LinkPatients:
    """A24 (`link`) / A37: the records of `patient` and `other` are one person, or no longer."""

    patient: Patient
    other: Patient
    link: bool
    event: str
    actor: str


@dataclass(frozen=True)
class ChangeIdentifier:
    """A47: the patient's identifier `prior_id`/`prior_issuer` (MRG-1) becomes the one in PID."""

    patient: Patient
    prior_id: str
    prior_issuer: str
    event: str
    key: str
    actor: str


@dataclass(frozen=True)
class AssignCase:
    """A specialist takes a case (`specialist` is their IdNatPS), or an admin gives it to one."""

    accession: str
    specialist: str
    actor: str


@dataclass(frozen=True)
class ReleaseCase:
    """The assignee hands a case back (an admin may do it for them): it goes to another member
    of the pool present, or waits in the pool. `specialist`: who hands it back, "" for an
    admin acting for whoever holds it."""

    accession: str
    specialist: str
    actor: str


@dataclass(frozen=True)
class FireTimer:
    """A reminder or escalation timer (`store/routing.py`) the worker found due."""

    timer_id: int
    actor: str


@dataclass(frozen=True)
class RecordListing:
    """Someone was shown a list of cases: `count` of them, selected by the `filters` named
    (their values stay out of the trail)."""

    actor: str
    via: str
    count: int
    filters: tuple[str, ...] = ()
    peer: str = ""


@dataclass(frozen=True)
class RecordRead:
    """Someone was shown a case's data: `via` names the channel (api, ui, cli), `peer` where
    the request came from (an address), `what` the view (case, images...)."""

    accession: str
    actor: str
    via: str
    peer: str = ""
    what: str = "case"
