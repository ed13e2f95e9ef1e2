"""Configuration: one TOML file, every key optional, environment overrides.

`TELEDERM_<SECTION>_<KEY>` overrides `[section] key`; `TELEDERM_<KEY>` overrides a top-level
key (e.g. `TELEDERM_DATA_DIR`). Destinations and API tokens are lists of tables and are set in
the file only. Relative paths are resolved against the config file's folder (or the current
folder when there is no file), so `telederm serve --config /etc/telederm/telederm.toml` works
from anywhere.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .domain.errors import ConfigError

ROLES = ("requester", "specialist", "device", "admin")
DESTINATION_ROLES = ("requester", "accounting")


@dataclass(frozen=True)
class Destination:
    name: str
    role: str
    transport: str
    address: str

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.address, f"destinations.{self.name}.address")


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

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'telederm.db'}"

    def destination(self, role: str) -> Destination | None:
        return next((d for d in self.destinations if d.role == role), None)


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

    for name in ("data_dir", "mappings_dir"):
        if name in values and not values[name].is_absolute():
            values[name] = (base / values[name]).resolve()
    if values.get("database_url", "").startswith("sqlite:///") and not values["database_url"].startswith("sqlite:////"):
        rel = values["database_url"][len("sqlite:///"):]
        values["database_url"] = f"sqlite:///{(base / rel).resolve()}"

    values["destinations"] = tuple(_destinations(raw.get("destinations", []), path))
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
    return config


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


def _destinations(items, path) -> list[Destination]:
    out = []
    for i, item in enumerate(items):
        where = f"destinations[{i}]"
        _only_keys(item, {"name", "role", "transport", "address"}, where, path)
        missing = [k for k in ("name", "role", "address") if k not in item]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}", where=str(path))
        transport = item.get("transport", "mllp")
        if item["role"] not in DESTINATION_ROLES:
            raise ConfigError(f"{where}.role '{item['role']}' is unknown", where=str(path),
                              hint=f"use one of {', '.join(DESTINATION_ROLES)}")
        if transport != "mllp":
            raise ConfigError(f"{where}.transport '{transport}' is not supported yet",
                              where=str(path), hint="use mllp")
        dest = Destination(item["name"], item["role"], transport, item["address"])
        dest.host_port  # validates the address
        out.append(dest)
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
