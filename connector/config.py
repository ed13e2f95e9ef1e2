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
from dataclasses import dataclass, field, replace
from pathlib import Path

from .domain.errors import ConfigError

ROLES = ("requester", "specialist", "device", "admin")
DEFAULT_WATCH_PATTERN = r"^(?P<accession>[A-Z]{2}\d{8})[_-]"
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII, no backslash
DESTINATION_ROLES = ("requester", "accounting")
# mllp: HL7 over MLLP to HOST:PORT; file: one CSV per batch dropped in the folder `address`
# (accounting feeds that take files; connector/billing/csvfeed.py).
TRANSPORTS = ("mllp", "https", "file")
DEFAULT_ACK_TIMEOUT = {"mllp": 30.0, "https": 60.0, "file": 0.0}  # seconds
MAX_ACK_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Destination:
    name: str
    role: str
    transport: str
    address: str
    api_key: str = ""              # https: sent in `api_key_header`, read from `api_key_env`
    api_key_header: str = "X-API-Key"
    ca_file: str = ""              # https, mllp with tls: CA bundle to trust instead of the system's
    tls: bool = False              # mllp: MLLP over TLS
    cert_file: str = ""            # https, mllp with tls: our certificate, for mutual TLS
    key_file: str = ""             # ... and its key (when not in cert_file)
    server_name: str = ""          # mllp with tls: name the peer's certificate must carry
    # requester destinations: the report as ORU^R01 or MDM^T02 (T10 corrections, T04
    # withdrawals), and order status messages (ORC-1 OK/SC/CR/OC) as ORM^O01, OMG^O19 or
    # ORU^R01, or "off" (connector/hl7/order_status.py).
    report_message: str = "ORU^R01"
    order_status: str = "off"
    # mllp, https: seconds to wait for the peer's ACK (or HTTP answer) before retrying later
    ack_timeout: float = 0.0  # 0: the transport's default (DEFAULT_ACK_TIMEOUT)

    def answer_timeout(self) -> float:
        return self.ack_timeout or DEFAULT_ACK_TIMEOUT[self.transport]

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.address, f"destinations.{self.name}.address")

    @property
    def folder(self) -> Path:
        """The drop folder of a `file` destination (resolved when the config was read)."""
        return Path(self.address)


@dataclass(frozen=True)
class Hl7Listener:
    """One inbound MLLP listener: `[hl7] listen` (named "default") or a `[[hl7.listeners]]`
    table. TLS when `cert_file` is set; with `client_ca_file`, client certificates are checked
    (and required when `require_client_cert`)."""

    name: str
    listen: str
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    require_client_cert: bool = False
    where: str = "hl7"  # the config key of this listener, for error messages

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.listen, f"{self.where}.listen")


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
    # [hl7]: TLS of the `listen` listener, limits and timeouts of every MLLP listener, and
    # [[hl7.listeners]] (several listeners; then `listen` is the first one's address).
    hl7_cert_file: Path | None = None
    hl7_key_file: Path | None = None
    hl7_client_ca_file: Path | None = None
    hl7_require_client_cert: bool = False
    hl7_max_message_mb: float = 20.0
    hl7_idle_timeout: float = 300.0   # seconds of silence between messages before closing
    hl7_read_timeout: float = 60.0    # seconds of silence inside a message before closing
    hl7_listeners: tuple[Hl7Listener, ...] = ()
    # When the ACK is sent: "processing" (after the message is applied: the ACK tells the
    # outcome) or "storage" (after it is validated and stored durably; applied just after, in
    # arrival order; for high-volume feeds such as ADT). See entrypoints/hl7_intake.py.
    hl7_ack_mode: str = "processing"
    # [hl7] test_mode: accept test and demo INS (OIDs 1.2.250.1.213.1.4.10 / .11), refused in
    # production (mappings/hl7/orm_o01.toml [identity]).
    hl7_test_mode: bool = False
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

    @property
    def mllp_listeners(self) -> tuple[Hl7Listener, ...]:
        """The inbound MLLP listeners: the [[hl7.listeners]] tables, else `[hl7] listen`."""
        if self.hl7_listeners:
            return self.hl7_listeners
        return (Hl7Listener("default", self.hl7_listen, self.hl7_cert_file, self.hl7_key_file,
                            self.hl7_client_ca_file, self.hl7_require_client_cert),)

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
    ("hl7", "cert_file"): ("hl7_cert_file", Path),
    ("hl7", "key_file"): ("hl7_key_file", Path),
    ("hl7", "client_ca_file"): ("hl7_client_ca_file", Path),
    ("hl7", "require_client_cert"): ("hl7_require_client_cert", bool),
    ("hl7", "max_message_mb"): ("hl7_max_message_mb", float),
    ("hl7", "idle_timeout"): ("hl7_idle_timeout", float),
    ("hl7", "read_timeout"): ("hl7_read_timeout", float),
    ("hl7", "ack_mode"): ("hl7_ack_mode", str),
    ("hl7", "test_mode"): ("hl7_test_mode", bool),
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


_SUBTABLES = {"hl7": {"listeners"}}  # lists of tables inside a section: [[hl7.listeners]]


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
        unknown = (set(raw.get(section, {})) - {k for s, k in _SCALARS if s == section}
                   - _SUBTABLES.get(section, set()))
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

    values["hl7_listeners"] = _hl7_listeners(raw, values, path, base, env)
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
    _check_hl7(config)
    if config.hl7_ack_mode not in ("processing", "storage"):
        raise ConfigError("hl7.ack_mode must be processing or storage", where="hl7.ack_mode",
                          hint='"processing" answers after applying, "storage" after storing')
    if config.report_language not in ("fr", "en"):
        raise ConfigError("reports.language must be fr or en", where="reports.language")
    _check_channels(config)
    return config


_LISTENER_TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "require_client_cert")


def _hl7_listeners(raw: dict, values: dict, path, base: Path, env) -> tuple[Hl7Listener, ...]:
    """The [[hl7.listeners]] tables (none: the single `[hl7] listen` form). Resolves the TLS
    file paths of both forms; a listener's name and address must be unique."""
    for key in ("cert_file", "key_file", "client_ca_file"):
        if f"hl7_{key}" in values:
            values[f"hl7_{key}"] = _tls_file(values[f"hl7_{key}"], base, f"hl7.{key}")
    section = raw.get("hl7", {})
    items = section.get("listeners", [])
    if not isinstance(items, list):
        raise ConfigError("hl7.listeners is not a list of tables", where=str(path),
                          hint="write each listener as an [[hl7.listeners]] table")
    if not items:
        return ()
    single = [k for k in ("listen",) + _LISTENER_TLS_KEYS
              if k in section or f"TELEDERM_HL7_{k.upper()}" in env]
    if single:
        raise ConfigError(f"[hl7] {', '.join(single)} cannot be combined with [[hl7.listeners]]",
                          where=str(path),
                          hint="give each [[hl7.listeners]] table its own listen (and TLS keys)")
    out: list[Hl7Listener] = []
    for i, item in enumerate(items):
        where = f"hl7.listeners[{i}]"
        _only_keys(item, {"name", "listen", *_LISTENER_TLS_KEYS}, where, path)
        missing = [k for k in ("name", "listen") if not str(item.get(k, "")).strip()]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}", where=str(path),
                              hint='e.g. name = "lab" and listen = "0.0.0.0:2576"')
        if any(str(item["name"]) == other.name for other in out):
            raise ConfigError(f"{where}.name '{item['name']}' is already used", where=str(path),
                              hint="give each listener its own name (it appears in the logs)")
        if any(str(item["listen"]) == other.listen for other in out):
            raise ConfigError(f"{where}.listen '{item['listen']}' is already used",
                              where=str(path), hint="give each listener its own port")
        split_address(str(item["listen"]), f"{where}.listen")
        files = {k: _tls_file(_coerce(item[k], Path, f"{where}.{k}"), base, f"{where}.{k}")
                 for k in ("cert_file", "key_file", "client_ca_file") if k in item}
        require = _coerce(item.get("require_client_cert", False), bool,
                          f"{where}.require_client_cert")
        out.append(Hl7Listener(str(item["name"]), str(item["listen"]), **files,
                               require_client_cert=require, where=where))
    values["hl7_listen"] = out[0].listen  # `hl7_listen` names the first listener
    return tuple(out)


def _tls_file(value: Path | str | None, base: Path, where: str) -> Path | None:
    """A certificate, key or CA file: resolved against the config's folder, and existing.
    An empty value means "not set"."""
    if value is None or str(value) in ("", "."):
        return None
    file = Path(value)
    if not file.is_absolute():
        file = (base / file).resolve()
    if not file.is_file():
        raise ConfigError(f"{where}: file {file} does not exist", where=where,
                          hint="give a PEM file readable by the connector")
    return file


def _check_hl7(config: Config) -> None:
    """Limits and timeouts of the MLLP listeners, and each one's TLS settings."""
    for key, value in (("hl7.max_message_mb", config.hl7_max_message_mb),
                       ("hl7.idle_timeout", config.hl7_idle_timeout),
                       ("hl7.read_timeout", config.hl7_read_timeout)):
        if not value > 0:
            raise ConfigError(f"{key} must be a positive number", where=key,
                              hint="megabytes for max_message_mb, seconds for the timeouts")
    for listener in config.mllp_listeners:
        if not listener.tls and (listener.key_file or listener.client_ca_file
                                 or listener.require_client_cert):
            raise ConfigError(f"{listener.where}: TLS keys are set but cert_file is not",
                              where=f"{listener.where}.cert_file",
                              hint="give the listener's certificate (PEM) to turn TLS on")
        if listener.require_client_cert and not listener.client_ca_file:
            raise ConfigError(f"{listener.where}: require_client_cert needs client_ca_file",
                              where=f"{listener.where}.client_ca_file",
                              hint="give the CA that signed the clients' certificates")


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
                          "ack_timeout", *_DESTINATION_TLS_KEYS, *_REQUESTER_KEYS}, where, path)
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
            if "ack_timeout" in item:
                raise ConfigError(f"{where}.ack_timeout does not apply to transport file",
                                  where=str(path), hint="remove it: a file drop has no answer")
            if set(item) & set(_DESTINATION_TLS_KEYS):
                raise ConfigError(f"{where}: TLS keys do not apply to transport file",
                                  where=str(path), hint="remove them, or use mllp or https")
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
        dest = Destination(item["name"], item["role"], transport, item["address"],
                           **_destination_tls(item, transport, where, path, base))
        dest.host_port  # validates the address
        out.append(dest)
    return [_ack_timeout(_requester_messages(dest, item, f"destinations[{i}]", path), item,
                         f"destinations[{i}]", path)
            for i, (dest, item) in enumerate(zip(out, items))]


def _ack_timeout(dest: Destination, item, where: str, path) -> Destination:
    """`ack_timeout`: how long a slow peer may take to answer (a number of seconds, > 0)."""
    if "ack_timeout" not in item:
        return dest
    raw = item["ack_timeout"]
    value = float("nan") if isinstance(raw, bool) else _coerce(raw, float, f"{where}.ack_timeout")
    if not 0 < value <= MAX_ACK_TIMEOUT:
        raise ConfigError(f"{where}.ack_timeout {raw!r} is not a number of seconds in range",
                          where=str(path),
                          hint=f"give seconds between 0 and {MAX_ACK_TIMEOUT:g} "
                               f"(default {DEFAULT_ACK_TIMEOUT[dest.transport]:g})")
    return replace(dest, ack_timeout=value)


_REQUESTER_KEYS = {"report_message": ("ORU^R01", "MDM^T02"),
                   "order_status": ("off", "ORM^O01", "OMG^O19", "ORU^R01")}


def _requester_messages(dest: Destination, item, where: str, path) -> Destination:
    """`report_message` and `order_status` of a requester destination (checked values)."""
    given = {k: str(item[k]) for k in _REQUESTER_KEYS if k in item}
    if given and dest.role != "requester":
        raise ConfigError(f"{where}: {', '.join(sorted(given))} apply to requester destinations",
                          where=str(path), hint='remove them, or use role = "requester"')
    for key, value in given.items():
        if value not in _REQUESTER_KEYS[key]:
            raise ConfigError(f"{where}.{key} '{value}' is not supported", where=str(path),
                              hint=f"use one of {', '.join(_REQUESTER_KEYS[key])}")
    return replace(dest, **given) if given else dest


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
    return Destination(item["name"], item["role"], "https", url, api_key=api_key,
                       api_key_header=str(item.get("api_key_header", "X-API-Key")),
                       **_destination_tls(item, "https", where, path, base))


_DESTINATION_TLS_KEYS = ("tls", "ca_file", "cert_file", "key_file", "server_name")


def _destination_tls(item, transport: str, where: str, path, base: Path | None) -> dict:
    """The TLS settings of an mllp or https destination, as Destination keyword arguments.
    https is always TLS (the host name comes from the URL); mllp only with `tls = true`."""
    if transport == "https" and ("tls" in item or "server_name" in item):
        raise ConfigError(f"{where}: tls and server_name are for mllp destinations",
                          where=str(path), hint="https is always TLS, checked against the URL's host")
    tls = transport == "https" or _coerce(item.get("tls", False), bool, f"{where}.tls")
    settings = {k: item[k] for k in ("ca_file", "cert_file", "key_file", "server_name") if k in item}
    if settings and not tls:
        raise ConfigError(f"{where}: {', '.join(sorted(settings))} need tls = true",
                          where=str(path), hint="set tls = true for MLLP over TLS")
    if "key_file" in settings and "cert_file" not in settings:
        raise ConfigError(f"{where}: key_file needs cert_file", where=str(path),
                          hint="give the client certificate that goes with the key")
    out = {"tls": tls, "server_name": str(settings.get("server_name", ""))} \
        if transport == "mllp" else {}
    for key in ("ca_file", "cert_file", "key_file"):
        file = _tls_file(str(settings.get(key, "")), base or Path.cwd(), f"{where}.{key}")
        out[key] = str(file) if file else ""
    return out


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
