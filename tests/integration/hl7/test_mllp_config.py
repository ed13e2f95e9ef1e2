"""The [hl7] keys (TLS, limits, timeouts), [[hl7.listeners]] and the TLS keys of
[[destinations]]: what load_config accepts, what it refuses and how it says so, and that
`RunningConnector` starts what the config describes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from connector.config import load_config
from connector.domain.errors import ConfigError, ConnectorError
from connector.hl7.client import send_message
from connector.hl7.tls import client_context
from connector.ports import free_port
from connector.runtime.server import RunningConnector
from tests.support.cli import EXAMPLE_DEVICES


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "telederm.toml"
    path.write_text(body, encoding="utf-8")
    return path


def refused(path: Path, environ: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ=environ or {})
    return exc.value


def key_of(error: ConfigError) -> str:
    """The key a problem names: `<file or variable> [key]`."""
    return error.where.rpartition(" [")[2].rstrip("]")


def order(control_id: str) -> str:
    return (f"MSH|^~\\&|DPI|CHU|TELEDERM|TD|20261204090000||ORM^O01^ORM_O01|{control_id}|P|2.5"
            f"|||||FRA|UNICODE UTF-8\rPID|1||CFG-{control_id}^^^CHU||LEFÈVRE^Zoé\rPV1|1|O\r"
            f"ORC|NW|PL-{control_id}^DPI||||||||||801234567897^MARTIN^Jean\r"
            f"OBR|1|PL-{control_id}^DPI||TELEDERM^Télé-expertise^L|R\r"
            "OBX|1|CWE|CONSENT^Consentement du patient à la télé-expertise^L||Y^Oui^HL70136"
            "||||||F\r")


# --- [hl7] -------------------------------------------------------------------------------------

def test_defaults_are_one_plain_listener_20_mb_and_the_timeouts(tmp_path):
    config = load_config(None, environ={"TELEDERM_DATA_DIR": str(tmp_path)})
    (listener,) = config.hl7.mllp_listeners
    assert (listener.name, listener.listen, listener.tls) == ("default", "127.0.0.1:2575", False)
    assert (config.hl7.max_message_mb, config.hl7.idle_timeout, config.hl7.read_timeout) == \
        (20.0, 300.0, 60.0)


def test_single_listener_form_with_tls_and_relative_paths(tmp_path, pki):
    for name in ("server.pem", "server.key", "clients-ca.pem"):
        (tmp_path / name).write_bytes(b"")  # existence is checked here, contents at start
    config = load_config(write(tmp_path, """
[hl7]
listen = "0.0.0.0:12575"
cert_file = "server.pem"
key_file = "server.key"
client_ca_file = "clients-ca.pem"
require_client_cert = true
max_message_mb = 64
idle_timeout = 600
read_timeout = 15.5
"""), environ={})
    (listener,) = config.hl7.mllp_listeners
    assert listener.tls and listener.require_client_cert
    assert listener.cert_file == tmp_path / "server.pem"
    assert listener.client_ca_file == tmp_path / "clients-ca.pem"
    assert (config.hl7.max_message_mb, config.hl7.idle_timeout, config.hl7.read_timeout) == \
        (64.0, 600.0, 15.5)


def test_environment_overrides_the_hl7_keys(tmp_path, pki):
    config = load_config(None, environ={
        "TELEDERM_DATA_DIR": str(tmp_path), "TELEDERM_HL7_MAX_MESSAGE_MB": "32",
        "TELEDERM_HL7_CERT_FILE": str(pki.server_cert),
        "TELEDERM_HL7_KEY_FILE": str(pki.server_key), "TELEDERM_HL7_READ_TIMEOUT": "5"})
    assert config.hl7.max_message_mb == 32.0 and config.hl7.read_timeout == 5.0
    assert config.hl7.mllp_listeners[0].cert_file == pki.server_cert


def test_several_listeners(tmp_path, pki):
    config = load_config(write(tmp_path, f"""
[hl7]
max_message_mb = 25
[[hl7.listeners]]
name = "ehr"
listen = "127.0.0.1:2575"
[[hl7.listeners]]
name = "lab"
listen = "0.0.0.0:12575"
cert_file = "{pki.server_cert}"
key_file = "{pki.server_key}"
"""), environ={})
    ehr, lab = config.hl7.mllp_listeners
    assert (ehr.name, ehr.listen, ehr.tls) == ("ehr", "127.0.0.1:2575", False)
    assert (lab.name, lab.host_port, lab.tls, lab.require_client_cert) == \
        ("lab", ("0.0.0.0", 12575), True, False)
    assert config.hl7.listen == "127.0.0.1:2575"  # the first listener's address


@pytest.mark.parametrize("body,key,expected", [
    ('[hl7]\nlisten = "127.0.0.1:2575"\nport = 4\n', "hl7.port", "unknown key"),
    ('[[hl7.listeners]]\nname = "a"\nlisten = "127.0.0.1:1"\nbacklog = 5\n',
     "hl7.listeners[0].backlog", "unknown key"),
    ('[hl7.listeners]\nname = "a"\n', "hl7.listeners", "list"),
    ('[[hl7.listeners]]\nlisten = "127.0.0.1:1"\n', "hl7.listeners[0].name", "missing"),
    ('[[hl7.listeners]]\nname = "a"\n', "hl7.listeners[0].listen", "missing"),
    ('[[hl7.listeners]]\nname = "a"\nlisten = "127.0.0.1:1"\n'
     '[[hl7.listeners]]\nname = "a"\nlisten = "127.0.0.1:2"\n',
     "hl7.listeners", "listeners[1].name 'a' is already used"),
    ('[[hl7.listeners]]\nname = "a"\nlisten = "127.0.0.1:1"\n'
     '[[hl7.listeners]]\nname = "b"\nlisten = "127.0.0.1:1"\n',
     "hl7.listeners", "listeners[1].listen '127.0.0.1:1' is already used"),
    ('[hl7]\nlisten = "127.0.0.1:2575"\n[[hl7.listeners]]\nname = "a"\nlisten = "127.0.0.1:1"\n',
     "hl7", "[hl7] listen cannot be combined with [[hl7.listeners]]"),
    ('[[hl7.listeners]]\nname = "a"\nlisten = "localhost"\n', "hl7.listeners[0].listen",
     "must be HOST:PORT"),
    ('[hl7]\nmax_message_mb = 0\n', "hl7.max_message_mb", "must be a positive number"),
    ('[hl7]\nread_timeout = -1\n', "hl7.read_timeout", "must be a positive number"),
    ('[hl7]\nidle_timeout = "soon"\n', "hl7.idle_timeout", "valid number"),
    ('[hl7]\nrequire_client_cert = true\n', "hl7.cert_file",
     "TLS keys are set but cert_file is not"),
    ('[hl7]\ncert_file = "missing.pem"\n', "hl7.cert_file", "does not exist"),
])
def test_bad_hl7_settings_are_refused_with_a_clear_error(tmp_path, body, key, expected):
    error = refused(write(tmp_path, body))
    assert key in [key_of(p) for p in error.problems], error.one_line()
    assert expected in error.text, error.one_line()


def test_require_client_cert_needs_client_ca_file(tmp_path, pki):
    error = refused(write(tmp_path, f"""
[[hl7.listeners]]
name = "lab"
listen = "127.0.0.1:12575"
cert_file = "{pki.server_cert}"
key_file = "{pki.server_key}"
require_client_cert = true
"""))
    assert "require_client_cert needs client_ca_file" in error.text
    assert "hl7.listeners[0].client_ca_file" in [key_of(p) for p in error.problems]


def test_listen_from_the_environment_cannot_be_combined_with_listeners(tmp_path):
    path = write(tmp_path, '[[hl7.listeners]]\nname = "a"\nlisten = "127.0.0.1:1"\n')
    error = refused(path, {"TELEDERM_HL7_LISTEN": "127.0.0.1:2"})
    assert "cannot be combined" in error.text


# --- [[destinations]] TLS keys -----------------------------------------------------------------

def test_mllp_destination_over_mutual_tls(tmp_path, pki):
    config = load_config(write(tmp_path, f"""
[[destinations]]
name = "ehr"
role = "requester"
address = "ehr.chu.local:12575"
tls = true
ca_file = "{pki.ca}"
cert_file = "{pki.client_cert}"
key_file = "{pki.client_key}"
server_name = "mllp.test"
[[destinations]]
name = "accounting"
role = "accounting"
address = "127.0.0.1:6662"
"""), environ={})
    ehr, accounting = config.destinations
    assert (ehr.tls, ehr.ca_file, ehr.cert_file, ehr.server_name) == \
        (True, str(pki.ca), str(pki.client_cert), "mllp.test")
    assert (accounting.tls, accounting.ca_file) == (False, "")


@pytest.mark.parametrize("extra,expected", [
    ('ca_file = "{ca}"', "ca_file need tls = true"),
    ('tls = true\nkey_file = "{ca}"', "key_file needs cert_file"),
    ('tls = true\nca_file = "nope.pem"', "does not exist"),
    ('tls = "maybe"', "valid boolean"),
    ('tls = true\nverify = false', "unknown key"),
])
def test_bad_mllp_destination_tls_keys_are_refused(tmp_path, pki, extra, expected):
    body = ('[[destinations]]\nname = "ehr"\nrole = "requester"\naddress = "127.0.0.1:1"\n'
            + extra.format(ca=pki.ca) + "\n")
    assert expected in refused(write(tmp_path, body)).text


def test_tls_keys_are_refused_where_they_do_not_apply(tmp_path, pki):
    https = refused(write(tmp_path, '[[destinations]]\nname = "h"\nrole = "requester"\n'
                                    'transport = "https"\naddress = "https://x.test/hl7"\n'
                                    'server_name = "x.test"\n'))
    assert "tls and server_name are for mllp destinations" in https.text
    files = refused(write(tmp_path, '[[destinations]]\nname = "f"\nrole = "accounting"\n'
                                    f'transport = "file"\naddress = "drop"\nca_file = "{pki.ca}"\n'))
    assert "TLS keys do not apply to transport file" in files.text


def test_https_destination_takes_a_client_certificate(tmp_path, pki):
    config = load_config(write(tmp_path, f"""
[[destinations]]
name = "h"
role = "requester"
transport = "https"
address = "https://x.test/hl7"
ca_file = "{pki.ca}"
cert_file = "{pki.client_cert}"
key_file = "{pki.client_key}"
"""), environ={})
    (dest,) = config.destinations
    assert (dest.ca_file, dest.cert_file, dest.key_file) == \
        (str(pki.ca), str(pki.client_cert), str(pki.client_key))


# --- what RunningConnector makes of it ---------------------------------------------------------

def base_env(tmp_path: Path) -> dict:
    return {"TELEDERM_DATA_DIR": str(tmp_path / "data"),
            "TELEDERM_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
            "TELEDERM_ORTHANC_MANAGED": "false", "TELEDERM_WORKLIST_ENABLED": "false",
            **EXAMPLE_DEVICES}


def test_the_single_listener_form_serves_tls(tmp_path, pki):
    port = free_port()
    config = load_config(None, environ=base_env(tmp_path) | {
        "TELEDERM_HL7_LISTEN": f"127.0.0.1:{port}",
        "TELEDERM_HL7_CERT_FILE": str(pki.server_cert),
        "TELEDERM_HL7_KEY_FILE": str(pki.server_key)})
    with RunningConnector(config) as running:
        assert running.hl7_ports == {"default": port}
        ack = send_message("127.0.0.1", port, order("S1"), timeout=30,
                           tls=client_context(pki.ca))
        assert (ack.code, ack.control_id_acked) == ("AA", "S1")


def test_a_listener_that_cannot_bind_is_named_and_the_others_are_stopped(tmp_path):
    first = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        path = write(tmp_path, f"""
[[hl7.listeners]]
name = "ehr"
listen = "127.0.0.1:{first}"
[[hl7.listeners]]
name = "lab"
listen = "127.0.0.1:{taken}"
""")
        config = load_config(path, environ=base_env(tmp_path))
        with pytest.raises(ConnectorError) as exc:
            RunningConnector(config).start()
    assert exc.value.where == "hl7.listeners[1].listen" and str(taken) in exc.value.text
    with socket.socket() as again:  # the first listener was stopped: its port is free
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", first))


def test_a_bad_certificate_stops_the_start_with_the_key_named(tmp_path, pki):
    config = load_config(None, environ=base_env(tmp_path) | {
        "TELEDERM_HL7_LISTEN": f"127.0.0.1:{free_port()}",
        "TELEDERM_HL7_CERT_FILE": str(pki.server_cert),
        "TELEDERM_HL7_KEY_FILE": str(pki.client_key)})  # not the certificate's key
    with pytest.raises(ConfigError) as exc:
        RunningConnector(config).start()
    assert exc.value.where == "hl7.cert_file"
