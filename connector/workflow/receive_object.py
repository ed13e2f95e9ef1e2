"""A DICOM object from a capture device (C-STORE, or a DICOM file in the watched folder) joins
its case.

Matching, in this order:
1. the accession given by the channel (a sidecar file in the watched folder), else the object's
   AccessionNumber, which must be one of our cases (an accession that is no case is refused:
   the device named another request, and guessing one would file the image in the wrong one);
2. else, for an object that names no accession, its PatientID (and IssuerOfPatientID when the
   object has one) to the single case of that patient that still takes images.
An object that matches no case, several cases, or a case of another patient (same accession,
different PatientID) is refused with a reason, and the refusal is audited; nothing is stored.

A matched object keeps its SOP Instance UID, Series and pixel data, and takes the case's
identity: Patient module (name, ID, issuer, birth date, sex), and the study's attributes
(`study`: StudyInstanceUID, AccessionNumber, StudyID, StudyDate/Time, StudyDescription,
ReferringPhysicianName), and its series takes a Series Number of its own in the case. The values it had are kept in Original Attributes Sequence (PS3.3
C.12.1.1.9, reason COERCE), so the change can be traced. The object is written in the data
folder (fsynced) and, in one transaction, recorded in `images`, the case moves by
IMAGE_RECEIVED, and an `archive.store` job is queued, as for an uploaded photo. The same SOP
Instance UID received again for the same case changes nothing and is answered as a success.

The C-STORE SCP's receiver (`entrypoints/dicom_scp.answer`) runs this step on the
association's thread: it only touches the data folder and the database, never the archive, so
it is fast enough for that.
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import DermoscopicPhotographyImageStorage

from ..bootstrap import Services
from ..dicom.common import check_uid, to_bytes
from ..dicom.iod import check_iod
from ..dicom.scp import SOP_CLASSES
from ..domain.errors import ConnectorError, DomainError, ImageError, NotFound, StoreUnavailable
from ..domain.model import Case, ImageKind, LateralityValues
from ..domain.states import CaseEvent
from ..store.uow import UnitOfWork
from .commands import ReceiveObject
from . import study
from .publish_worklist import SCHEDULABLE
from .study import StudyFacts

log = logging.getLogger("connector.dicom.inbound")

CHARSET = "ISO_IR 192"

# Patient-level attributes that would contradict the case's identity once it is set.
_CONTRADICTING = ("OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName",
                  "PatientMotherBirthName", "IssuerOfPatientIDQualifiersSequence",
                  "PatientBirthTime", "PatientAge", "IssuerOfAccessionNumberSequence")
# What we overwrite or remove, recorded with its former value in Original Attributes Sequence.
_COERCED = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
            "StudyInstanceUID", "AccessionNumber", "ReferringPhysicianName", "StudyDate",
            "StudyTime", "StudyDescription", "StudyID", "SeriesNumber") + _CONTRADICTING


@dataclass(frozen=True)
class ReceivedImage:
    accession: str
    sop_instance_uid: str
    kind: str
    created: bool  # False when the same SOP Instance was already attached to this case


class Unmatched(NotFound):
    """No case (or more than one) for this object."""

    code = "unmatched-object"


def handle(cmd: ReceiveObject, uow: UnitOfWork) -> ReceivedImage:
    """Attach one DICOM Part-10 object to its case (see the module docstring), in the caller's
    unit of work.

    `cmd.accession` forces the case (the channel named it); `cmd.expect` is (SOP Class UID,
    SOP Instance UID) announced by the C-STORE request, checked against the dataset. Raises
    ImageError for an object we cannot take, Unmatched / StateConflict / DomainError when no
    case can take it, StoreUnavailable when it could not be persisted.
    """
    ds = _read(cmd.data)
    sop_class, sop_uid = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
    if cmd.expect is not None and (sop_class, sop_uid) != cmd.expect:
        raise ImageError("the data set's SOP Class/Instance UID differ from the request's",
                         where="SOPInstanceUID", code="dataset-mismatch")
    kind = (ImageKind.DERMOSCOPY if sop_class == DermoscopicPhotographyImageStorage
            else ImageKind.PHOTO).value
    sha = hashlib.sha256(cmd.data).hexdigest()
    now, config = uow.moment.iso, uow.services.config
    case = uow.cases.load(_match(uow, ds, cmd.accession))
    known = uow.images.find(sop_uid)
    if known is not None and known.accession == case.accession:
        return ReceivedImage(case.accession, sop_uid, kind, created=False)
    if known is not None:
        raise DomainError("this SOP Instance UID was already received for another case",
                          where="SOPInstanceUID", code="duplicate-instance",
                          hint="the device must give each image its own UID")
    case.apply(CaseEvent.IMAGE_RECEIVED)  # refuses a case that takes no more images
    _coerce_identity(ds, case, study.of_case(uow, case),
                     uow.counters.series_number(case.accession, str(ds.SeriesInstanceUID)),
                     modified_at=uow.moment.hl7, system=config.facility.name)
    path = config.data_dir / "images" / case.accession / f"{sop_uid}.dcm"
    try:
        uow.services.files.write(path, to_bytes(ds))
    except OSError as exc:
        raise StoreUnavailable(f"cannot write the object: {exc.strerror or exc}",
                               hint="check the data folder's space and permissions") from None
    uow.images.insert(
        accession=case.accession, sop_uid=sop_uid, series_uid=str(ds.SeriesInstanceUID),
        sop_class_uid=sop_class, kind=kind, source_sha256=sha, path=str(path),
        site_code=_site(ds), laterality=_laterality(ds),
        description=str(ds.get("SeriesDescription", "") or "")[:200], created_at=now)
    uow.cases.save_status(case, now)
    uow.outbox.enqueue(kind="archive.store", destination="archive", key=f"archive:{sop_uid}",
                       payload=str(path).encode(), accession=case.accession, now=now)
    uow.audit.append(at=now, actor=cmd.actor, action="image.received", accession=case.accession,
                     detail={"sop_instance_uid": sop_uid, "sop_class_uid": sop_class,
                             "sha256": sha, "kind": kind, "via": cmd.source})
    log.info("object %s attached to %s (%s)", sop_uid, case.accession, cmd.source)
    return ReceivedImage(case.accession, sop_uid, kind, created=True)


def refused(services: Services, *, actor: str, reason: ConnectorError, sop_instance_uid: str,
            via: str) -> None:
    """Audit a refused object (no patient data: the SOP Instance UID and the reason), in a
    unit of work of its own: the refused step's was rolled back."""
    log.warning("%s object %s refused: %s", via, sop_instance_uid or "-", reason.text)
    try:
        with services.unit() as uow:
            uow.audit.append(at=uow.moment.iso, actor=actor, action="image.refused",
                             detail={"sop_instance_uid": sop_instance_uid, "via": via,
                                     "code": reason.code, "reason": reason.text})
    except Exception:  # noqa: BLE001 - the refusal itself must still be answered
        log.exception("could not audit the refusal of %s", sop_instance_uid)


# --- matching ---------------------------------------------------------------------------

def _match(uow: UnitOfWork, ds: Dataset, accession: str | None) -> str:
    if accession:
        return uow.cases.load(accession).accession  # NotFound names the accession
    patient_id = str(ds.get("PatientID", "") or "").strip()
    claimed = str(ds.get("AccessionNumber", "") or "").strip()
    if claimed:
        owner = uow.cases.patient_id_of(claimed)
        if owner is None:  # a named case that is not ours: never guess another one
            raise Unmatched(f"no case with accession {claimed[:16]}", where="AccessionNumber",
                            hint="pick the case from the worklist on the device")
        if patient_id and patient_id != owner:
            raise DomainError(f"accession {claimed} belongs to another patient",
                              where="PatientID", code="patient-mismatch",
                              hint="check the patient selected on the device")
        return claimed
    if not patient_id:
        raise Unmatched("the object has neither one of our accession numbers nor a patient ID",
                        where="AccessionNumber",
                        hint="pick the case from the worklist on the device")
    issuer = str(ds.get("IssuerOfPatientID", "") or "").strip()
    found = uow.cases.of_patient(patient_id, issuer, SCHEDULABLE)
    if len(found) == 1:
        return found[0]
    if not found:
        raise Unmatched("no open case for this patient", where="PatientID",
                        hint="open the case (order) first, or send the accession number")
    raise Unmatched(f"{len(found)} open cases for this patient", where="PatientID",
                    hint="send the accession number of the case (pick it from the worklist)")


# --- the object ---------------------------------------------------------------------------

def _read(data: bytes) -> Dataset:
    try:
        ds = dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"not a readable DICOM file ({type(exc).__name__})", where="file",
                         hint="send a DICOM Part-10 file") from None
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class not in SOP_CLASSES:
        raise ImageError("this kind of DICOM object is not taken", where="SOPClassUID",
                         hint="send VL Photographic, Dermoscopic Photography or Secondary "
                              "Capture images")
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID"):
        try:
            check_uid(str(ds.get(keyword, "") or ""), keyword)
        except DomainError:
            raise ImageError(f"{keyword} is missing or invalid", where=keyword,
                             code="dataset-mismatch") from None
    if "PixelData" not in ds:
        raise ImageError("the object has no pixel data", where="PixelData",
                         code="dataset-mismatch")
    check_iod(ds)  # Type 1 and enumerated values of its IOD, before it can join a case
    return ds


def _coerce_identity(ds: Dataset, case: Case, facts: StudyFacts, series_number: int, *,
                     modified_at: str, system: str) -> None:
    """Give the object the case's patient and study (the same study attributes as every other
    object of the study) and its series' number in the case, recording what it had before."""
    ds.decode()  # every text value to str under the object's own character set
    original = Dataset()
    for keyword in _COERCED:
        if keyword in ds:
            original[keyword] = copy.deepcopy(ds[keyword])
    patient = case.order.patient
    ds.SpecificCharacterSet = CHARSET  # names may need it; values are re-encoded on write
    ds.PatientName = patient.name.hl7()
    ds.PatientID = patient.id
    if patient.issuer:
        ds.IssuerOfPatientID = patient.issuer
    elif "IssuerOfPatientID" in ds:
        del ds.IssuerOfPatientID
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    for keyword in _CONTRADICTING:
        if keyword in ds:
            delattr(ds, keyword)
    ds.StudyInstanceUID = facts.uid
    ds.AccessionNumber = facts.accession
    ds.StudyID = facts.study_id
    ds.ReferringPhysicianName = facts.referring.hl7()
    ds.StudyDate, ds.StudyTime = facts.datetime[:8], facts.datetime[8:]
    ds.StudyDescription = facts.description
    ds.SeriesNumber = series_number
    if not len(original):
        return  # the object had none of these: nothing was modified, only added
    item = Dataset()
    item.ModifiedAttributesSequence = Sequence([original])
    item.AttributeModificationDateTime = modified_at
    item.ModifyingSystem = system[:64]
    item.SourceOfPreviousValues = ""
    item.ReasonForTheAttributeModification = "COERCE"
    previous = list(ds.get("OriginalAttributesSequence", []))
    ds.OriginalAttributesSequence = Sequence(previous + [item])


def _site(ds: Dataset) -> str:
    regions = ds.get("AnatomicRegionSequence") or []
    return str(regions[0].get("CodeValue", "") or "")[:32] if regions else ""


def _laterality(ds: Dataset) -> str:
    value = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "").strip()
    return value if value in {v.value for v in LateralityValues} else ""
