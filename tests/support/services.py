"""The connector's services built in-process on a real SQLite file in a test's folder."""

from __future__ import annotations

from pathlib import Path

from connector.config import Destination, load_config
from connector.bootstrap import Services, build
from tests.support.net import unused_url
from tests.support.cli import EXAMPLE_DEVICES


def make_services(data: Path, destinations: tuple[Destination, ...]) -> Services:
    """Services with their data folder in `data`, sending to `destinations`; the archive URL
    is one where nothing listens, so archive jobs stay queued."""
    base = load_config(None, environ={**EXAMPLE_DEVICES, 
        "TELEDERM_DATA_DIR": str(data), "TELEDERM_ORTHANC_URL": unused_url(),
        "TELEDERM_FACILITY_NAME": "TELEDERM_TEST"})
    return build(base.model_copy(update={"destinations": destinations}))
