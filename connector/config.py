"""Configuration: one TOML file, every key optional, environment overrides.

`TELEDERM_<SECTION>_<KEY>` overrides `[section] key`; `TELEDERM_<KEY>` overrides a top-level
key (e.g. `TELEDERM_DATA_DIR`). Destinations and API tokens are lists of tables and are set in
the file only. Relative paths are resolved against the config file's folder (or the current
folder when there is no file), so `telederm serve --config /etc/telederm/telederm.toml` works
from anywhere.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .domain.errors import ConfigError

ROLES = ("requester", "specialist", "device", "admin")
DEFAULT_WATCH_PATTERN = r"^(?P<accession>[A-Z]{2}\d{8})[_-]"
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII, no backslash
DESTINATION_ROLES = ("requester", "accounting")
# mllp: HL7 over MLLP to HOST:PORT; file: one CSV per batch dropped in the folder `address`
# (accounting feeds that take files; connector/billing/csvfeed.py).
TRANSPORTS = ("mllp", "https", "file")


@dataclass(frozen=True)
class Destination:
    name: str
    role: str
    transport: str
    address: str
    api_key: str = ""              # https: sent in `api_key_header`, read from `api_key_env`
    api_key_header: str = "X-API-Key"
    ca_file: str = ""              # https: CA bundle to trust instead of the system's

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.address, f"destinations.{self.name}.address")

    @property
    def folder(self) -> Path:
        """The drop folder of a `file` destination (resolved when the config was read)."""
        return Path(self.address)


@dataclass(frozen=True)
class ApiToken:
    name: str
    role: str
    token: str


@dataclass(frozen=True)
class Config:
    data_dir: Path
    http_listen: str = "127.0.0.1:8780"
    hl7_listen: str = "127.0.0.1:2575"
    orthanc_managed: bool = True
    orthanc_url: str = "http://127.0.0.1:8042"
    orthanc_dicom_port: int = 4242
    orthanc_username: str = "telederm"
    orthanc_password: str = "change-me"
    orthanc_stable_age: int = 60
    database_url: str = ""
    facility_name: str = "TELEDERM"
    facility_id: str = "TELEDERM"
    report_language: str = "fr"
    destinations: tuple[Destination, ...] = ()
    tokens: tuple[ApiToken, ...] = ()
    bootstrap_token: str = ""
    mappings_dir: Path = field(default_factory=lambda: default_mappings_dir())
    worker_poll_seconds: float = 0.5
    outbox_max_attempts: int = 20
    # DICOM C-STORE SCP for DICOM capture devices: off unless `[dicom] listen` is set.
    dicom_listen: str = ""
    dicom_ae_title: str = "TELEDERM_SCP"
    # Watched folder for dermatoscope exports: off unless `[watch] folder` is set.
    watch_folder: Path | None = None
    watch_interval: float = 2.0
    watch_pattern: str = DEFAULT_WATCH_PATTERN
    watch_kind: str = "photo"
    # Modality worklist: one entry per open case and modality, served by Orthanc.
    worklist_enabled: bool = True
    worklist_dir: Path | None = None  # default: the managed Orthanc's `worklists` folder
    worklist_xc_station_ae: str = "TELEDERM_XC"
    worklist_dms_station_ae: str = "TELEDERM_DMS"
    # [images]: intake limits and the dermatoscope used when an upload names none
    images_max_mb: int = 50
    images_max_megapixels: int = 100
    images_device: str = ""

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'telederm.db'}"

    def destination(self, role: str) -> Destination | None:
        return next((d for d in self.destinations if d.role == role), None)

    def destinations_for(self, role: str) -> tuple[Destination, ...]:
        """Every destination with this role (an accounting feed may be an MLLP peer, a drop
        folder, or both)."""
        return tuple(d for d in self.destinations if d.role == role)

    @property
    def worklist_folder(self) -> Path:
        """Where worklist entries are written: `[worklist] folder`, else the folder the managed
        Orthanc's ModalityWorklists plugin reads (`data_dir/orthanc/worklists`)."""
        return self.worklist_dir or self.data_dir / "orthanc" / "worklists"

    def station_ae(self, modality: str) -> str:
        """Scheduled Station AE Title of the worklist entries for `modality` (XC or DMS)."""
        return {"XC": self.worklist_xc_station_ae, "DMS": self.worklist_dms_station_ae}[modality]


def default_mappings_dir() -> Path:
    """The `mappings/` folder shipped at the repository root, beside the package."""
    return Path(__file__).resolve().parent.parent / "mappings"


def split_address(text: str, where: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"'{text}' is not HOST:PORT", where=where,
                          hint="write it like 127.0.0.1:2575")
    return host, int(port)


_SCALARS = {
    # (section, key) -> (Config field, type)
    ("", "data_dir"): ("data_dir", Path),
    ("http", "listen"): ("http_listen", str),
    ("hl7", "listen"): ("hl7_listen", str),
    ("orthanc", "managed"): ("orthanc_managed", bool),
    ("orthanc", "url"): ("orthanc_url", str),
    ("orthanc", "dicom_port"): ("orthanc_dicom_port", int),
    ("orthanc", "username"): ("orthanc_username", str),
    ("orthanc", "password"): ("orthanc_password", str),
    ("orthanc", "stable_age"): ("orthanc_stable_age", int),
    ("database", "url"): ("database_url", str),
    ("facility", "name"): ("facility_name", str),
    ("facility", "id"): ("facility_id", str),
    ("reports", "language"): ("report_language", str),
    ("", "mappings_dir"): ("mappings_dir", Path),
    ("worker", "poll_seconds"): ("worker_poll_seconds", float),
    ("worker", "max_attempts"): ("outbox_max_attempts", int),
    ("dicom", "listen"): ("dicom_listen", str),
    ("dicom", "ae_title"): ("dicom_ae_title", str),
    ("watch", "folder"): ("watch_folder", Path),
    ("watch", "interval"): ("watch_interval", float),
    ("watch", "pattern"): ("watch_pattern", str),
    ("watch", "kind"): ("watch_kind", str),
    ("worklist", "enabled"): ("worklist_enabled", bool),
    ("worklist", "folder"): ("worklist_dir", Path),
    ("worklist", "xc_station_ae"): ("worklist_xc_station_ae", str),
    ("worklist", "dms_station_ae"): ("worklist_dms_station_ae", str),
    ("images", "max_mb"): ("images_max_mb", int),
    ("images", "max_megapixels"): ("images_max_megapixels", int),
    ("images", "device"): ("images_device", str),
}


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply environment overrides, validate, return a Config."""
    env = os.environ if environ is None else environ
    raw: dict = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", where=str(path),
                              hint="give an existing telederm.toml, or omit --config for defaults")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file is not valid TOML: {exc}", where=str(path)) from None
        base = path.resolve().parent

    values: dict = {"data_dir": Path("./var")}
    known_sections = {s for s, _ in _SCALARS if s} | {"destinations", "api"}
    for key, value in raw.items():
        if isinstance(value, (dict, list)) and key not in known_sections:
            raise ConfigError(f"unknown section [{key}]", where=str(path),
                              hint=f"known sections: {', '.join(sorted(known_sections))}")
    for (section, key), (name, typ) in _SCALARS.items():
        table = raw if not section else raw.get(section, {})
        if key in table:
            values[name] = _coerce(table[key], typ, f"{section}.{key}" if section else key)
        env_key = f"TELEDERM_{section.upper()}_{key.upper()}" if section else f"TELEDERM_{key.upper()}"
        if env_key in env:
            values[name] = _coerce(env[env_key], typ, env_key)
    top_level = {k for s, k in _SCALARS if not s}
    stray = [k for k, v in raw.items() if not isinstance(v, (dict, list)) and k not in top_level]
    if stray:
        raise ConfigError(f"unknown top-level key(s) {sorted(stray)}", where=str(path),
                          hint=f"top-level keys are {', '.join(sorted(top_level))}")
    for section in {s for s, _ in _SCALARS if s}:
        unknown = set(raw.get(section, {})) - {k for s, k in _SCALARS if s == section}
        if unknown:
            raise ConfigError(f"unknown key(s) {sorted(unknown)} in [{section}]", where=str(path))

    for name in ("watch_folder", "worklist_dir"):
        if name in values and str(values[name]) in ("", "."):
            values[name] = None  # an empty value (e.g. from the environment) means "not set"
    for name in ("data_dir", "mappings_dir", "watch_folder", "worklist_dir"):
        if values.get(name) is not None and not values[name].is_absolute():
            values[name] = (base / values[name]).resolve()
    if values.get("database_url", "").startswith("sqlite:///") and not values["database_url"].startswith("sqlite:////"):
        rel = values["database_url"][len("sqlite:///"):]
        values["database_url"] = f"sqlite:///{(base / rel).resolve()}"

    values["destinations"] = tuple(_destinations(raw.get("destinations", []), path, base, env))
    unknown = set(raw.get("api", {})) - {"tokens"}
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in [api]", where=str(path),
                          hint="[api] holds only [[api.tokens]] tables")
    values["tokens"] = tuple(_tokens(raw.get("api", {}).get("tokens", []), path, env))
    values["bootstrap_token"] = env.get("TELEDERM_BOOTSTRAP_TOKEN", "")
    config = Config(**values)
    split_address(config.http_listen, "http.listen")
    split_address(config.hl7_listen, "hl7.listen")
    if config.report_language not in ("fr", "en"):
        raise ConfigError("reports.language must be fr or en", where="reports.language")
    _check_channels(config)
    return config


def _check_channels(config: Config) -> None:
    """The DICOM listener, the watched folder and the worklist settings."""
    if config.dicom_listen:
        split_address(config.dicom_listen, "dicom.listen")
    for where, title in (("dicom.ae_title", config.dicom_ae_title),
                         ("worklist.xc_station_ae", config.worklist_xc_station_ae),
                         ("worklist.dms_station_ae", config.worklist_dms_station_ae)):
        if not _AE_TITLE.match(title) or title.strip() != title:
            raise ConfigError(f"'{title}' is not a DICOM AE title", where=where,
                              hint="1 to 16 printable ASCII characters, no backslash, "
                                   "no leading or trailing space")
    if config.watch_interval <= 0:
        raise ConfigError("watch.interval must be a positive number of seconds",
                          where="watch.interval")
    try:
        pattern = re.compile(config.watch_pattern)
    except re.error as exc:
        raise ConfigError(f"watch.pattern is not a regular expression: {exc}",
                          where="watch.pattern") from None
    if "accession" not in pattern.groupindex:
        raise ConfigError("watch.pattern has no named group 'accession'", where="watch.pattern",
                          hint="write it like ^(?P<accession>[A-Z]{2}\\d{8})[_-]")
    if config.watch_kind not in ("photo", "dermoscopy"):
        raise ConfigError("watch.kind must be photo or dermoscopy", where="watch.kind")


def _coerce(value, typ, where: str):
    if typ is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"'{value}' is not a boolean", where=where, hint="use true or false")
    try:
        return typ(value)
    except (TypeError, ValueError):
        raise ConfigError(f"'{value}' is not a valid {typ.__name__}", where=where) from None


def _destinations(items, path, base: Path | None = None, env=None) -> list[Destination]:
    env = os.environ if env is None else env
    out = []
    names: set[str] = set()
    for i, item in enumerate(items):
        where = f"destinations[{i}]"
        _only_keys(item, {"name", "role", "transport", "address", "api_key_env", "api_key_header",
                          "ca_file"}, where, path)
        missing = [k for k in ("name", "role", "address") if k not in item]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}", where=str(path))
        transport = item.get("transport", "mllp")
        if item["role"] not in DESTINATION_ROLES:
            raise ConfigError(f"{where}.role '{item['role']}' is unknown", where=str(path),
                              hint=f"use one of {', '.join(DESTINATION_ROLES)}")
        if transport not in TRANSPORTS:
            raise ConfigError(f"{where}.transport '{transport}' is not supported",
                              where=str(path), hint=f"use one of {', '.join(TRANSPORTS)}")
        if item["name"] in names:
            raise ConfigError(f"{where}.name '{item['name']}' is already used", where=str(path),
                              hint="give each destination its own name")
        names.add(item["name"])
        if transport == "file":
            if item["role"] != "accounting":
                raise ConfigError(f"{where}: transport file is for the accounting feed only",
                                  where=str(path), hint='use role = "accounting" or mllp')
            folder = Path(str(item["address"]))
            if not str(item["address"]).strip():
                raise ConfigError(f"{where}.address is empty", where=str(path),
                                  hint="give the folder the billing system polls")
            if not folder.is_absolute():
                folder = ((base or Path.cwd()) / folder).resolve()
            out.append(Destination(item["name"], item["role"], transport, str(folder)))
            continue
        if transport == "https":
            out.append(_https_destination(item, where, path, base, env))
            continue
        dest = Destination(item["name"], item["role"], transport, item["address"])
        dest.host_port  # validates the address
        out.append(dest)
    return out


def _https_destination(item, where: str, path, base: Path | None, env) -> Destination:
    url = str(item["address"])
    if not url.startswith("https://"):
        raise ConfigError(f"{where}.address '{url}' is not an https:// URL", where=str(path),
                          hint="HL7 over HTTPS needs the peer's https:// endpoint")
    api_key = ""
    if item.get("api_key_env"):
        api_key = env.get(item["api_key_env"], "")
        if not api_key:
            raise ConfigError(f"{where}: environment variable {item['api_key_env']} is not set",
                              where=str(path), hint="export the API key; never write it in the file")
    ca_file = str(item.get("ca_file", ""))
    if ca_file and not Path(ca_file).is_absolute():
        ca_file = str(((base or Path.cwd()) / ca_file).resolve())
    return Destination(item["name"], item["role"], "https", url, api_key=api_key,
                       api_key_header=str(item.get("api_key_header", "X-API-Key")),
                       ca_file=ca_file)


def _only_keys(item, allowed: set[str], where: str, path) -> None:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} is not a table", where=str(path))
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}", where=str(path),
                          hint=f"allowed keys: {', '.join(sorted(allowed))}")


def _tokens(items, path, env) -> list[ApiToken]:
    out = []
    for i, item in enumerate(items):
        where = f"api.tokens[{i}]"
        _only_keys(item, {"name", "role", "token", "token_env"}, where, path)
        token = item.get("token") or env.get(item.get("token_env", ""), "")
        if not item.get("name") or item.get("role") not in ROLES or not token:
            raise ConfigError(f"{where} needs name, a role among {', '.join(ROLES)}, and token or token_env",
                              where=str(path))
        out.append(ApiToken(item["name"], item["role"], token))
    return out
