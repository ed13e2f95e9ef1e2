"""The `listener_on` fixture: a real MllpListener on a free localhost port.

Not a conftest.py on purpose (a second `conftest` module would shadow the root one for
`from conftest import ...`); test modules import the fixture by name.
"""

import asyncio
import threading

import pytest

from connector.hl7.listener import MllpListener


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
