"""Who may talk DICOM to the managed Orthanc: only the `[[orthanc.modalities]]` a site declares,
calling as their AE title from their host, and calling Orthanc by its own AE title. A stranger's
C-STORE and worklist C-FIND (which would list every open case's patient) are refused."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (ModalityWorklistInformationFind,
                                  SecondaryCaptureImageStorage)

from connector.archive.managed import ManagedOrthanc, Modality
from connector.dicom.worklist import WorklistEntry, WorklistFolder
from connector.domain.model import Patient, PersonName, Practitioner, Priority
from tests.support.dicom_samples import secondary_capture
from tests.support.orthanc import TEST_DEVICE, start_orthanc

FAR_DEVICE = Modality("far-camera", "FARCAM", "127.0.0.2", 104)  # declared, another host


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """An Orthanc knowing TEST_DEVICE (this host) and FAR_DEVICE (127.0.0.2), with one
    worklist entry."""
    running = start_orthanc(tmp_path_factory.mktemp("guarded"),
                            modalities=(TEST_DEVICE, FAR_DEVICE))
    WorklistFolder(running.managed.worklist_folder).write(WorklistEntry(
        accession="TDSEC1", study_uid="1.2.826.0.1.3680043.10.1", placer_order_number="P-SEC",
        patient=Patient("IPPSEC", PersonName("SECRET", "Patient"), "CHU"),
        requester=Practitioner("801234567897", PersonName("MARTIN", "Jean")),
        priority=Priority.ROUTINE, modality="XC", station_ae="TELEDERM_XC",
        start="20261115093000", procedure_description="Télé-expertise",
        step_description="Photographies"))
    yield running
    running.managed.stop()


def _associate(orthanc, context, *, calling: str, called: str | None = None,
               bind: str = "127.0.0.1"):
    ae = AE(ae_title=calling)
    ae.add_requested_context(context)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    return ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=called or orthanc.managed.aet,
                        bind_address=(bind, 0))


def _store(orthanc, **who) -> int | None:
    """The C-STORE status, or None when Orthanc refused the association itself."""
    ds, _ = secondary_capture("ACCSEC")
    assoc = _associate(orthanc, SecondaryCaptureImageStorage, **who)
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_store(ds)
        return status.Status if "Status" in status else None
    finally:
        assoc.release()


def _worklist(orthanc, **who) -> tuple[int | None, list[str]]:
    """The last C-FIND status on the worklist model and the patient names answered."""
    query = Dataset()
    query.PatientName = ""
    query.AccessionNumber = ""
    assoc = _associate(orthanc, ModalityWorklistInformationFind, **who)
    if not assoc.is_established:
        return None, []
    names, last = [], None
    try:
        for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
            last = status.Status if "Status" in status else None
            if identifier is not None and "PatientName" in identifier:
                names.append(str(identifier.PatientName))
    finally:
        assoc.release()
    return last, names


def _refused(status: int | None) -> bool:
    return status is None or status not in (0x0000, 0xFF00, 0xFF01)


def test_a_declared_device_stores_and_finds_its_worklist(guarded):
    assert _store(guarded, calling=TEST_DEVICE.ae_title) == 0x0000
    status, names = _worklist(guarded, calling=TEST_DEVICE.ae_title)
    assert (status, names) == (0x0000, ["SECRET^Patient"])


def test_an_unknown_ae_can_neither_store_nor_read_the_worklist(guarded):
    assert _refused(_store(guarded, calling="STRANGER"))
    status, names = _worklist(guarded, calling="STRANGER")
    assert _refused(status) and names == []


def test_a_declared_ae_title_from_another_host_is_refused(guarded):
    assert _refused(_store(guarded, calling=FAR_DEVICE.ae_title))
    assert _refused(_store(guarded, calling=TEST_DEVICE.ae_title, bind="127.0.0.3"))
    status, names = _worklist(guarded, calling=TEST_DEVICE.ae_title, bind="127.0.0.3")
    assert _refused(status) and names == []


def test_calling_orthanc_by_another_ae_title_is_refused(guarded):
    assert _refused(_store(guarded, calling=TEST_DEVICE.ae_title, called="ANY-SCP"))


def test_the_generated_config_opens_nothing_by_default(tmp_path):
    config = ManagedOrthanc(tmp_path, http_port=1, dicom_port=2, username="u",
                            password="p").config()
    assert config["RemoteAccessAllowed"] is False
    assert config["DicomModalities"] == {}
    assert config["DicomCheckCalledAet"] is True and config["DicomCheckModalityHost"] is True
    assert not any(config[key] for key in config if key.startswith("DicomAlwaysAllow"))
