"""Modality worklist entries as files that Orthanc's ModalityWorklists plugin serves.

Why: a capture device (camera app, dermatoscope) that asks for its worklist gets the patient and
the case's accession number and Study Instance UID, and copies them into its images, so nothing
has to be retyped and the images land in the right study. Orthanc 1.10's sample plugin
(`libModalityWorklists.so`, reference/dicom.md 6.2) answers C-FIND by reading every `*.wl` file
(a DICOM dataset) in its `Worklists.Database` folder at each query, so publishing an entry is
writing one file, and withdrawing it is deleting that file.

Each case has one entry per modality (XC for photos, DMS for dermoscopy), in a file named after
the case and the modality, so writing it again replaces it (idempotent). A file is written under
a temporary name (extension `.tmp`, which the plugin ignores), fsynced, then renamed: a query
never reads half an entry.

Urgency: Requested Procedure Priority (0040,1003) is the case's triage level (STAT, HIGH,
MEDIUM, ROUTINE, LOW: order priority + questionnaire red flags, mappings/questionnaire.toml),
or the order priority alone for a case never triaged; devices sort their worklist on it, and
`WorklistFolder.entries()` returns the published entries in that order (`sort_key`).

Identity: Patient ID / Issuer of Patient ID are the case's patient id (the qualified INS with its
OID, or the IPP), other identifiers go in Other Patient IDs Sequence; an OID issuer is also
given as Issuer of Patient ID Qualifiers (ISO). Specific Character Set is ISO_IR 100 when every
text fits Latin-1, else ISO_IR 192 (UTF-8).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from connector.domain.errors import DomainError
from connector.domain.model import TRIAGE_LEVELS, Patient, Practitioner, Priority

from .common import add_patient, dicom_charset, sign_meta

__all__ = ["MODALITIES", "PRIORITY_VALUES", "WorklistEntry", "WorklistFolder", "entry_dataset",
           "sort_key"]

MODALITIES = ("XC", "DMS")
SUFFIX = ".wl"

# RequestedProcedurePriority (0040,1003) defined terms: STAT, HIGH, ROUTINE, MEDIUM, LOW.
PRIORITY_VALUES = {Priority.STAT: "STAT", Priority.URGENT: "HIGH", Priority.ROUTINE: "ROUTINE"}

_AE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable, no backslash
_FILE = re.compile(r"^(?P<accession>[A-Za-z0-9]+)-(?P<modality>[A-Z]+)\.wl$")
MWL_FIND = "1.2.840.10008.5.1.4.31"  # Modality Worklist Information Model - FIND


@dataclass(frozen=True)
class WorklistEntry:
    """One scheduled procedure step of one case. Values are checked on construction."""

    accession: str
    study_uid: str
    placer_order_number: str
    patient: Patient
    requester: Practitioner
    priority: Priority
    modality: str                 # XC or DMS
    station_ae: str               # Scheduled Station AE Title: the device expected to do it
    start: str                    # SPS start, YYYYMMDDHHMMSS (local time)
    procedure_description: str    # Requested Procedure Description (LO)
    step_description: str         # Scheduled Procedure Step Description (LO)
    triage_level: str = ""        # STAT ... LOW (domain TRIAGE_LEVELS); "" = not triaged

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise DomainError(f"worklist modality must be one of {', '.join(MODALITIES)}",
                              where="modality")
        if not re.fullmatch(r"[A-Za-z0-9]{1,11}", self.accession):
            raise DomainError("accession must be 1 to 11 letters or digits for a worklist entry",
                              where="accession")  # + "-DMS" must fit SH (16) as the SPS ID
        if not _AE.match(self.station_ae) or self.station_ae.strip() != self.station_ae:
            raise DomainError("station AE title must be 1 to 16 printable characters without "
                              "spaces at the ends or backslash", where="station_ae")
        try:
            dt.datetime.strptime(self.start, "%Y%m%d%H%M%S")
        except ValueError:
            raise DomainError("start must be YYYYMMDDHHMMSS", where="start") from None
        if len(self.start) != 14:
            raise DomainError("start must be YYYYMMDDHHMMSS", where="start")
        for name in ("procedure_description", "step_description"):
            if len(getattr(self, name)) > 64:
                raise DomainError(f"{name} is longer than 64 characters", where=name)
        if len(self.placer_order_number) > 64:
            raise DomainError("placer order number is longer than 64 characters",
                              where="placer_order_number")
        if self.triage_level and self.triage_level not in TRIAGE_LEVELS:
            raise DomainError("triage level must be one of " + ", ".join(TRIAGE_LEVELS),
                              where="triage_level")

    @property
    def requested_priority(self) -> str:
        """Requested Procedure Priority: the triage level, else from the order priority."""
        return self.triage_level or PRIORITY_VALUES[self.priority]

    @property
    def step_id(self) -> str:
        """Scheduled Procedure Step ID (SH): the accession and the modality."""
        return f"{self.accession}-{self.modality}"

    @property
    def file_name(self) -> str:
        return file_name(self.accession, self.modality)


def sort_key(priority: str, start: str, accession: str) -> tuple:
    """Most urgent first (STAT, HIGH, MEDIUM, ROUTINE, LOW, anything else), then the earliest
    scheduled start, then the accession: the order a device should work through its list."""
    rank = TRIAGE_LEVELS.index(priority) if priority in TRIAGE_LEVELS else len(TRIAGE_LEVELS)
    return rank, start, accession


def file_name(accession: str, modality: str) -> str:
    """The one file name of a case's entry for a modality (so a rewrite replaces it)."""
    return f"{accession}-{modality}{SUFFIX}"


def entry_dataset(entry: WorklistEntry) -> Dataset:
    """The worklist item as Orthanc returns it to a C-FIND (PS3.4 K.6.1.2.2 return keys)."""
    ds = Dataset()
    patient = entry.patient
    ds.SpecificCharacterSet = dicom_charset(
        [patient.name.hl7(), patient.id, patient.issuer, entry.requester.name.hl7(),
         entry.placer_order_number, entry.procedure_description, entry.step_description,
         *(part for pair in patient.other_ids for part in pair)])
    # Patient identification and demographics (Issuer of Patient ID always present, as Orthanc
    # matches on it)
    add_patient(ds, patient)
    if "IssuerOfPatientID" not in ds:
        ds.IssuerOfPatientID = ""
    # Imaging service request
    ds.AccessionNumber = entry.accession
    ds.ReferringPhysicianName = entry.requester.name.hl7()
    ds.RequestingPhysician = entry.requester.name.hl7()
    ds.PlacerOrderNumberImagingServiceRequest = entry.placer_order_number
    # Requested procedure
    ds.RequestedProcedureID = entry.accession
    ds.RequestedProcedureDescription = entry.procedure_description
    ds.RequestedProcedurePriority = entry.requested_priority
    ds.StudyInstanceUID = entry.study_uid
    ds.ReferencedStudySequence = Sequence()
    # Scheduled procedure step
    step = Dataset()
    step.Modality = entry.modality
    step.ScheduledStationAETitle = entry.station_ae
    step.ScheduledProcedureStepStartDate = entry.start[:8]
    step.ScheduledProcedureStepStartTime = entry.start[8:]
    step.ScheduledPerformingPhysicianName = ""
    step.ScheduledProcedureStepDescription = entry.step_description
    step.ScheduledProcedureStepID = entry.step_id
    step.ScheduledProcedureStepStatus = "SCHEDULED"
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


def entry_bytes(entry: WorklistEntry) -> bytes:
    """The entry as a DICOM Part-10 file (what the plugin and DCMTK's tools read)."""
    ds = entry_dataset(entry)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MWL_FIND
    meta.MediaStorageSOPInstanceUID = generate_uid(
        prefix=None, entropy_srcs=["worklist", entry.accession, entry.modality])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sign_meta(meta)
    ds.file_meta = meta
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


class WorklistFolder:
    """The folder the plugin reads (`Worklists.Database`); created on first write."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, accession: str, modality: str) -> Path:
        return self.folder / file_name(accession, modality)

    def write(self, entry: WorklistEntry) -> Path:
        """Publish (or replace) the entry atomically; durable when this returns."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / entry.file_name
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(entry_bytes(entry))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        self._sync_dir()
        return target

    def remove(self, accession: str, modality: str) -> bool:
        """Withdraw an entry; False when there was none."""
        try:
            self.path(accession, modality).unlink()
        except FileNotFoundError:
            return False
        self._sync_dir()
        return True

    def entries(self) -> list[Dataset]:
        """Every published entry, read back, most urgent first (`sort_key`)."""
        found = []
        for accession, modality in self.published():
            try:
                ds = dcmread(self.path(accession, modality))
            except (OSError, InvalidDicomError):
                continue  # withdrawn meanwhile, or not ours
            step = ds.ScheduledProcedureStepSequence[0]
            found.append((sort_key(str(ds.get("RequestedProcedurePriority", "")),
                                   f"{step.ScheduledProcedureStepStartDate}"
                                   f"{step.ScheduledProcedureStepStartTime}", accession), ds))
        return [ds for _, ds in sorted(found, key=lambda item: item[0])]

    def published(self) -> list[tuple[str, str]]:
        """(accession, modality) of every entry file in the folder."""
        if not self.folder.is_dir():
            return []
        out = []
        for child in sorted(self.folder.iterdir()):
            m = _FILE.match(child.name)
            if m and child.is_file():
                out.append((m["accession"], m["modality"]))
        return out

    def _sync_dir(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
