"""With HTTPS on (`[http] cert_file`), the managed Orthanc's plugin calls the connector over
https:// with this run's internal token and pins the connector's certificate: its worklist
page, which asks the connector for the cases, answers 200 (502 if the call failed)."""

from __future__ import annotations

import secrets

import httpx

from connector.demo import local_config
from connector.ports import free_port
from connector.runtime.server import RunningConnector


def test_the_plugin_reaches_the_api_over_https(tmp_path, pki):
    config = local_config(tmp_path, ehr_port=free_port(), accounting_port=free_port(),
                          token=secrets.token_urlsafe(8))
    config = config.model_copy(update={"http": config.http.model_copy(update={
        "cert_file": pki.server_cert, "key_file": pki.server_key})})
    with RunningConnector(config) as running:
        orthanc = running.orthanc
        page = httpx.get(f"{orthanc.url}/telederm/worklist",
                         auth=(orthanc.username, orthanc.password), timeout=30)
        assert page.status_code == 200, page.text
        assert orthanc.written_token() == running.services.internal_token
