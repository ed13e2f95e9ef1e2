"""Fixtures for the HL7 integration tests: `listener_on` (a real MllpListener on a free
localhost port) and `inbound` (the connector's services with real MLLP peers,
tests/support/inbound.py); `pki` is tests/integration/conftest.py's."""

import asyncio
import threading

import pytest

from connector.config import Destination
from connector.hl7.listener import MllpListener
from tests.support.inbound import Inbound
from tests.support.peers import RecordingPeer
from tests.support.services import make_services


@pytest.fixture
def listener_on():
    """Call with a handler (and MllpListener options); the listener's event loop runs in a
    thread so tests can use blocking sockets. Everything started is stopped at teardown."""
    started = []

    def start(handler, **options) -> MllpListener:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        listener = MllpListener("127.0.0.1", 0, handler, **options)
        asyncio.run_coroutine_threadsafe(listener.start(), loop).result(5)
        started.append((loop, thread, listener))
        return listener

    yield start
    for loop, thread, listener in started:
        asyncio.run_coroutine_threadsafe(listener.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture
def inbound(tmp_path):
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    services = make_services(tmp_path / "data", (
        Destination(name="ehr", role="requester", address=f"127.0.0.1:{ehr.port}"),
        Destination(name="accounting", role="accounting", address=f"127.0.0.1:{accounting.port}"),
    ))
    yield Inbound(services, ehr, accounting)
    services.store.engine.dispose()
    ehr.stop()
    accounting.stop()
