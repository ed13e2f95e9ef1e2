"""DICOM TLS for the connector's C-STORE SCP (`[dicom] cert_file`, `key_file`): a pynetdicom
SCU trusting the site's CA associates, echoes and stores; one trusting another CA fails the
handshake; a plain association on the TLS port gets nowhere. The SCP takes declared devices'
AE titles only, and its refusal of an object no case takes names no case. No Orthanc is
needed: the SCP only writes to the store and the data folder."""

import ssl

import pytest
from pydicom.uid import JPEGBaseline8Bit, VLPhotographicImageStorage
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from connector.config import load_config
from connector.demo import DEMO_DEVICE_AE
from connector.entrypoints.dicom_scp import UNMATCHED_COMMENT
from connector.runtime.server import RunningConnector
from tests.support.channels import jpeg_object
from tests.support.cli import EXAMPLE_DEVICES
from tests.support.net import free_port


@pytest.fixture(scope="module")
def scp_port(pki, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dicom-tls")
    config_file = folder / "telederm.toml"
    config_file.write_text(f"""data_dir = "{folder / 'data'}"
[http]
listen = "127.0.0.1:{free_port()}"
[hl7]
listen = "127.0.0.1:{free_port()}"
[orthanc]
managed = false
[worklist]
enabled = false
[dicom]
listen = "127.0.0.1:{free_port()}"
cert_file = "{pki.server_cert}"
key_file = "{pki.server_key}"
[[orthanc.modalities]]
name = "dermatoscope"
ae_title = "{DEMO_DEVICE_AE}"
host = "127.0.0.1"
port = 104
""", encoding="utf-8")
    with RunningConnector(load_config(config_file, environ=EXAMPLE_DEVICES)) as running:
        yield running.dicom_port


def associate(port, ca=None, calling=DEMO_DEVICE_AE):
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    ae.add_requested_context(VLPhotographicImageStorage, JPEGBaseline8Bit)
    tls = None
    if ca is not None:
        context = ssl.create_default_context(cafile=str(ca))
        tls = (context, "127.0.0.1")
    return ae.associate("127.0.0.1", port, ae_title="TELEDERM_SCP", tls_args=tls)


def test_an_scu_trusting_the_sites_ca_echoes_and_is_told_no_case_takes_its_object(scp_port, pki):
    assoc = associate(scp_port, pki.ca)
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0x0000
        status = assoc.send_c_store(jpeg_object(accession="TD99999999"))
        assert status.Status == 0xC000 and status.ErrorComment == UNMATCHED_COMMENT[:64]
    finally:
        assoc.release()


def test_an_scu_trusting_another_ca_fails_the_handshake(scp_port, pki):
    assoc = associate(scp_port, pki.rogue_ca)
    assert not assoc.is_established


def test_a_plain_association_on_the_tls_port_fails(scp_port):
    assoc = associate(scp_port)
    assert not assoc.is_established


def test_an_undeclared_calling_ae_title_is_rejected_over_tls_too(scp_port, pki):
    assoc = associate(scp_port, pki.ca, calling="STRANGER")
    assert assoc.is_rejected
