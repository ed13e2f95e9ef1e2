"""Fixtures for every integration test folder: `pki`, a throwaway PKI per test module
(tests/support/tls_pki.py) for the TLS of the MLLP listeners, the HTTP API and the DICOM SCP."""

import pytest

from tests.support.tls_pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
