"""Configuration: one TOML file, every key optional, environment overrides.

`Config` mirrors the file: one model per `[section]` (`config.hl7.ack_mode`,
`config.orthanc.url`), the top-level keys (`data_dir`, `mappings_dir`) and the lists of tables
(`[[destinations]]`, `[[api.tokens]]`, `[[hl7.listeners]]`) as they are written.

`TELEDERM_<SECTION>_<KEY>` overrides `[section] key`; `TELEDERM_<KEY>` overrides a top-level
key (e.g. `TELEDERM_DATA_DIR`). The lists of tables are set in the file only. Secrets are read
from the environment only: `TELEDERM_BOOTSTRAP_TOKEN`, a destination's `api_key_env`, a token's
`token_env`. Relative paths are resolved against the config file's folder (or the current folder
when there is no file), so `telederm serve --config /etc/telederm/telederm.toml` works from
anywhere. Every problem in the file and the environment is reported at once.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, Field, PrivateAttr, ValidationError,
                      ValidationInfo, field_validator, model_validator)

from .domain.errors import ConfigError, DomainError
from .domain.roles import SCOPED_ROLES, Scope, parse_scopes
from .validation import Problems, SiteModel, key_path, render

DEFAULT_WATCH_PATTERN = r"^(?P<accession>[A-Z]{2}\d{8})[_-]"
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII, no backslash
DEFAULT_ACK_TIMEOUT = {"mllp": 30.0, "https": 60.0, "file": 0.0}  # seconds
MAX_ACK_TIMEOUT = 3600.0


def default_mappings_dir() -> Path:
    """The `mappings/` folder shipped at the repository root, beside the package."""
    return Path(__file__).resolve().parent.parent / "mappings"


def _parse_address(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host, int(port)


def split_address(text: str, where: str) -> tuple[str, int]:
    """`HOST:PORT` as (host, port); a ConfigError naming `where` otherwise."""
    parsed = _parse_address(text)
    if parsed is None:
        raise ConfigError(f"'{text}' is not HOST:PORT", where=where,
                          hint="write it like 127.0.0.1:2575")
    return parsed


def _host_port(text: str) -> str:
    if _parse_address(text) is None:
        raise ValueError("must be HOST:PORT, like 127.0.0.1:2575")
    return text


def _optional_host_port(text: str) -> str:
    return _host_port(text) if text else text


def _ae_title(title: str) -> str:
    if not _AE_TITLE.match(title) or title.strip() != title:
        raise ValueError("must be a DICOM AE title: 1 to 16 printable ASCII characters, "
                         "no backslash, no leading or trailing space")
    return title


def _optional_ae_title(title: str) -> str:
    return _ae_title(title) if title else title


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


Address = Annotated[str, AfterValidator(_host_port)]
OptionalAddress = Annotated[str, AfterValidator(_optional_host_port)]
AeTitle = Annotated[str, AfterValidator(_ae_title)]
OptionalAeTitle = Annotated[str, AfterValidator(_optional_ae_title)]
Positive = Annotated[float, AfterValidator(_positive)]
Name = Annotated[str, AfterValidator(_not_blank)]


def _base(info: ValidationInfo) -> Path:
    """The folder relative paths are resolved against (load_config passes the file's)."""
    return (info.context or {}).get("base") or Path.cwd()


def _environ(info: ValidationInfo) -> Mapping[str, str]:
    """The environment secrets are read from: load_config's, none for a model built in code."""
    return (info.context or {}).get("env", {})


def _folder(value: Path | None, info: ValidationInfo) -> Path | None:
    """A folder setting, resolved; an empty value (e.g. from the environment) means "not set"."""
    if value is None or str(value) in ("", "."):
        return None
    return value if value.is_absolute() else (_base(info) / value).resolve()


def _tls_file(value: str | Path | None, info: ValidationInfo) -> Path | None:
    """A certificate, key or CA file: resolved against the config's folder, and existing.
    An empty value means "not set"."""
    if value is None or str(value) in ("", "."):
        return None
    file = Path(value)
    if not file.is_absolute():
        file = (_base(info) / file).resolve()
    if not file.is_file():
        raise ValueError(f"must be an existing PEM file readable by the connector "
                         f"({file} does not exist)")
    return file


class _ListenerTls(SiteModel):
    """TLS of an inbound MLLP listener: on when `cert_file` is set; with `client_ca_file`,
    client certificates are checked (and required when `require_client_cert`). The fields are
    in the order their checks read each other."""

    require_client_cert: bool = False
    key_file: Path | None = None
    client_ca_file: Path | None = Field(None, validate_default=True)
    cert_file: Path | None = Field(None, validate_default=True)

    @field_validator("key_file", "client_ca_file", "cert_file")
    @classmethod
    def _existing(cls, value, info: ValidationInfo):
        return _tls_file(value, info)

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    @field_validator("client_ca_file")
    @classmethod
    def _client_ca_when_required(cls, value, info: ValidationInfo):
        if info.data.get("require_client_cert") and value is None:
            raise ValueError("must be set: require_client_cert needs client_ca_file, the CA "
                             "that signed the clients' certificates")
        return value

    @field_validator("cert_file")
    @classmethod
    def _cert_when_tls_keys(cls, value, info: ValidationInfo):
        if value is None and any(info.data.get(k) for k in
                                 ("key_file", "client_ca_file", "require_client_cert")):
            raise ValueError("must be set when other TLS keys are (TLS keys are set but "
                             "cert_file is not): the listener's certificate (PEM)")
        return value


class Hl7Listener(_ListenerTls):
    """One inbound MLLP listener: `[hl7] listen` (named "default") or a `[[hl7.listeners]]`
    table."""

    name: Name
    listen: Address
    _where: str = PrivateAttr("hl7")  # the config key of this listener, for error messages

    @property
    def where(self) -> str:
        return self._where

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.listen, f"{self.where}.listen")


_SINGLE_LISTENER_KEYS = ("listen", "cert_file", "key_file", "client_ca_file",
                         "require_client_cert")


class Hl7Section(_ListenerTls):
    """[hl7]: the `listen` listener and its TLS, limits and timeouts of every MLLP listener,
    and [[hl7.listeners]] (several listeners; then `listen` is the first one's address)."""

    listen: Address = "127.0.0.1:2575"
    max_message_mb: Positive = 20.0
    idle_timeout: Positive = 300.0   # seconds of silence between messages before closing
    read_timeout: Positive = 60.0    # seconds of silence inside a message before closing
    # When the ACK is sent: "processing" (after the message is applied: the ACK tells the
    # outcome) or "storage" (after it is validated and stored durably; applied just after, in
    # arrival order; for high-volume feeds such as ADT). See entrypoints/hl7_intake.py.
    ack_mode: Literal["processing", "storage"] = "processing"
    # accept test and demo INS (OIDs 1.2.250.1.213.1.4.10 / .11), refused in production
    # (mappings/hl7/orm_o01.toml [identity]).
    test_mode: bool = False
    listeners: tuple[Hl7Listener, ...] = ()

    @field_validator("listeners")
    @classmethod
    def _unique(cls, listeners: tuple[Hl7Listener, ...]):
        for i, listener in enumerate(listeners):
            for key in ("name", "listen"):
                if any(getattr(other, key) == getattr(listener, key) for other in listeners[:i]):
                    raise ValueError(f"must each have their own {key} "
                                     f"(listeners[{i}].{key} '{getattr(listener, key)}' "
                                     "is already used)")
            listener._where = f"hl7.listeners[{i}]"
        return listeners

    @model_validator(mode="wrap")
    @classmethod
    def _first_listener_address(cls, data, handler):
        """With [[hl7.listeners]], `listen` names the first one, and the single-listener keys
        (from the file or the environment) are refused."""
        section = handler(data)
        if not section.listeners:
            return section
        single = [k for k in _SINGLE_LISTENER_KEYS if k in section.model_fields_set]
        if single:
            raise ValueError(f"[hl7] {', '.join(single)} cannot be combined with "
                             "[[hl7.listeners]]: give each [[hl7.listeners]] table its own "
                             "listen (and TLS keys)")
        return section.model_copy(update={"listen": section.listeners[0].listen})

    @property
    def mllp_listeners(self) -> tuple[Hl7Listener, ...]:
        """The inbound MLLP listeners: the [[hl7.listeners]] tables, else `[hl7] listen`."""
        if self.listeners:
            return self.listeners
        return (Hl7Listener(name="default", listen=self.listen, cert_file=self.cert_file,
                            key_file=self.key_file, client_ca_file=self.client_ca_file,
                            require_client_cert=self.require_client_cert),)


class HttpSection(_ListenerTls):
    """The HTTP API and the /ui/ pages: HTTPS (TLS 1.2 at least) when `cert_file` is set,
    with client certificates checked against `client_ca_file` (see `_ListenerTls`)."""

    listen: Address = "127.0.0.1:8780"
    # The API's address as requesters reach it (behind a proxy, by name): the base of the URLs
    # we send them, such as a report's PDF sent by reference. Empty: http://<listen>.
    public_url: str = ""

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (the API as requesters reach it)")
        return url.rstrip("/")

    @property
    def base_url(self) -> str:
        """`public_url`, else the listen address (https when TLS is on)."""
        return self.public_url or f"{'https' if self.tls else 'http'}://{self.listen}"


def _tcp_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ValueError("must be a TCP port between 1 and 65535")
    return port


class OrthancModality(SiteModel):
    """An `[[orthanc.modalities]]` table: a capture device the managed Orthanc lets store
    images, query the worklist and echo, when it calls as `ae_title` from `host`; `port` is
    its own SCP's (Orthanc's modality entries need one)."""

    name: Name
    ae_title: AeTitle
    host: Name
    port: Annotated[int, AfterValidator(_tcp_port)]


class OrthancSection(SiteModel):
    """The archive. `password` empty: for the managed Orthanc, a random one made on first
    start and kept in `data_dir` (connector/bootstrap.py `orthanc_password`)."""

    managed: bool = True
    url: str = "http://127.0.0.1:8042"
    dicom_port: int = 4242
    username: str = "telederm"
    password: str = ""
    stable_age: int = 60
    # Seconds `serve` lets the managed Orthanc stop cleanly on exit before killing it (it
    # takes ~5 s); 0 kills it at once, for trial folders thrown away afterwards.
    stop_seconds: float = Field(20, ge=0)
    modalities: tuple[OrthancModality, ...] = ()

    @field_validator("modalities")
    @classmethod
    def _unique_names(cls, modalities: tuple[OrthancModality, ...]):
        for i, modality in enumerate(modalities):
            if any(other.name == modality.name for other in modalities[:i]):
                raise ValueError(f"must each have their own name (modalities[{i}].name "
                                 f"'{modality.name}' is already used)")
        return modalities


def _key_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """A key or anchor file setting, resolved against the config's folder; empty means "not set"."""
    if value is None or str(value) in ("", "."):
        return None
    return value if value.is_absolute() else (_base(info) / value).resolve()


class _KeySource(SiteModel):
    """A secret given as `key` (normally from the environment) or kept in the file `key_file`."""

    key: str = ""
    key_file: Path | None = None

    @field_validator("key_file")
    @classmethod
    def _key_resolved(cls, value, info: ValidationInfo):
        return _key_path(value, info)


class DatabaseSection(_KeySource):
    """`url` empty: SQLite in data_dir (Config.db_url). A SQLite store is encrypted whole
    (SQLCipher) when a key is given: `key` (normally TELEDERM_DATABASE_KEY), else the file
    `key_file` (made on first start, mode 0600). No key: plain SQLite, which `telederm config
    check` warns of. PostgreSQL relies on the server's own encryption (docs/operations.md)."""

    url: str = ""

    @field_validator("url")
    @classmethod
    def _sqlite_file_beside_the_config(cls, url: str, info: ValidationInfo) -> str:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return f"sqlite:///{(_base(info) / url[len('sqlite:///'):]).resolve()}"
        return url


class StorageSection(_KeySource):
    """The keys the files spooled in data_dir (images waiting for the archive, report objects,
    patient updates) are encrypted with, AES-GCM (connector/store/files.py): `key`
    (normally TELEDERM_STORAGE_KEY), else the file `key_file`; either holds a key ring, one
    `id:base64` entry a line, the last the current one (`telederm keys rotate` adds one).
    No key: files are written in clear, which `telederm config check` warns of."""


class FacilitySection(SiteModel):
    name: str = "TELEDERM"
    id: str = "TELEDERM"


class ReportsSection(SiteModel):
    """The report PDF: its language, and the facility's PEM key and certificate that sign it
    PAdES (`telederm keys init` makes a trial pair). Without them the PDF is unsigned, which
    `telederm config check` warns of; the key's password is read from the environment
    variable `signing_key_password_env` names, never from the file."""

    language: Literal["fr", "en"] = "fr"
    signing_key: Path | None = None
    signing_cert: Path | None = None
    signing_key_password_env: str = ""
    _key_password: str = PrivateAttr("")

    @field_validator("signing_key", "signing_cert")
    @classmethod
    def _existing(cls, value, info: ValidationInfo):
        return _tls_file(value, info)

    @model_validator(mode="after")
    def _pair(self, info: ValidationInfo):
        if (self.signing_key is None) != (self.signing_cert is None):
            raise ValueError("signing_key and signing_cert go together: give both (the key "
                             "and its certificate, PEM) or neither")
        if self.signing_key_password_env:
            self._key_password = _environ(info).get(self.signing_key_password_env, "")
            if not self._key_password:
                raise ValueError(f"signing_key_password_env: environment variable "
                                 f"{self.signing_key_password_env} is not set; export the "
                                 "key's password, never write it in the file")
        return self

    @property
    def key_password(self) -> str:
        """The signing key's password read from the environment when the config was loaded."""
        return self._key_password


class UiSection(SiteModel):
    """The /ui/ pages for people: how long a login lasts before the browser must log in again."""

    session_minutes: Annotated[int, Field(gt=0, le=7 * 24 * 60)] = 480


class AuditSection(SiteModel):
    """The audit trail's key and anchor, both outside the database: `key` (normally from
    TELEDERM_AUDIT_KEY), else the file `key_file` (made on first start, mode 0600; default
    `data_dir/audit.key`); the signed checkpoints of the chain's head go to
    `checkpoint_file` (default `data_dir/audit-checkpoints.jsonl`). See connector/audit.py."""

    key: str = ""
    key_file: Path | None = None
    checkpoint_file: Path | None = None
    # IHE ATNA: every audit event also goes, through the outbox, as a DICOM PS3.15 audit
    # message over syslog to this Audit Record Repository: tcp://HOST:PORT (RFC 6587 octet
    # counting), tls://HOST:PORT (RFC 5425) or udp://HOST:PORT (RFC 5426); empty: nowhere.
    syslog: str = ""
    # tls://: the CA that signed the repository's certificate (else the system's CAs), and
    # our certificate and key when it asks for one (ATNA nodes authenticate each other).
    syslog_ca_file: Path | None = None
    syslog_cert_file: Path | None = None
    syslog_key_file: Path | None = None

    @field_validator("key_file", "checkpoint_file")
    @classmethod
    def _resolved(cls, value, info: ValidationInfo):
        return _key_path(value, info)

    @field_validator("syslog_ca_file", "syslog_cert_file", "syslog_key_file")
    @classmethod
    def _existing(cls, value, info: ValidationInfo):
        return _tls_file(value, info)

    @field_validator("syslog")
    @classmethod
    def _syslog_url(cls, url: str) -> str:
        scheme, sep, address = url.partition("://")
        if url and (not sep or scheme not in ("tcp", "tls", "udp")
                    or _parse_address(address) is None):
            raise ValueError("must be tcp://HOST:PORT, tls://HOST:PORT or udp://HOST:PORT "
                             "(the Audit Record Repository's syslog port)")
        return url

    @model_validator(mode="after")
    def _tls_keys_for_tls(self):
        given = [k for k in ("syslog_ca_file", "syslog_cert_file", "syslog_key_file")
                 if getattr(self, k) is not None]
        if given and not self.syslog.startswith("tls://"):
            raise ValueError(f"{', '.join(given)} apply to syslog = \"tls://HOST:PORT\" only")
        return self


class LogSection(SiteModel):
    """What `telederm serve` logs on stderr: from which level, as text lines or one JSON
    object a line (for a log collector)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class WorkerSection(SiteModel):
    poll_seconds: float = 0.5
    max_attempts: int = 20  # outbox deliveries before an item is dead
    # How long a claim lasts: an outbox item in delivery, and the work one process owns at a
    # time (the Orthanc changes cursor, the timers). A process that dies holds them this long;
    # it must exceed the longest delivery (a destination's answer timeout).
    lease_seconds: Annotated[float, Field(gt=0)] = 60.0


MAX_FORWARD_NAME = 40  # outbox lines are named "dicom:<name>", at most 50 characters


def _forward_name(name: str) -> str:
    if len(name) > MAX_FORWARD_NAME:
        raise ValueError(f"must be at most {MAX_FORWARD_NAME} characters")
    return name


class ForwardDestination(SiteModel):
    """A `[[dicom.forward]]` table: a hospital PACS that receives each case's study by C-STORE
    when the case is ready for review (`when = "ready"`) or answered (`"answered"`: the
    images and the report's PDF together); see connector/workflow/forward_study.py."""

    name: Annotated[Name, AfterValidator(_forward_name)]
    ae_title: AeTitle
    host: Name
    port: Annotated[int, AfterValidator(_tcp_port)]
    when: Literal["ready", "answered"]
    calling_ae: OptionalAeTitle = ""  # empty: the connector's `[dicom] ae_title`

    @property
    def line(self) -> str:
        """The outbox destination of this PACS's items (one line per PACS)."""
        return f"dicom:{self.name}"


class DicomSection(_ListenerTls):
    """DICOM C-STORE SCP for DICOM capture devices (off unless `listen` is set), with TLS
    when `cert_file` is set (see `_ListenerTls`), the connector's AE title, and the PACS each
    study is forwarded to (`[[dicom.forward]]`). When the site declares capture devices
    (`[[orthanc.modalities]]`), only their AE titles may call the SCP."""

    listen: OptionalAddress = ""
    ae_title: AeTitle = "TELEDERM_SCP"
    forward: tuple[ForwardDestination, ...] = ()

    @field_validator("forward")
    @classmethod
    def _unique_names_and_calling_ae(cls, forward: tuple[ForwardDestination, ...],
                                     info: ValidationInfo):
        """Each PACS its own name; an unset `calling_ae` is the connector's `ae_title`."""
        for i, dest in enumerate(forward):
            if any(other.name == dest.name for other in forward[:i]):
                raise ValueError(f"must each have their own name (forward[{i}].name "
                                 f"'{dest.name}' is already used)")
        ours = info.data.get("ae_title", cls.model_fields["ae_title"].default)
        return tuple(dest if dest.calling_ae else dest.model_copy(update={"calling_ae": ours})
                     for dest in forward)


class WatchSection(SiteModel):
    """Watched folder for dermatoscope exports: off unless `folder` is set."""

    folder: Path | None = None
    interval: Positive = 2.0
    pattern: str = DEFAULT_WATCH_PATTERN
    kind: Literal["photo", "dermoscopy"] = "photo"

    @field_validator("folder")
    @classmethod
    def _resolved(cls, value, info: ValidationInfo):
        return _folder(value, info)

    @field_validator("pattern")
    @classmethod
    def _accession_group(cls, pattern: str) -> str:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"must be a regular expression ({exc})") from None
        if "accession" not in compiled.groupindex:
            raise ValueError("must have a named group 'accession', like "
                             "^(?P<accession>[A-Z]{2}\\d{8})[_-]")
        return pattern


class WorklistSection(SiteModel):
    """Modality worklist: one entry per open case and modality, served by Orthanc."""

    enabled: bool = True
    folder: Path | None = None  # default: the managed Orthanc's `worklists` folder
    xc_station_ae: AeTitle = "TELEDERM_XC"
    dms_station_ae: AeTitle = "TELEDERM_DMS"

    @field_validator("folder")
    @classmethod
    def _resolved(cls, value, info: ValidationInfo):
        return _folder(value, info)

    def station_ae(self, modality: str) -> str:
        """Scheduled Station AE Title of the worklist entries for `modality` (XC or DMS)."""
        return {"XC": self.xc_station_ae, "DMS": self.dms_station_ae}[modality]


class ImagesSection(SiteModel):
    """Intake limits and the dermatoscope used when an upload names none."""

    max_mb: int = 50
    max_megapixels: int = 100
    device: str = ""
    # Accept the shipped example dermatoscope of mappings/devices.toml (placeholder serial and
    # versions): the demo and tests only; a site declares its own device instead.
    example_devices: bool = False


_DESTINATION_TLS_KEYS = ("tls", "ca_file", "cert_file", "key_file", "server_name")
_REQUESTER_KEYS = ("report_message", "order_status", "report_pdf")


class Destination(SiteModel):
    """A `[[destinations]]` table: where reports, order status and charges are sent.

    mllp: HL7 over MLLP to HOST:PORT; https: HL7 posted to an https:// URL; file: one CSV per
    batch dropped in the folder `address` (accounting feeds that take files;
    connector/billing/csvfeed.py). The fields are in the order their checks read each other."""

    name: Name
    role: Literal["requester", "accounting", "specialist", "scheduling"]
    transport: Literal["mllp", "https", "file"] = "mllp"
    address: str
    api_key_env: str = ""          # https: the variable holding the key sent in api_key_header
    api_key_header: str = "X-API-Key"
    tls: bool = Field(False, validate_default=True)  # mllp: MLLP over TLS; https: always
    server_name: str = ""          # mllp with tls: name the peer's certificate must carry
    ca_file: str = ""              # https, mllp with tls: CA bundle to trust instead of the system's
    cert_file: str = ""            # https, mllp with tls: our certificate, for mutual TLS
    key_file: str = ""             # ... and its key (when not in cert_file)
    # requester destinations: the report as ORU^R01 or MDM^T02 (T10 corrections, T04
    # withdrawals), and order status messages (ORC-1 OK/SC/CR/OC) as ORM^O01, OMG^O19 or
    # ORU^R01, or "off" (connector/hl7/order_status.py).
    report_message: Literal["ORU^R01", "MDM^T02"] = "ORU^R01"
    order_status: Literal["off", "ORM^O01", "OMG^O19", "ORU^R01"] = "off"
    # requester destinations: the signed PDF in the report message (OBX ED, base64), by
    # reference (OBX RP: a URL of the API where the requester fetches it with its token), or
    # not at all. A PDF too large for one v2.5 field goes by reference (connector/hl7/oru.py).
    report_pdf: Literal["embedded", "reference", "none"] = "embedded"
    # specialist destinations (the reporting side): the case as an order (ORC-1 NW, XO when
    # reassigned, CA when it leaves them), as ORM^O01 or OMG^O19 (connector/hl7/assignment.py)
    order_message: Literal["ORM^O01", "OMG^O19"] = "ORM^O01"
    # scheduling destinations: the in-person follow-up a report's conduct calls for, as an
    # appointment notification or an order (connector/hl7/follow_up.py).
    follow_up_message: Literal["SIU^S12", "ORM^O01", "OMG^O19"] = "SIU^S12"
    # mllp, https: seconds to wait for the peer's ACK (or HTTP answer) before retrying later
    ack_timeout: float = 0.0  # 0: the transport's default (DEFAULT_ACK_TIMEOUT)
    _api_key: str = PrivateAttr("")

    @field_validator("address")
    @classmethod
    def _address_for_the_transport(cls, address: str, info: ValidationInfo) -> str:
        transport = info.data.get("transport")
        if transport == "file":
            if not address.strip():
                raise ValueError("must be the folder the billing system polls (address is empty)")
            folder = Path(address)
            return str(folder if folder.is_absolute() else (_base(info) / folder).resolve())
        if transport == "https" and not address.startswith("https://"):
            raise ValueError("must be the peer's https:// URL for transport https")
        if transport == "mllp":
            return _host_port(address)
        return address

    @field_validator("tls")
    @classmethod
    def _always_for_https(cls, tls: bool, info: ValidationInfo) -> bool:
        return True if info.data.get("transport") == "https" else tls

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _existing(cls, value: str, info: ValidationInfo) -> str:
        file = _tls_file(value, info)
        return str(file) if file else ""

    @field_validator("ack_timeout", mode="before")
    @classmethod
    def _seconds_in_range(cls, raw, info: ValidationInfo):
        transport = info.data.get("transport", "mllp")
        if transport == "file":
            raise ValueError("does not apply to transport file: a file drop has no answer")
        value = float("nan") if isinstance(raw, bool) else raw
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = float("nan")
        if not 0 < value <= MAX_ACK_TIMEOUT:
            raise ValueError(f"must be seconds between 0 and {MAX_ACK_TIMEOUT:g} (default "
                             f"{DEFAULT_ACK_TIMEOUT[transport]:g})")
        return value

    @model_validator(mode="after")
    def _keys_fit_the_transport_and_role(self, info: ValidationInfo):
        given = self.model_fields_set
        if self.transport == "file" and given & set(_DESTINATION_TLS_KEYS):
            raise ValueError("TLS keys do not apply to transport file: remove them, "
                             "or use mllp or https")
        if self.transport == "https" and given & {"tls", "server_name"}:
            raise ValueError("tls and server_name are for mllp destinations: https is always "
                             "TLS, checked against the URL's host")
        settings = sorted(given & {"ca_file", "cert_file", "key_file", "server_name"})
        if settings and not self.tls:
            raise ValueError(f"{', '.join(settings)} need tls = true: set it for MLLP over TLS")
        if "key_file" in given and "cert_file" not in given:
            raise ValueError("key_file needs cert_file: give the client certificate that goes "
                             "with the key")
        if "order_message" in given and self.role != "specialist":
            raise ValueError('order_message applies to specialist destinations: remove it, '
                             'or use role = "specialist"')
        if "follow_up_message" in given and self.role != "scheduling":
            raise ValueError('follow_up_message applies to scheduling destinations: remove '
                             'it, or use role = "scheduling"')
        requester = sorted(given & set(_REQUESTER_KEYS))
        if requester and self.role != "requester":
            raise ValueError(f"{', '.join(requester)} apply to requester destinations: remove "
                             'them, or use role = "requester"')
        if self.transport == "file" and self.role != "accounting":
            raise ValueError('transport file is for the accounting feed only: use role = '
                             '"accounting" or mllp')
        if self.transport == "https" and self.api_key_env:
            self._api_key = _environ(info).get(self.api_key_env, "")
            if not self._api_key:
                raise ValueError(f"api_key_env: environment variable {self.api_key_env} is "
                                 "not set; export the API key, never write it in the file")
        return self

    @property
    def api_key(self) -> str:
        """https: the key read from `api_key_env` when the config was loaded."""
        return self._api_key

    def answer_timeout(self) -> float:
        return self.ack_timeout or DEFAULT_ACK_TIMEOUT[self.transport]

    @property
    def host_port(self) -> tuple[str, int]:
        return split_address(self.address, f"destinations.{self.name}.address")

    @property
    def folder(self) -> Path:
        """The drop folder of a `file` destination (resolved when the config was read)."""
        return Path(self.address)


class ApiToken(SiteModel):
    """An `[[api.tokens]]` table: the secret inline (`token`) or read from `token_env`."""

    name: Name
    role: Literal["requester", "specialist", "device", "manager", "admin"]
    token: str = Field("", validate_default=True)
    token_env: str = ""
    # specialist tokens: the IdNatPS of the dermatologist using it, who may then take and hand
    # back cases (`POST /api/cases/{acc}/assign`, `.../release`) as themselves
    practitioner_id: str = ""
    # requester and device tokens: the FACILITY/SERVICE scopes whose cases it reaches (see
    # conformance/security.md); none (or "*") is every case, as before scopes existed
    scopes: tuple[str, ...] = ()

    @field_validator("scopes")
    @classmethod
    def _scopes_valid(cls, scopes: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        role = info.data.get("role")
        if scopes and role is not None and role not in SCOPED_ROLES:
            raise ValueError(f"scopes limit {' and '.join(SCOPED_ROLES)} tokens only; role "
                             f"{role} reaches cases by its role")
        try:
            parse_scopes(scopes)
        except DomainError as err:
            raise ValueError(err.one_line()) from None
        return scopes

    @property
    def reach_scopes(self) -> tuple[Scope, ...] | None:
        return parse_scopes(self.scopes)

    @model_validator(mode="before")
    @classmethod
    def _token_from_environment(cls, data, info: ValidationInfo):
        if isinstance(data, dict) and not data.get("token") and data.get("token_env"):
            return {**data, "token": _environ(info).get(data["token_env"], "")}
        return data

    @field_validator("token")
    @classmethod
    def _secret_given(cls, token: str) -> str:
        if not token:
            raise ValueError("must be set: give token, or token_env naming a set "
                             "environment variable")
        return token


class ApiSection(SiteModel):
    tokens: tuple[ApiToken, ...] = ()


class Config(SiteModel):
    data_dir: Path = Field(Path("var"), validate_default=True)
    mappings_dir: Path = Field(default_factory=default_mappings_dir)
    http: HttpSection = HttpSection()
    hl7: Hl7Section = Hl7Section()
    orthanc: OrthancSection = OrthancSection()
    database: DatabaseSection = DatabaseSection()
    storage: StorageSection = StorageSection()
    facility: FacilitySection = FacilitySection()
    reports: ReportsSection = ReportsSection()
    ui: UiSection = UiSection()
    worker: WorkerSection = WorkerSection()
    log: LogSection = LogSection()
    audit: AuditSection = AuditSection()
    dicom: DicomSection = DicomSection()
    watch: WatchSection = WatchSection()
    worklist: WorklistSection = WorklistSection()
    images: ImagesSection = ImagesSection()
    destinations: tuple[Destination, ...] = ()
    api: ApiSection = ApiSection()
    _bootstrap_token: str = PrivateAttr("")

    @field_validator("data_dir", "mappings_dir")
    @classmethod
    def _resolved(cls, value: Path, info: ValidationInfo) -> Path:
        return value if value.is_absolute() else (_base(info) / value).resolve()

    @field_validator("destinations")
    @classmethod
    def _unique_names(cls, destinations: tuple[Destination, ...]):
        for i, dest in enumerate(destinations):
            if any(other.name == dest.name for other in destinations[:i]):
                raise ValueError(f"must each have their own name (destinations[{i}].name "
                                 f"'{dest.name}' is already used)")
        return destinations

    @model_validator(mode="after")
    def _bootstrap_token_from_environment(self, info: ValidationInfo):
        self._bootstrap_token = _environ(info).get("TELEDERM_BOOTSTRAP_TOKEN", "")
        return self

    @model_validator(mode="after")
    def _plugin_reaches_the_api(self):
        """The managed Orthanc's plugin calls the API with a token, never with a client
        certificate: an API that requires one would refuse it."""
        if self.orthanc.managed and self.http.require_client_cert:
            raise ValueError("[http] require_client_cert cannot be used with a managed Orthanc "
                             "(its plugin presents no client certificate): set client_ca_file "
                             "alone, which checks the certificates clients do present")
        return self

    @property
    def bootstrap_token(self) -> str:
        """TELEDERM_BOOTSTRAP_TOKEN: the first admin's token, set in the environment only."""
        return self._bootstrap_token

    @property
    def db_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'telederm.db'}"

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
        return self.worklist.folder or self.data_dir / "orthanc" / "worklists"


def _overridable() -> dict[tuple[str, ...], str]:
    """Every scalar key the environment may override: its place in the file → its variable."""
    out: dict[tuple[str, ...], str] = {}
    for name, field in Config.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            for key, sub in kind.model_fields.items():
                if not _is_table_list(sub.annotation):
                    out[(name, key)] = f"TELEDERM_{name.upper()}_{key.upper()}"
        elif not _is_table_list(kind):
            out[(name,)] = f"TELEDERM_{name.upper()}"
    return out


def _is_table_list(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is tuple


def _overlay(raw: dict, env: Mapping[str, str]) -> tuple[dict, dict[tuple, str]]:
    """The file's values with the environment's on top, and which keys the environment set."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    from_env: dict[tuple, str] = {}
    for place, variable in _overridable().items():
        if variable not in env:
            continue
        table = data
        for part in place[:-1]:
            if not isinstance(table.get(part, {}), dict):
                break  # `[section]` is not a table in the file: reported as such
            table = table.setdefault(part, {})
        else:
            table[place[-1]] = env[variable]
            from_env[place] = variable
    return data, from_env


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply environment overrides, validate, return a Config.
    Raises one ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    raw: dict = {}
    base = Path.cwd()
    where = "environment"
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
        where = str(path)
    data, from_env = _overlay(raw, env)
    problems = Problems(where, hint="fix the file or the environment variable")
    config = None
    try:
        config = Config.model_validate(data, context={"base": base, "env": env})
    except ValidationError as exc:
        for error, problem in zip(exc.errors(), render(exc, where, hint=problems.hint)):
            variable = from_env.get(tuple(error["loc"]))  # name the variable to fix
            problems.found.append(problem if variable is None else ConfigError(
                problem.text, where=f"{variable} [{key_path(error['loc'])}]", hint=problem.hint))
    problems.raise_any()
    return config

