"""A Debian Orthanc (with the TeleDerm plugin and DICOMweb) started on free ports for a test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connector.archive.client import ArchiveClient
from connector.archive.managed import ManagedOrthanc, Modality
from connector.config import Config
from connector.demo import DEMO_DEVICE_AE
from connector.ports import free_port
from tests.support.net import unused_url

ORTHANC_USER = "telederm"
ORTHANC_PASSWORD = "test-secret"
# The one device the test Orthanc lets store and query its worklist (DCMTK tools call as it).
TEST_DEVICE = Modality("dermatoscope", DEMO_DEVICE_AE, "127.0.0.1", 104)
# A test's Orthanc lives in a folder deleted after it: killed at once rather than given the
# ~5 s a clean stop takes (archive/test_managed.py's lifecycle test stops one cleanly).
THROWAWAY_STOP = 0


def throwaway(config: Config) -> Config:
    """`config` with its managed Orthanc killed at once on stop (see THROWAWAY_STOP)."""
    return config.model_copy(update={
        "orthanc": config.orthanc.model_copy(update={"stop_seconds": THROWAWAY_STOP})})


@dataclass
class RunningOrthanc:
    """A started ManagedOrthanc and a client logged into it."""

    managed: ManagedOrthanc
    client: ArchiveClient

    @property
    def url(self) -> str:
        return self.managed.url

    @property
    def dicom_port(self) -> int:
        return self.managed.dicom_port

    @property
    def username(self) -> str:
        return self.managed.username

    @property
    def password(self) -> str:
        return self.managed.password


def start_orthanc(folder: Path, **settings) -> RunningOrthanc:
    """Start an Orthanc in `folder` on free ports; `settings` override ManagedOrthanc arguments."""
    http_port = free_port()
    options = {
        "http_port": http_port,
        "dicom_port": free_port(exclude=(http_port,)),
        "username": ORTHANC_USER,
        "password": ORTHANC_PASSWORD,
        "stable_age": 1,
        "connector_url": unused_url(),
        "connector_token": "test-token",
        "modalities": (TEST_DEVICE,),
        "stop_timeout": THROWAWAY_STOP,
    }
    options.update(settings)
    managed = ManagedOrthanc(folder, **options)
    managed.start()
    return RunningOrthanc(managed, ArchiveClient(managed.url, managed.username, managed.password))
