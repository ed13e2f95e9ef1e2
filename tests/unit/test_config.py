"""load_config: a real TOML file in tmp_path, environment given as a dict (never os.environ)."""

from pathlib import Path

import pytest

from connector.config import Config, default_mappings_dir, load_config, split_address
from connector.domain.errors import ConfigError

FULL = """
data_dir = "./var"
[http]
listen = "0.0.0.0:9780"
[hl7]
listen = "127.0.0.1:3575"
[orthanc]
managed = false
url = "http://pacs.local:8042"
dicom_port = 11112
username = "u"
password = "p"
stable_age = 5
[database]
url = "sqlite:///db/telederm.db"
[facility]
name = "DERMA_HUB"
id = "HUB01"
[reports]
language = "en"
[worker]
poll_seconds = 0.25
max_attempts = 7
[[destinations]]
name = "ehr"
role = "requester"
transport = "mllp"
address = "127.0.0.1:6661"
[[destinations]]
name = "accounting"
role = "accounting"
address = "billing.local:6662"
[[api.tokens]]
name = "dermato-1"
role = "specialist"
token = "s3cret"
"""


def write(tmp_path: Path, text: str, name: str = "telederm.toml") -> Path:
    path = tmp_path / "etc" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def refused(path, environ=None) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_config(path, environ or {})
    return exc.value


def key_of(error: ConfigError) -> str:
    """The key a problem names: `<file or variable> [key]`."""
    return error.where.rpartition(" [")[2].rstrip("]")


def test_every_key_is_read_when_the_file_sets_them_all(tmp_path):
    config = load_config(write(tmp_path, FULL), {})
    etc = (tmp_path / "etc").resolve()
    assert config.data_dir == etc / "var"
    assert (config.http.listen, config.hl7.listen) == ("0.0.0.0:9780", "127.0.0.1:3575")
    assert config.orthanc.managed is False
    assert (config.orthanc.url, config.orthanc.dicom_port, config.orthanc.username,
            config.orthanc.password, config.orthanc.stable_age) == (
        "http://pacs.local:8042", 11112, "u", "p", 5)
    assert config.database.url == f"sqlite:///{etc / 'db' / 'telederm.db'}"
    assert (config.facility.name, config.facility.id, config.reports.language) == (
        "DERMA_HUB", "HUB01", "en")
    assert (config.worker.poll_seconds, config.worker.max_attempts) == (0.25, 7)


def test_defaults_apply_when_the_file_is_empty(tmp_path):
    path = write(tmp_path, "")
    config = load_config(path, {})
    assert config.data_dir == path.parent.resolve() / "var"
    assert config == Config(data_dir=path.parent.resolve() / "var")
    assert config.mappings_dir == default_mappings_dir()
    assert config.destinations == () and config.api.tokens == ()
    assert config.db_url == f"sqlite:///{config.data_dir / 'telederm.db'}"


def test_data_dir_is_under_the_current_folder_when_no_file_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {})
    assert config.data_dir == tmp_path.resolve() / "var"


def test_relative_paths_resolve_against_the_file_folder_when_run_from_elsewhere(tmp_path, monkeypatch):
    path = write(tmp_path, 'data_dir = "data"\nmappings_dir = "../maps"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path, {})
    assert config.data_dir == (tmp_path / "etc" / "data").resolve()
    assert config.mappings_dir == (tmp_path / "maps").resolve()


def test_absolute_paths_are_kept_when_given(tmp_path):
    target = tmp_path / "abs-data"
    path = write(tmp_path, f'data_dir = "{target}"\n[database]\nurl = "sqlite:///{target}/x.db"\n')
    config = load_config(path, {})
    assert config.data_dir == target
    assert config.database.url == f"sqlite:///{target}/x.db"


def test_database_url_is_kept_as_is_when_not_sqlite(tmp_path):
    url = "postgresql+psycopg://telederm@db.local/telederm"
    config = load_config(write(tmp_path, f'[database]\nurl = "{url}"\n'), {})
    assert config.db_url == url


def test_section_key_is_overridden_when_environment_sets_it(tmp_path):
    environ = {"TELEDERM_HTTP_LISTEN": "127.0.0.1:1234", "TELEDERM_ORTHANC_DICOM_PORT": "4343",
               "TELEDERM_ORTHANC_MANAGED": "no", "TELEDERM_WORKER_POLL_SECONDS": "2.5",
               "TELEDERM_FACILITY_NAME": "ÉLÉPHANT"}
    config = load_config(write(tmp_path, FULL), environ)
    assert config.http.listen == "127.0.0.1:1234"
    assert config.orthanc.dicom_port == 4343
    assert config.orthanc.managed is False
    assert config.worker.poll_seconds == 2.5
    assert config.facility.name == "ÉLÉPHANT"
    assert config.hl7.listen == "127.0.0.1:3575"  # untouched keys keep the file's value


def test_top_level_key_is_overridden_when_environment_sets_it(tmp_path):
    config = load_config(write(tmp_path, FULL), {"TELEDERM_DATA_DIR": "/srv/telederm"})
    assert config.data_dir == Path("/srv/telederm")


def test_relative_data_dir_from_environment_resolves_against_file_folder_when_file_is_given(tmp_path):
    config = load_config(write(tmp_path, ""), {"TELEDERM_DATA_DIR": "spool"})
    assert config.data_dir == (tmp_path / "etc" / "spool").resolve()


def test_relative_sqlite_url_from_environment_resolves_against_file_folder_when_file_is_given(tmp_path):
    config = load_config(write(tmp_path, ""), {"TELEDERM_DATABASE_URL": "sqlite:///db/t.db"})
    assert config.db_url == f"sqlite:///{(tmp_path / 'etc' / 'db' / 't.db').resolve()}"


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("1", True), ("YES", True), ("on", True),
    ("false", False), ("0", False), ("No", False), ("OFF", False)])
def test_boolean_words_are_understood_when_given_in_environment(tmp_path, text, expected):
    config = load_config(write(tmp_path, ""), {"TELEDERM_ORTHANC_MANAGED": text})
    assert config.orthanc.managed is expected


def test_bad_boolean_is_refused_when_given_in_environment(tmp_path):
    error = refused(write(tmp_path, ""), {"TELEDERM_ORTHANC_MANAGED": "maybe"})
    assert error.where == "TELEDERM_ORTHANC_MANAGED [orthanc.managed]"
    assert "maybe" in error.text and error.hint


def test_bad_boolean_is_refused_when_given_in_file(tmp_path):
    error = refused(write(tmp_path, '[orthanc]\nmanaged = "sometimes"\n'))
    assert key_of(error) == "orthanc.managed"


def test_bad_integer_is_refused_when_given_in_file(tmp_path):
    error = refused(write(tmp_path, '[orthanc]\nstable_age = "soon"\n'))
    assert key_of(error) == "orthanc.stable_age" and "integer" in error.text


def test_bad_integer_is_refused_when_given_in_environment(tmp_path):
    error = refused(write(tmp_path, ""), {"TELEDERM_WORKER_MAX_ATTEMPTS": "many"})
    assert error.where.startswith("TELEDERM_WORKER_MAX_ATTEMPTS ")


def test_unknown_section_is_refused_when_present_in_file(tmp_path):
    path = write(tmp_path, "[ortanc]\nurl = 'http://x'\n")
    error = refused(path)
    assert error.where == f"{path} [ortanc]" and "unknown key" in error.text


def test_unknown_key_is_refused_when_present_in_a_known_section(tmp_path):
    error = refused(write(tmp_path, '[http]\nlisten = "127.0.0.1:1"\nlsten = "x"\n'))
    assert key_of(error) == "http.lsten" and "unknown key" in error.text


def test_unknown_top_level_key_is_refused_when_present_in_file(tmp_path):
    error = refused(write(tmp_path, 'data_dri = "/srv/telederm"\n'))
    assert key_of(error) == "data_dri"


def test_unknown_key_is_refused_when_present_in_api_section(tmp_path):
    error = refused(write(tmp_path, '[[api.token]]\nname="a"\nrole="admin"\ntoken="x"\n'))
    assert key_of(error) == "api.token"


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:", ":2575", "127.0.0.1:http",
                                     "127.0.0.1:65536", "127.0.0.1:-1"])
def test_listen_address_is_refused_when_not_host_port(tmp_path, address):
    error = refused(write(tmp_path, f'[hl7]\nlisten = "{address}"\n'))
    assert key_of(error) == "hl7.listen" and address in error.text


def test_http_listen_is_refused_when_environment_gives_no_port(tmp_path):
    error = refused(write(tmp_path, ""), {"TELEDERM_HTTP_LISTEN": "0.0.0.0"})
    assert error.where == "TELEDERM_HTTP_LISTEN [http.listen]"


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:2575", ("127.0.0.1", 2575)), ("[::1]:0", ("[::1]", 0)),
    ("ehr.example.org:65535", ("ehr.example.org", 65535))])
def test_split_address_returns_host_and_port_when_well_formed(text, expected):
    assert split_address(text, "x") == expected


def test_report_language_is_refused_when_not_fr_or_en(tmp_path):
    error = refused(write(tmp_path, '[reports]\nlanguage = "de"\n'))
    assert key_of(error) == "reports.language"


def test_missing_file_is_refused_when_path_does_not_exist(tmp_path):
    path = tmp_path / "nowhere.toml"
    error = refused(path)
    assert error.where == str(path) and "does not exist" in error.text and error.hint


def test_folder_is_refused_when_given_as_config_file(tmp_path):
    assert "does not exist" in refused(tmp_path).text


def test_invalid_toml_is_refused_when_file_cannot_be_parsed(tmp_path):
    path = write(tmp_path, "[http\nlisten = \n")
    error = refused(path)
    assert error.where == str(path) and "not valid TOML" in error.text


def test_destinations_are_read_with_mllp_default_when_transport_is_omitted(tmp_path):
    config = load_config(write(tmp_path, FULL), {})
    assert [(d.name, d.role, d.transport, d.address) for d in config.destinations] == [
        ("ehr", "requester", "mllp", "127.0.0.1:6661"),
        ("accounting", "accounting", "mllp", "billing.local:6662")]
    assert config.destination("accounting").host_port == ("billing.local", 6662)
    assert config.destination("requester").name == "ehr"


def test_destination_lookup_gives_none_when_no_destination_has_the_role(tmp_path):
    config = load_config(write(tmp_path, '[[destinations]]\nname="ehr"\nrole="requester"\n'
                                         'address="h:1"\n'), {})
    assert config.destination("accounting") is None


@pytest.mark.parametrize("body, keys, words", [
    ('name="ehr"\nrole="requester"\n', ["address"], ["missing"]),
    ('role="requester"\n', ["name", "address"], ["missing"]),
    ('name="ehr"\nrole="pharmacy"\naddress="h:1"\n', ["role"], ["pharmacy"]),
    ('name="ehr"\nrole="requester"\ntransport="http"\naddress="h:1"\n', ["transport"],
     ["http", "mllp"]),
])
def test_destination_is_refused_when_incomplete_or_unsupported(tmp_path, body, keys, words):
    error = refused(write(tmp_path, "[[destinations]]\n" + body))
    assert [key_of(p) for p in error.problems] == [f"destinations[0].{k}" for k in keys]
    assert all(w in error.text for w in words)


def test_destination_is_refused_when_address_is_not_host_port(tmp_path):
    error = refused(write(tmp_path, '[[destinations]]\nname="ehr"\nrole="requester"\n'
                                    'address="ehr.local"\n'))
    assert key_of(error) == "destinations[0].address"


def test_api_token_is_read_when_given_inline(tmp_path):
    config = load_config(write(tmp_path, FULL), {})
    assert [(t.name, t.role, t.token) for t in config.api.tokens] == [
        ("dermato-1", "specialist", "s3cret")]


@pytest.mark.parametrize("body", [
    'role="specialist"\ntoken="x"\n',
    'name="a"\nrole="superuser"\ntoken="x"\n',
    'name="a"\nrole="admin"\n',
    'name="a"\nrole="admin"\ntoken=""\n',
    'name="a"\nrole="admin"\ntoken_env="TELEDERM_TEST_TOKEN_THAT_IS_NEVER_SET_4F2A"\n',
])
def test_api_token_is_refused_when_name_role_or_secret_is_missing(tmp_path, body, monkeypatch):
    monkeypatch.delenv("TELEDERM_TEST_TOKEN_THAT_IS_NEVER_SET_4F2A", raising=False)
    error = refused(write(tmp_path, "[[api.tokens]]\n" + body))
    assert all(key_of(p).startswith("api.tokens[0].") for p in error.problems)


def test_api_token_is_read_from_given_environment_when_token_env_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("TELEDERM_TOKEN_DERMATO_1", raising=False)
    path = write(tmp_path, '[[api.tokens]]\nname="dermato-1"\nrole="specialist"\n'
                           'token_env="TELEDERM_TOKEN_DERMATO_1"\n')
    config = load_config(path, {"TELEDERM_TOKEN_DERMATO_1": "from-env"})
    assert config.api.tokens[0].token == "from-env"


def test_bootstrap_token_is_read_when_environment_sets_it(tmp_path):
    config = load_config(write(tmp_path, ""), {"TELEDERM_BOOTSTRAP_TOKEN": "first-run"})
    assert config.bootstrap_token == "first-run"


def test_bootstrap_token_is_empty_when_environment_lacks_it(tmp_path):
    assert load_config(write(tmp_path, ""), {}).bootstrap_token == ""


def test_file_destination_takes_a_drop_folder_resolved_against_the_file_folder(tmp_path):
    path = write(tmp_path, '[[destinations]]\nname="compta"\nrole="accounting"\n'
                           'transport="mllp"\naddress="h:1"\n'
                           '[[destinations]]\nname="compta-files"\n'
                           'role="accounting"\ntransport="file"\naddress="exports/billing"\n')
    config = load_config(path, {})
    files = config.destinations[1]
    assert (files.transport, files.folder) == ("file", path.parent / "exports" / "billing")
    assert [d.name for d in config.destinations_for("accounting")] == ["compta", "compta-files"]
    assert config.destination("accounting").name == "compta"


@pytest.mark.parametrize("body, words", [
    ('name="ehr"\nrole="requester"\ntransport="file"\naddress="drop"\n', ["accounting feed only"]),
    ('name="f"\nrole="accounting"\ntransport="file"\naddress=" "\n', ["address is empty"]),
    ('name="a"\nrole="accounting"\naddress="h:1"\n[[destinations]]\nname="a"\n'
     'role="requester"\naddress="h:2"\n', ["already used"]),
])
def test_destination_is_refused_when_a_file_feed_or_a_name_is_misused(tmp_path, body, words):
    error = refused(write(tmp_path, "[[destinations]]\n" + body))
    assert all(w in error.text for w in words), error.text
    assert key_of(error).startswith("destinations"), error.where


THREE_BAD_KEYS = """
[http]
listen = "nowhere"
[hl7]
ack_mode = "whenever"
[watch]
kind = "video"
"""


def test_every_bad_key_is_named_when_a_file_has_several(tmp_path):
    error = refused(write(tmp_path, THREE_BAD_KEYS))
    assert [key_of(p) for p in error.problems] == ["http.listen", "hl7.ack_mode", "watch.kind"]
    assert all(value in error.text for value in ("'nowhere'", "'whenever'", "'video'"))


def test_config_check_prints_one_line_per_bad_key_and_exits_2(tmp_path, capsys):
    from connector.entrypoints.cli import main
    assert main(["config", "check", "--config", str(write(tmp_path, THREE_BAD_KEYS))]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith("telederm: ") for line in lines)
    for key, line in zip(("[http.listen]", "[hl7.ack_mode]", "[watch.kind]"), lines):
        assert key in line


def test_environment_problems_name_the_variable_beside_the_file_problems(tmp_path):
    error = refused(write(tmp_path, '[reports]\nlanguage = "de"\n'),
                    {"TELEDERM_HL7_IDLE_TIMEOUT": "0", "TELEDERM_DATA_DIR": "data"})
    assert [p.where.split(" [")[0] for p in error.problems] == [
        "TELEDERM_HL7_IDLE_TIMEOUT", str(tmp_path / "etc" / "telederm.toml")]


def test_nested_sections_read_file_and_environment_alike(tmp_path):
    config = load_config(write(tmp_path, FULL), {
        "TELEDERM_HL7_ACK_MODE": "storage", "TELEDERM_WORKLIST_XC_STATION_AE": "CAM02",
        "TELEDERM_IMAGES_MAX_MB": "12", "TELEDERM_WATCH_FOLDER": "in"})
    assert (config.hl7.ack_mode, config.hl7.listen) == ("storage", "127.0.0.1:3575")
    assert (config.orthanc.url, config.facility.id, config.worker.max_attempts) == (
        "http://pacs.local:8042", "HUB01", 7)
    assert config.worklist.station_ae("XC") == "CAM02" and config.images.max_mb == 12
    assert config.watch.folder == (tmp_path / "etc" / "in").resolve()
    assert config.api.tokens[0].name == "dermato-1"


def test_lists_of_tables_and_secrets_are_not_taken_from_the_environment(tmp_path):
    config = load_config(write(tmp_path, ""), {"TELEDERM_DESTINATIONS": "[]",
                                               "TELEDERM_API_TOKENS": "[]",
                                               "TELEDERM_HL7_LISTENERS": "[]"})
    assert config.destinations == () and config.api.tokens == ()


@pytest.mark.parametrize("text, key", [
    ('bootstrap_token = "x"\n', "bootstrap_token"),
    ('[[destinations]]\nname="e"\nrole="requester"\ntransport="https"\n'
     'address="https://e.example/hl7"\napi_key="k"\n', "destinations[0].api_key")])
def test_a_secret_written_in_the_file_is_refused(tmp_path, text, key):
    assert key_of(refused(write(tmp_path, text))) == key


def test_http_and_dicom_tls_files_resolve_and_must_exist(tmp_path):
    (tmp_path / "etc").mkdir()
    for name in ("api.pem", "api.key"):
        (tmp_path / "etc" / name).write_text("-", encoding="ascii")
    config = load_config(write(tmp_path, '[http]\ncert_file = "api.pem"\nkey_file = "api.key"\n'
                               '[dicom]\ncert_file = "api.pem"\nkey_file = "api.key"\n'), {})
    assert config.http.tls and config.http.cert_file == tmp_path / "etc" / "api.pem"
    assert config.http.base_url.startswith("https://") and config.dicom.tls
    error = refused(write(tmp_path, '[dicom]\ncert_file = "missing.pem"\n'))
    assert key_of(error) == "dicom.cert_file" and "does not exist" in error.text
    error = refused(write(tmp_path, '[http]\nkey_file = "api.key"\n'))
    assert key_of(error) == "http.cert_file"


def test_an_api_requiring_client_certificates_is_refused_with_a_managed_orthanc(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "api.pem").write_text("-", encoding="ascii")
    text = ('[http]\ncert_file = "api.pem"\nclient_ca_file = "api.pem"\n'
            'require_client_cert = true\n')
    error = refused(write(tmp_path, text))
    assert "presents no client certificate" in error.text
    assert load_config(write(tmp_path, text + "[orthanc]\nmanaged = false\n"), {}).http.tls


def test_api_token_scopes_are_read_and_none_means_every_case(tmp_path):
    path = write(tmp_path, '[[api.tokens]]\nname="ehr"\nrole="requester"\ntoken="a"\n'
                           'scopes=["750712184/DERMATO", "750712184"]\n'
                           '[[api.tokens]]\nname="old"\nrole="requester"\ntoken="b"\n')
    scoped, unscoped = load_config(path, {}).api.tokens
    assert [str(s) for s in scoped.reach_scopes] == ["750712184/DERMATO", "750712184/*"]
    assert unscoped.reach_scopes is None


@pytest.mark.parametrize("body", [
    'role="requester"\nscopes=["750712184 DERMATO"]\n',
    'role="requester"\nscopes=["/"]\n',
    'role="admin"\nscopes=["750712184/DERMATO"]\n',
    'role="specialist"\nscopes=["750712184/DERMATO"]\n',
], ids=["space", "empty-parts", "admin", "specialist"])
def test_api_token_scopes_are_refused_when_malformed_or_on_an_unscoped_role(tmp_path, body):
    error = refused(write(tmp_path, '[[api.tokens]]\nname="a"\ntoken="x"\n' + body))
    assert [key_of(p) for p in error.problems] == ["api.tokens[0].scopes"]
