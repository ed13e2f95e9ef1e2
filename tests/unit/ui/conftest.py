"""The real app on a real SQLite store with the users of tests.support.ui (no Orthanc: no
page here draws a photo). The services' clock is the test's."""

from __future__ import annotations

import secrets

import pytest

from connector.bootstrap import build
from connector.demo import local_config
from connector.entrypoints.api.app import create_app
from connector.entrypoints.ui import passwords
from connector.ports import free_port
from tests.support.ui import PASSWORD, USERS, Clock


@pytest.fixture
def services(tmp_path):
    config = local_config(tmp_path, ehr_port=free_port(), accounting_port=free_port(),
                          token=secrets.token_urlsafe(8))
    svc = build(config)
    svc.clock = Clock()
    with svc.unit() as uow:
        for login, (role, name, rpps) in USERS.items():
            uow.users.add(login=login, name=name, role=role, practitioner_id=rpps,
                          password=passwords.hash_password(PASSWORD), now=uow.moment.iso)
    yield svc
    svc.store.close()


@pytest.fixture
def app(services):
    return create_app(services)
