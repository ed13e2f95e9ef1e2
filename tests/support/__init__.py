"""Plain helpers shared by tests: builders, peers, corpora, readers, waits.

Fixtures are not here: they live in the `conftest.py` of the folder whose tests use them
(pytest finds those; nothing imports a conftest). Modules here import no fixture and define
none, so a test module imports what it calls, e.g. `from tests.support.wait import wait_until`.
"""
