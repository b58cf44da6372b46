"""Server configuration: defaults, overlaid by a TOML file, overlaid by command-line flags.

One dataclass tree so every listener reads the same settings. The TOML file (``DIR/janusmail.toml`` unless
``--config`` names another) uses the section and key names of these dataclasses, e.g.::

    public_url = "https://mail.example.com"
    [imap]
    listen = "0.0.0.0:143"
    imaps = "0.0.0.0:993"
    jmapaccess_draft_response_code = false
    [auth]
    jmap_accepts_basic = true
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def parse_hostport(value: str) -> tuple[str, int]:
    """Parse ``H:P`` (IPv6 as ``[::1]:P``)."""
    value = value.strip()
    if value.startswith("["):
        host, _, port = value[1:].partition("]:")
    else:
        host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ImapConfig:
    listen: str | None = "127.0.0.1:1143"
    imaps: str | None = None
    #: Plaintext LOGIN/AUTHENTICATE PLAIN before TLS: "loopback" (default), "always" or "never".
    plaintext_auth: str = "loopback"
    idle_timeout: int = 30 * 60
    login_timeout: int = 60
    max_connections_per_account: int = 50
    max_connections_per_ip: int = 100
    max_append_size: int = 64 * 1024 * 1024
    #: Opt-in: also send draft -04's [JMAPACCESS url] / OK [DEBUGGING reason] on login (RFC 9698 removed them).
    jmapaccess_draft_response_code: bool = False


@dataclass
class JmapConfig:
    """JMAP listener; the limits (None = janusmail.jmap.settings defaults) are advertised AND enforced."""

    listen: str | None = "127.0.0.1:8080"
    max_size_upload: int | None = None
    max_concurrent_upload: int | None = None
    max_size_request: int | None = None
    max_concurrent_requests: int | None = None
    max_calls_in_request: int | None = None
    max_objects_in_get: int | None = None
    max_objects_in_set: int | None = None
    max_size_attachments_per_email: int | None = None
    min_ping: int | None = None
    max_ping: int | None = None
    max_event_sources: int | None = None


@dataclass
class LmtpConfig:
    listen: str | None = "127.0.0.1:2424"
    max_message_size: int = 64 * 1024 * 1024


@dataclass
class TlsConfig:
    cert: str | None = None
    key: str | None = None
    #: Generate a self-signed certificate into the data directory when none is configured.
    self_signed: bool = True


@dataclass
class AuthConfig:
    """What each protocol accepts; the names match janusmail.auth.policy.AuthPolicy, which they configure."""

    jmap_accepts_basic: bool = True
    jmap_accepts_account_password: bool = True
    jmap_accepts_app_passwords: bool = True
    jmap_accepts_bearer: bool = True
    imap_accepts_account_password: bool = True
    imap_accepts_app_passwords: bool = True
    imap_accepts_bearer: bool = True
    sasl_login: bool = True
    sasl_scram: bool = True
    login_delay_base: float = 1.0
    login_delay_max: float = 15.0
    token_audience: str = "janusmail"
    #: External OAuth issuer trusted by both protocols (optional).
    external_issuer: str | None = None
    external_jwks_url: str | None = None
    external_jwks_file: str | None = None
    external_audience: str | None = None
    external_address_claim: str = "email"


@dataclass
class Config:
    data_dir: Path = Path("./var")
    db: str | None = None
    public_url: str = "http://127.0.0.1:8080"
    hostname: str = "localhost"
    imap: ImapConfig = field(default_factory=ImapConfig)
    jmap: JmapConfig = field(default_factory=JmapConfig)
    lmtp: LmtpConfig = field(default_factory=LmtpConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)

    @property
    def session_url(self) -> str:
        """The JMAP session resource URL (what JMAPACCESS advertises)."""
        return self.public_url.rstrip("/") + "/.well-known/jmap"

    def check(self) -> None:
        """Refuse settings that would make the server lie or leak: JMAP off loopback must be https."""
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"public URL {self.public_url!r} is not an http(s) URL")
        if parts.scheme != "https" and not is_loopback_host(parts.hostname):
            raise ValueError(
                f"public URL {self.public_url!r} is not https; plain http is only allowed on loopback"
            )
        if self.imap.plaintext_auth not in ("loopback", "always", "never"):
            raise ValueError("imap.plaintext_auth must be loopback, always or never")


def _overlay(obj: Any, data: dict[str, Any], where: str) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        if key not in names:
            raise ValueError(f"unknown setting {where}{key}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{where}{key} must be a table")
            _overlay(current, value, f"{where}{key}.")
        elif key == "data_dir":
            setattr(obj, key, Path(value))
        else:
            setattr(obj, key, value)


def load(data_dir: Path, config_path: Path | None = None) -> Config:
    cfg = Config(data_dir=data_dir)
    path = config_path or data_dir / "janusmail.toml"
    if path.exists():
        with open(path, "rb") as fh:
            _overlay(cfg, tomllib.load(fh), "")
        if config_path is not None and "data_dir" not in open(path, encoding="utf-8").read():
            cfg.data_dir = data_dir
    elif config_path is not None:
        raise FileNotFoundError(path)
    return cfg
