"""Configuration of the image channels: every key optional (the SCP and the folder are off by
default), values checked when loaded, a taken DICOM port refused with the key to change."""

from __future__ import annotations

import socket

import pytest

from connector.config import DEFAULT_WATCH_PATTERN, HttpSection, load_config
from tests.support.cli import EXAMPLE_DEVICES
from connector.domain.errors import ConfigError, ConnectorError
from connector.ports import free_port
from connector.runtime.server import RunningConnector
from tests.support.net import unused_url

CHANNELS = """
data_dir = "./var"
[dicom]
listen = "127.0.0.1:11112"
ae_title = "DERMA_SCP"
[watch]
folder = "exports"
interval = 0.5
pattern = '^(?P<accession>TD\\d{8})-(?P<kind>photo|dermoscopy)'
kind = "dermoscopy"
[worklist]
enabled = false
folder = "mwl"
xc_station_ae = "CAM01"
dms_station_ae = "DERMATO01"
"""


def write(tmp_path, text: str):
    path = tmp_path / "etc" / "telederm.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_channels_are_off_and_the_worklist_on_when_nothing_is_configured(tmp_path):
    config = load_config(write(tmp_path, ""), {})
    assert config.dicom.listen == "" and config.watch.folder is None
    assert config.watch.pattern == DEFAULT_WATCH_PATTERN
    assert config.worklist.enabled is True
    assert config.worklist_folder == config.data_dir / "orthanc" / "worklists"
    assert (config.worklist.station_ae("XC"), config.worklist.station_ae("DMS")) == (
        "TELEDERM_XC", "TELEDERM_DMS")


def test_every_channel_key_is_read_and_relative_folders_resolve_against_the_file(tmp_path):
    config = load_config(write(tmp_path, CHANNELS), {})
    etc = (tmp_path / "etc").resolve()
    assert (config.dicom.listen, config.dicom.ae_title) == ("127.0.0.1:11112", "DERMA_SCP")
    assert config.watch.folder == etc / "exports"
    assert (config.watch.interval, config.watch.kind) == (0.5, "dermoscopy")
    assert config.watch.pattern.startswith("^(?P<accession>TD")
    assert config.worklist.enabled is False and config.worklist_folder == etc / "mwl"
    assert (config.worklist.station_ae("XC"), config.worklist.station_ae("DMS")) == (
        "CAM01", "DERMATO01")


def test_environment_switches_the_scp_and_the_folder_on(tmp_path):
    config = load_config(write(tmp_path, ""), {"TELEDERM_DICOM_LISTEN": "127.0.0.1:104",
                                               "TELEDERM_WATCH_FOLDER": "/srv/in"})
    assert config.dicom.listen == "127.0.0.1:104" and str(config.watch.folder) == "/srv/in"


@pytest.mark.parametrize("text, where", [
    ('[dicom]\nlisten = "11112"\n', "dicom.listen"),
    ('[dicom]\nae_title = "A_TITLE_FAR_TOO_LONG"\n', "dicom.ae_title"),
    ('[worklist]\nxc_station_ae = "BACK\\\\SLASH"\n', "worklist.xc_station_ae"),
    ('[watch]\npattern = "^(?P<acc>TD)"\n', "watch.pattern"),
    ('[watch]\npattern = "^(unclosed"\n', "watch.pattern"),
    ('[watch]\ninterval = 0\n', "watch.interval"),
    ('[watch]\nkind = "video"\n', "watch.kind"),
])
def test_bad_channel_value_is_refused_naming_the_key(tmp_path, text, where):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text), {})
    assert exc.value.where.endswith(f" [{where}]")


def test_connector_refuses_to_start_naming_dicom_listen_when_the_port_is_taken(tmp_path):
    config = load_config(None, {"TELEDERM_DATA_DIR": str(tmp_path), **EXAMPLE_DEVICES})
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        config = config.model_copy(update={
            "orthanc": config.orthanc.model_copy(update={"managed": False, "url": unused_url()}),
            "http": HttpSection(listen=f"127.0.0.1:{free_port()}"),
            "hl7": config.hl7.model_copy(update={"listen": f"127.0.0.1:{free_port()}"}),
            "dicom": config.dicom.model_copy(update={"listen": f"127.0.0.1:{taken}"})})
        with pytest.raises(ConnectorError) as exc:
            RunningConnector(config).start()
    assert exc.value.where == "dicom.listen" and str(taken) in exc.value.text
    # Everything it had started is stopped: the HL7 port can be bound again.
    host, port = config.hl7.listen.rsplit(":", 1)
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind((host, int(port)))
