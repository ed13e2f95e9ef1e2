"""The `telederm` command line as a user runs it: a real subprocess, real files, a real Orthanc
for `telederm orthanc`, a real SQLite file for `stats` and `audit verify`, `dciodvfy` and
`dcmdump` on what `wrap` writes."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from PIL import Image, ImageDraw

from connector.config import load_config
from connector.ports import free_port
from connector.runtime.server import managed_orthanc
from tests.support.cli import clean_env, one_error_line, process_alive, telederm, write_config
from tests.support.dciodvfy import dciodvfy_errors
from tests.support.cli import EXAMPLE_DEVICES

COMMANDS = ("demo", "serve", "wrap", "import", "hl7", "stats", "audit", "config", "billing",
            "orthanc", "doctor")
SUBCOMMAND_HELP = [("demo",), ("serve",), ("wrap",), ("import",), ("hl7",), ("hl7", "send"),
                   ("stats",), ("audit",), ("audit", "verify"), ("config",), ("config", "check"),
                   ("billing",), ("billing", "explain"), ("billing", "report"), ("orthanc",),
                   ("doctor",)]
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
VL_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4"
SKIN_OF_BACK = "66643007"
LEFT = "7771000"
WRAP_PATIENT = ["--patient-id", "P1", "--patient-name", "DUPONT^Hélène", "--birth-date", "19580312",
                "--sex", "F", "--accession", "ACC1", "--site", SKIN_OF_BACK, "--laterality", "L"]


def jpeg(color: tuple[int, int, int], *, exif_gps: bool = False) -> bytes:
    """A small lesion-like photo made with Pillow; with `exif_gps`, the EXIF a phone would add."""
    img = Image.new("RGB", (320, 240), color)
    ImageDraw.Draw(img).ellipse((120, 80, 200, 160), fill=(90, 55, 40))
    out = io.BytesIO()
    if exif_gps:
        exif = Image.Exif()
        exif[0x010F] = "TestPhone"        # Make
        exif[0xA431] = "SN-TEST-7"        # BodySerialNumber
        exif[0x8825] = {1: "N", 2: (43.0, 36.0, 16.0), 3: "E", 4: (3.0, 52.0, 36.0)}  # GPS
        img.save(out, "JPEG", quality=90, exif=exif)
    else:
        img.save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def photos(tmp_path) -> tuple[Path, Path]:
    (tmp_path / "photos").mkdir()
    plain, with_gps = tmp_path / "photos" / "a.jpg", tmp_path / "photos" / "b.jpg"
    plain.write_bytes(jpeg((224, 180, 150)))
    with_gps.write_bytes(jpeg((210, 170, 140), exif_gps=True))
    return plain, with_gps


@pytest.fixture
def config_file(tmp_path) -> Path:
    return write_config(tmp_path / "telederm.toml", tmp_path / "data")


@pytest.fixture
def orthanc_config(config_file):
    """A config whose managed Orthanc is stopped when the test ends, whatever happened."""
    yield config_file
    managed_orthanc(load_config(config_file, environ=EXAMPLE_DEVICES)).stop()


# --- help ----------------------------------------------------------------------------------

def test_help_lists_every_command_when_run_from_the_venv_script():
    script = Path(sys.executable).parent / "telederm"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                            env=clean_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), (command, result.stdout)


@pytest.mark.parametrize("words", SUBCOMMAND_HELP, ids=" ".join)
def test_subcommand_help_exits_0_when_asked(words):
    result = telederm(*words, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: telederm " + " ".join(words))


# --- wrap ----------------------------------------------------------------------------------

def test_wrap_writes_valid_vl_photos_without_exif_when_given_two_jpegs(tmp_path, photos):
    out = tmp_path / "out"
    result = telederm("wrap", *photos, "--out", out, *WRAP_PATIENT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(out / "a.dcm"), str(out / "b.dcm")]
    for source, line in zip(photos, result.stdout.splitlines()):
        target = Path(line)
        assert dciodvfy_errors(target) == [], target
        dump = subprocess.run(["dcmdump", str(target)], capture_output=True, text=True,
                              errors="replace", timeout=60).stdout  # names in ISO_IR 100
        assert re.search(r"^\(0008,0050\) SH \[ACC1\]\s+#.*AccessionNumber$", dump, re.M), dump
        assert "# Used TransferSyntax: JPEG Baseline" in dump
        blob = target.read_bytes()
        assert b"Exif" not in blob and b"SN-TEST-7" not in blob and b"TestPhone" not in blob
        ds = pydicom.dcmread(target)
        assert ds.file_meta.TransferSyntaxUID == JPEG_BASELINE and ds.SOPClassUID == VL_PHOTO
        assert (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.PatientSex) == (
            "DUPONT^Hélène", "P1", "19580312", "F")
        (region,) = ds.AnatomicRegionSequence
        assert region.CodeValue == SKIN_OF_BACK
        assert region.AnatomicRegionModifierSequence[0].CodeValue == LEFT


def test_wrap_gives_the_same_sop_instance_uid_when_the_same_file_is_wrapped_twice(tmp_path, photos):
    uids = []
    for run in ("first", "second"):
        result = telederm("wrap", *photos, "--out", tmp_path / run, *WRAP_PATIENT)
        assert result.returncode == 0, result.stderr
        uids.append([pydicom.dcmread(line).SOPInstanceUID for line in result.stdout.splitlines()])
    assert uids[0] == uids[1]
    assert uids[0][0] != uids[0][1]


# --- bad input: exit 2, one line ------------------------------------------------------------

def test_wrap_exits_2_with_one_line_when_the_file_is_missing(tmp_path):
    line = one_error_line(telederm("wrap", tmp_path / "nope.jpg", "--out", tmp_path / "out"), 2)
    assert "nope.jpg" in line


def test_wrap_exits_2_with_one_line_when_the_file_is_not_a_jpeg(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo at all\n")
    line = one_error_line(telederm("wrap", text, "--out", tmp_path / "out"), 2)
    assert "JPEG" in line


def test_wrap_error_names_the_bad_file_when_one_of_several_inputs_is_not_a_jpeg(tmp_path, photos):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo at all\n")
    line = one_error_line(telederm("wrap", photos[0], text, "--out", tmp_path / "out"), 2)
    assert "notes.jpg" in line


def test_wrap_names_a_missing_file_before_writing_any_when_one_of_several_is_absent(tmp_path, photos):
    line = one_error_line(telederm("wrap", *photos, tmp_path / "gone.jpg", "--out",
                                   tmp_path / "out"), 2)
    assert "gone.jpg" in line
    assert not (tmp_path / "out").exists()


def test_wrap_exits_2_with_one_line_when_the_site_code_is_unknown(tmp_path, photos):
    line = one_error_line(telederm("wrap", photos[0], "--out", tmp_path / "out", "--site", "999999"), 2)
    assert "999999" in line


@pytest.mark.parametrize("birth_date", ["19581340", "1958", "not-a-date"])
def test_wrap_exits_2_with_one_line_when_the_birth_date_is_invalid(tmp_path, photos, birth_date):
    line = one_error_line(
        telederm("wrap", photos[0], "--out", tmp_path / "out", "--birth-date", birth_date), 2)
    assert "birth date" in line
    assert not (tmp_path / "out" / "a.dcm").exists()


def test_wrap_shows_the_traceback_when_debug_is_given(tmp_path):
    result = telederm("--debug", "wrap", tmp_path / "nope.jpg", "--out", tmp_path / "out")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_config_check_exits_2_with_one_line_when_the_config_file_is_missing(tmp_path):
    line = one_error_line(telederm("config", "check", "--config", tmp_path / "absent.toml"), 2)
    assert "absent.toml" in line


def test_stats_exits_2_with_one_line_when_the_config_is_not_toml(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('data_dir = "unterminated\n[http\n')
    line = one_error_line(telederm("stats", "--config", bad), 2)
    assert "TOML" in line and "bad.toml" in line


DESTINATION = 'name = "ehr"\nrole = "requester"\naddress = "127.0.0.1:6661"\n'


@pytest.mark.parametrize("body, named", [
    ('[http]\nlisen = "127.0.0.1:8780"\n', "lisen"),
    ('[orthanc]\nstable_agee = 5\n', "stable_agee"),
    ('[telemetry]\nenabled = true\n', "telemetry"),
    ('datadir = "./elsewhere"\n', "datadir"),
    ('[api]\ntokns = []\n', "tokns"),
    pytest.param('[[destination]]\n' + DESTINATION, "destination"),
    pytest.param('[[destinations]]\n' + DESTINATION + 'transprt = "https"\n', "transprt"),
], ids=["http-key", "orthanc-key", "section", "top-level-key", "api-key", "array-of-tables",
        "destination-key"])
def test_config_check_exits_2_with_one_line_when_the_config_has_an_unknown_key(tmp_path, body, named):
    config = tmp_path / "telederm.toml"
    config.write_text(body)
    line = one_error_line(telederm("config", "check", "--config", config), 2)
    assert named in line


def test_hl7_send_exits_2_with_one_line_when_the_address_is_not_host_port(tmp_path):
    message = tmp_path / "m.hl7"
    message.write_text("MSH|^~\\&|A|B|C|D|20260101||ORM^O01|X1|P|2.5\n")
    line = one_error_line(telederm("hl7", "send", message, "--to", "nowhere"), 2)
    assert "--to" in line


def test_hl7_send_exits_2_with_one_line_when_the_file_is_missing(tmp_path):
    line = one_error_line(telederm("hl7", "send", tmp_path / "absent.hl7", "--to",
                                   f"127.0.0.1:{free_port()}"), 2)
    assert "absent.hl7" in line


def test_hl7_send_gives_one_line_and_no_traceback_when_the_file_is_latin_1(tmp_path):
    message = tmp_path / "latin1.hl7"
    message.write_bytes("MSH|^~\\&|A|B|C|D|20260101||ORM^O01|X1|P|2.5|||||FRA|8859/1\n"
                        "PID|1||123^^^CHU||LEFÈVRE^Hélène\n".encode("latin-1"))
    result = telederm("hl7", "send", message, "--to", f"127.0.0.1:{free_port()}", "--timeout", "5")
    assert result.returncode in (1, 2)
    one_error_line(result, result.returncode)


def test_hl7_send_exits_1_with_one_line_when_nobody_listens(tmp_path):
    message = tmp_path / "m.hl7"
    message.write_text("MSH|^~\\&|A|B|C|D|20260101||ORM^O01|X1|P|2.5\n")
    port = free_port()
    line = one_error_line(telederm("hl7", "send", message, "--to", f"127.0.0.1:{port}",
                                   "--timeout", "5"), 1)
    assert str(port) in line


def test_import_exits_2_with_one_line_when_the_folder_is_missing(tmp_path, config_file):
    line = one_error_line(telederm("import", tmp_path / "nowhere", "--accession", "ACC1",
                                   "--config", config_file), 2)
    assert "nowhere" in line


def test_import_exits_2_with_one_line_when_the_case_does_not_exist(tmp_path, config_file, photos):
    line = one_error_line(telederm("import", photos[0].parent, "--accession", "NO-SUCH-CASE",
                                   "--config", config_file), 2)
    assert "NO-SUCH-CASE" in line


# --- config check, audit verify, stats on a fresh data folder ------------------------------

def test_config_check_prints_config_ok_when_the_config_is_good(tmp_path):
    config = write_config(tmp_path / "telederm.toml", tmp_path / "data", """
[[destinations]]
name = "ehr"
role = "requester"
address = "127.0.0.1:6661"
[[destinations]]
name = "accounting"
role = "accounting"
address = "127.0.0.1:6662"
[[api.tokens]]
name = "admin"
role = "admin"
token = "cli-test-token"
""")
    result = telederm("config", "check", "--config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config ok")
    assert "'ehr', 'accounting'" in result.stdout and f"data_dir={tmp_path / 'data'}" in result.stdout


def test_audit_verify_says_intact_when_the_data_folder_is_fresh(config_file):
    result = telederm("audit", "verify", "--config", config_file)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("audit chain intact: 0 rows, 0 checkpoint(s) in ")


def test_stats_prints_json_when_the_data_folder_is_fresh(config_file, tmp_path):
    result = telederm("stats", "--config", config_file)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["cases"] == {"opened": 0, "by_status": {}}
    assert stats["outbox"]["pending"] == 0
    assert (tmp_path / "data" / "telederm.db").is_file()


# --- orthanc start | status | stop ---------------------------------------------------------

def test_orthanc_start_status_stop_manage_one_orthanc_when_given_a_config(orthanc_config):
    config = load_config(orthanc_config, environ=EXAMPLE_DEVICES)

    started = telederm("orthanc", "start", "--config", orthanc_config)
    assert started.returncode == 0, started.stderr
    assert config.orthanc.url in started.stdout

    status = json.loads(telederm("orthanc", "status", "--config", orthanc_config).stdout)
    assert status["running"] is True and isinstance(status["pid"], int)
    assert status["version"]  # its REST API answers
    pid = status["pid"]
    assert process_alive(pid)

    again = telederm("orthanc", "start", "--config", orthanc_config)
    assert str(pid) in one_error_line(again, 1)

    stopped = telederm("orthanc", "stop", "--config", orthanc_config)
    assert stopped.returncode == 0, stopped.stderr
    status = json.loads(telederm("orthanc", "status", "--config", orthanc_config).stdout)
    assert status["running"] is False and status["pid"] is None
    assert not process_alive(pid)


def test_orthanc_status_says_not_running_when_never_started(config_file):
    result = telederm("orthanc", "status", "--config", config_file)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["running"] is False


def test_orthanc_start_exits_2_with_one_line_when_the_config_uses_an_external_orthanc(tmp_path):
    config = write_config(tmp_path / "telederm.toml", tmp_path / "data")
    config.write_text(config.read_text().replace("[orthanc]\n", "[orthanc]\nmanaged = false\n"))
    line = one_error_line(telederm("orthanc", "start", "--config", config), 2)
    assert "orthanc.managed" in line


def test_config_check_and_serve_refuse_the_shipped_example_dermatoscope_outside_the_demo(tmp_path):
    config = write_config(tmp_path / "telederm.toml", tmp_path / "data")
    refused = clean_env(TELEDERM_IMAGES_EXAMPLE_DEVICES="false")
    for command in (("config", "check"), ("serve",)):
        line = one_error_line(telederm(*command, "--config", config, env=refused), 2)
        assert "devices.dermlite-dl5" in line and "shipped example" in line, line
    assert telederm("config", "check", "--config", config).returncode == 0  # the tests' own flag
