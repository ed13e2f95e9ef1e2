"""TLS contexts for MLLP: the listener's (server) and an outbound peer's (client).

MLLP defines no TLS of its own; both peers agree to wrap the TCP stream (dcm4chee's 12575, HAPI's
`useTls`). TLS 1.2 at least. A listener may ask for client certificates (mutual TLS) checked
against a CA file; a client verifies the peer's certificate and name against a CA file (or the
system's CAs) and may present its own certificate.

A file that is missing or not a usable certificate/key raises `ConfigError` naming `where`.
"""

from __future__ import annotations

import ssl
from os import PathLike

from ..domain.errors import ConfigError

StrPath = str | PathLike


def server_context(cert_file: StrPath, key_file: StrPath | None = None, *,
                   client_ca_file: StrPath | None = None, require_client_cert: bool = False,
                   where: str = "hl7") -> ssl.SSLContext:
    """A listener's context. With `client_ca_file`, a client certificate is checked against it
    when presented; `require_client_cert` refuses clients that present none."""
    if require_client_cert and not client_ca_file:
        raise ConfigError("require_client_cert needs client_ca_file", where=where,
                          hint="give the CA that signed the clients' certificates")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert_file, key_file, where)
    if client_ca_file:
        _load_ca(context, client_ca_file, f"{where}.client_ca_file")
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_context(ca_file: StrPath | None = None, cert_file: StrPath | None = None,
                   key_file: StrPath | None = None, *, where: str = "destination") -> ssl.SSLContext:
    """A client's context: the peer's certificate and host name are always verified, against
    `ca_file` when given, else the system's CAs; `cert_file`/`key_file` for mutual TLS."""
    if ca_file:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # this CA only, not the system's
        _load_ca(context, ca_file, f"{where}.ca_file")
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        _load_chain(context, cert_file, key_file, where)
    return context


def _load_chain(context: ssl.SSLContext, cert_file, key_file, where: str) -> None:
    try:
        context.load_cert_chain(cert_file, key_file or None)
    except FileNotFoundError:
        raise ConfigError(f"certificate or key file not found ({cert_file}, {key_file or '-'})",
                          where=f"{where}.cert_file", hint="check the paths") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the certificate and key: {exc.strerror or exc}",
                          where=f"{where}.cert_file",
                          hint="PEM files, the key matching the certificate, not encrypted") from None


def _load_ca(context: ssl.SSLContext, ca_file, where: str) -> None:
    try:
        context.load_verify_locations(cafile=ca_file)
    except FileNotFoundError:
        raise ConfigError(f"CA file {ca_file} not found", where=where, hint="check the path") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the CA file: {exc.strerror or exc}", where=where,
                          hint="a PEM file of CA certificates") from None
