"""The `billing` fixture: the connector's services on a real SQLite file (no Orthanc: nothing
here needs images), with real MLLP peers for the requester's EHR and the accounting feed, and a
drop folder; the builders and readers around it are in tests/support/billing.py."""

import pytest

from connector.config import Destination
from tests.support.billing import Billing
from tests.support.peers import RecordingPeer
from tests.support.services import make_services


@pytest.fixture
def billing(tmp_path):
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    drop = tmp_path / "drop"
    services = make_services(tmp_path / "data", (
        Destination(name="ehr", role="requester", address=f"127.0.0.1:{ehr.port}"),
        Destination(name="accounting", role="accounting", address=f"127.0.0.1:{accounting.port}"),
        Destination(name="accounting-files", role="accounting", transport="file",
                    address=str(drop)),
    ))
    yield Billing(services, ehr, accounting, drop)
    services.store.engine.dispose()
    ehr.stop()
    accounting.stop()
