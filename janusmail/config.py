"""Server configuration: defaults, overlaid by a TOML file, overlaid by command-line flags.

One dataclass tree so every listener reads the same settings. The TOML file (``DIR/janusmail.toml`` unless
``--config`` names another) uses the section and key names of these dataclasses, e.g.::

    public_url = "https://mail.example.com"   # omit: derived from [jmap] listen (loopback only)
    [imap]
    listen = "0.0.0.0:143"
    imaps = "0.0.0.0:993"
    jmapaccess_draft_response_code = false
    [auth]
    jmap_accepts_basic = true
    [store]
    blob_store = "database"                   # several nodes on one PostgreSQL database
    [metrics]
    listen = "127.0.0.1:9100"                 # Prometheus metrics at /metrics (off unless named)
    [log]
    format = "json"                           # one JSON object a line (default "text")
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


def listener_url(host: str, port: int) -> str:
    """``http://HOST:PORT`` for a listener address (IPv6 in brackets); wildcard addresses are not URLs a
    client can use, so they are refused by :meth:`Config.check` before anything is derived from them."""
    host = host.strip("[]")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_public_url(url: str) -> None:
    """Raise ``ValueError`` with a clear reason unless ``url`` can be the base of every JMAP URL we advertise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError(f"public URL {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"public URL {url!r} is not an http(s) URL")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(
            f"public URL {url!r} has a query or fragment; it must be a base URL such as https://mail.example.com "
            "or https://example.com/mail (the JMAP paths are appended to it)"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"public URL {url!r} must not carry a user name or password")
    if parts.scheme != "https" and not is_loopback_host(parts.hostname):
        raise ValueError(f"public URL {url!r} is not https; plain http is only allowed on loopback")


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
    #: Seconds between IDLE's checks for changes no notifier event announced (another process's writes on
    #: SQLite) and for the session's credential still being good.
    idle_poll_interval: float = 30.0
    max_connections_per_account: int = 50
    max_connections_per_ip: int = 100
    max_append_size: int = 64 * 1024 * 1024
    #: Opt-in: also send draft -04's [JMAPACCESS url] / OK [DEBUGGING reason] on login (RFC 9698 removed them).
    jmapaccess_draft_response_code: bool = False
    #: METADATA's server entry /shared/admin (RFC 5464 §3.2.1.1, a URI): None = mailto:postmaster@HOSTNAME,
    #: "" = no such entry.
    metadata_admin: str | None = None


@dataclass
class JmapConfig:
    """JMAP listener; the limits (None = janusmail.jmap.settings defaults) are advertised AND enforced."""

    listen: str | None = "127.0.0.1:8080"
    max_size_upload: int | None = None
    max_concurrent_upload: int | None = None
    max_size_request: int | None = None
    max_concurrent_requests: int | None = None
    max_queued_requests: int | None = None
    queue_wait_ms: int | None = None
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
class SubmissionConfig:
    """SMTP submission for mail clients (RFC 6409; janusmail/smtp/submission.py). Off unless a listener is named.

    ``listen``: plain with STARTTLS (port 587); ``listen_tls``: implicit TLS (RFC 8314, port 465); both use the
    ``[tls]`` certificate. ``plaintext_auth``: AUTH and MAIL before TLS, "loopback" (default), "always" or
    "never". The size limit is ``[lmtp] max_message_size``; bodies are spooled like IMAP literals (``[spool]``).
    """

    listen: str | None = None
    listen_tls: str | None = None
    plaintext_auth: str = "loopback"


@dataclass
class SpoolConfig:
    """Big IMAP literals and JMAP uploads wait in temporary files under ``DIR/tmp``, not in memory
    (janusmail.spool). Octets throughout.

    ``threshold``: bodies above it go to a file. ``max_in_flight``: literals and uploads being received or
    waiting to be stored, all connections together; a body that would pass it is refused with "try again
    later" (IMAP ``NO [LIMIT]``, JMAP 503). ``max_loaded``: spooled messages handed to the store at once (one
    is always let through). ``stall_timeout``: seconds a partly received literal or upload may go without
    data before its connection is dropped and its share of ``max_in_flight`` freed.
    """

    threshold: int = 256 * 1024
    max_in_flight: int = 1024 * 1024 * 1024
    max_loaded: int = 64 * 1024 * 1024
    stall_timeout: int = 120


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
    smtp_accepts_account_password: bool = True
    smtp_accepts_app_passwords: bool = True
    smtp_accepts_bearer: bool = True
    sasl_login: bool = True
    sasl_scram: bool = True
    login_delay_base: float = 1.0
    login_delay_max: float = 15.0
    login_failure_window: float = 900.0
    #: Concurrent argon2 verifications (0: one per CPU, 3 to 4) and how many more may wait before a login
    #: is refused at once as busy (IMAP NO [UNAVAILABLE], HTTP 503).
    login_hash_workers: int = 0
    login_hash_queue: int = 32
    #: Seconds a verified credential is remembered (as a keyed hash, never the secret); 0 disables.
    credential_cache_seconds: float = 600.0
    token_audience: str = "janusmail"
    #: External OAuth issuer trusted by both protocols (optional).
    external_issuer: str | None = None
    external_jwks_url: str | None = None
    external_jwks_file: str | None = None
    external_audience: str | None = None
    external_address_claim: str = "email"


@dataclass
class HttpConfig:
    """The HTTP front (JMAP) beyond its JMAP limits."""

    #: Reverse proxies (IP addresses or CIDR networks) whose ``X-Forwarded-For`` / ``Forwarded`` headers name
    #: the real client, e.g. ``["127.0.0.1", "10.0.0.0/8"]``. Default: none, so the TCP peer is the client and
    #: no request can choose the address the failed-login throttle counts it under.
    trusted_proxies: list[str] = field(default_factory=list)
    #: The ONE header those proxies write the client into: ``x-forwarded-for`` (nginx, HAProxy; default) or
    #: ``forwarded`` (RFC 7239). The other is never read: proxies pass it through from the client untouched.
    forwarded_header: str = "x-forwarded-for"


@dataclass
class StoreConfig:
    """Where the mailstore keeps message and upload bytes (janusmail/store/blobstore.py).

    ``blob_store``: ``"local"`` (default): append-only pack files under ``DIR/blobs``, the fastest, for one
    node. ``"database"``: in the database, written by the same transaction as the mail's rows; what several
    ``serve`` nodes sharing one PostgreSQL database need (every node then reads every message). Allowed on
    SQLite too (the whole store in one file). Blobs written under the other setting stay readable where they
    are: switching only changes where new bytes go.
    """

    blob_store: str = "local"


@dataclass
class OutboundConfig:
    """Sending mail (JMAP EmailSubmission; janusmail/smtp/outbound.py).

    Recipients with an account here are delivered straight into their Inbox. Others go through ``relay``, a
    smarthost: ``smtp://HOST:PORT`` (STARTTLS when the relay offers it) or ``smtps://HOST:PORT`` (implicit
    TLS), with ``relay_username`` and the password in ``relay_password_file`` when it wants AUTH. Without a
    relay they go straight to their domain's MX hosts (janusmail/smtp/mx.py) on ``mx_port``, looked up through
    ``nameservers`` (``"IP"`` or ``"IP:PORT"``; empty: the system's resolver). Temporary failures are retried
    after ``retry_base`` seconds, doubling, until ``max_age``. With ``dkim`` on, every message that leaves
    (relay or MX, not local deliveries) is DKIM-signed with its From domain's key (janusmail/smtp/dkimsign.py).
    """

    relay: str | None = None
    relay_username: str | None = None
    relay_password_file: str | None = None
    #: Verify the relay's certificate (off only for a relay on a private network with a self-signed one).
    relay_tls_verify: bool = True
    retry_base: int = 60
    max_age: int = 2 * 24 * 3600
    #: The port remote mail servers are reached on (25; tests point it at a local sink).
    mx_port: int = 25
    #: DNS servers for the MX lookups, ``"IP"`` or ``"IP:PORT"`` (``"[IPv6]:PORT"``); empty: the system's.
    nameservers: list[str] = field(default_factory=list)
    #: Seconds one DNS lookup may take in all before the attempt counts as a temporary failure.
    dns_timeout: float = 10.0
    #: Verify MX hosts' certificates. Off by default, as between MTAs: STARTTLS is used whenever offered,
    #: unverified (most MX certificates would not pass), which still beats plain text against eavesdroppers.
    mx_tls_verify: bool = False
    #: DKIM-sign outbound mail; the key of each From domain is made on first use (``janusmail dkim show``).
    dkim: bool = True
    dkim_selector: str = "janus"


@dataclass
class MetricsConfig:
    """Prometheus metrics (janusmail/observability): served at ``http://LISTEN/metrics`` when ``listen`` names
    an ``H:P`` (off by default; the page is unauthenticated, so keep it on loopback or a private network).
    With ``serve --workers N`` the supervisor serves the sum of every worker's metrics. ``store_refresh``:
    seconds the numbers read from the store at a scrape (size, outbound queue, push subscriptions) are reused."""

    listen: str | None = None
    store_refresh: float = 5.0


@dataclass
class LogConfig:
    """``format``: ``text`` (default) or ``json`` (one JSON object a line, for log shippers)."""

    format: str = "text"


@dataclass
class Config:
    data_dir: Path = Path("./var")
    db: str | None = None
    #: Where clients reach JMAP (RFC 9698 JMAPACCESS advertises it). ``None``: derived from this process's own
    #: JMAP listener (``http://HOST:PORT``, the bound port when listening on port 0); with no JMAP listener and
    #: no public URL there is no JMAP to point at, and JMAPACCESS is not offered.
    public_url: str | None = None
    hostname: str = "localhost"
    imap: ImapConfig = field(default_factory=ImapConfig)
    jmap: JmapConfig = field(default_factory=JmapConfig)
    lmtp: LmtpConfig = field(default_factory=LmtpConfig)
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def effective_public_url(self) -> str | None:
        """The configured public URL, else the one derived from the JMAP listener, else ``None`` (no JMAP
        known: JMAP is off here and no other server was named, or its port is not bound yet)."""
        if self.public_url:
            return self.public_url
        if not self.jmap.listen:
            return None
        try:
            host, port = parse_hostport(self.jmap.listen)
        except ValueError:  # check() says so at start; here it only means "no URL to offer"
            return None
        return listener_url(host, port) if port else None

    @property
    def session_url(self) -> str | None:
        """The JMAP session resource URL (what JMAPACCESS advertises); ``None`` when no JMAP server is known."""
        base = self.effective_public_url
        return None if base is None else base.rstrip("/") + "/.well-known/jmap"

    def settle_public_url(self, host: str, port: int) -> None:
        """The JMAP listener is bound at ``host:port``: without a configured public URL, that is the URL (so an
        ephemeral port 0 is advertised as the port actually bound, never as ``0``)."""
        if not self.public_url:
            self.public_url = listener_url(host, port)

    def check(self) -> None:
        """Refuse settings that would make the server lie or leak: JMAP off loopback must be https, and the
        advertised URL must be one the JMAP routes can be appended to (no query, fragment or credentials)."""
        if self.public_url:
            check_public_url(self.public_url)
        elif self.jmap.listen:
            host, port = parse_hostport(self.jmap.listen)
            if not is_loopback_host(host):
                raise ValueError(
                    f"JMAP listens on {self.jmap.listen} but no public URL is set: clients off this machine need "
                    "the https URL they reach JMAP at; give --public-url (or public_url in the config)"
                )
        if self.imap.plaintext_auth not in ("loopback", "always", "never"):
            raise ValueError("imap.plaintext_auth must be loopback, always or never")
        if self.submission.plaintext_auth not in ("loopback", "always", "never"):
            raise ValueError("submission.plaintext_auth must be loopback, always or never")
        if isinstance(self.http.trusted_proxies, str) or not isinstance(self.http.trusted_proxies, list | tuple):
            raise ValueError("http.trusted_proxies must be a list of IP addresses or networks")
        for proxy in self.http.trusted_proxies:
            try:
                ipaddress.ip_network(str(proxy).strip(), strict=False)
            except ValueError:
                raise ValueError(f"http.trusted_proxies: {proxy!r} is not an IP address or network") from None
        header = self.http.forwarded_header
        if not isinstance(header, str) or header.strip().lower() not in ("x-forwarded-for", "forwarded"):
            raise ValueError(
                f"http.forwarded_header must be x-forwarded-for or forwarded, not {self.http.forwarded_header!r}"
            )
        if self.store.blob_store not in ("local", "database"):
            raise ValueError(f'store.blob_store must be "local" or "database", not {self.store.blob_store!r}')
        if self.metrics.listen:
            parse_hostport(self.metrics.listen)
        if self.log.format not in ("text", "json"):
            raise ValueError(f'log.format must be "text" or "json", not {self.log.format!r}')


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
