"""Which credentials each protocol accepts: the operator's side of the RFC 9698 question.

One frozen :class:`AuthPolicy` is read by the login paths (IMAP LOGIN/AUTHENTICATE, JMAP HTTP auth, SMTP AUTH)
*and* by :meth:`~janusmail.auth.authenticator.Authenticator.jmap_access_ok`, so "JMAP would accept this" can
never drift from what JMAP actually does.

Decisions:

* ``jmap_accepts_basic`` is the master switch for HTTP Basic on JMAP. Inside Basic, the account password and
  app passwords are switched separately (``jmap_accepts_account_password``, ``jmap_accepts_app_passwords``):
  the common hardening "no account passwords over JMAP, app passwords only" (RFC 9698 example 3) needs that.
* SCRAM proves knowledge of the account password, so for every policy question it counts as ``password``.
* ``*_plaintext_without_tls`` rules mechanisms that expose a reusable secret (LOGIN command, PLAIN, LOGIN,
  OAUTHBEARER, XOAUTH2: a bearer token is as good as a password while it lives). ``"loopback"`` (default)
  allows them without TLS only from 127.0.0.0/8 or ::1, for local tools and tests. SCRAM never exposes the
  password and is allowed regardless.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

Protocol = Literal["imap", "jmap", "smtp"]
Method = Literal["password", "app_password", "bearer", "scram"]
PlaintextRule = Literal["loopback", "always", "never"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
METHODS: tuple[str, ...] = get_args(Method)
PLAINTEXT_RULES: tuple[str, ...] = get_args(PlaintextRule)
#: The web admin (janusmail/admin) as a login "protocol": only the account password opens it. An app password
#: or a token is a device's or a script's narrowed credential; neither may administer the server.
ADMIN = "admin"
LOGIN_PROTOCOLS: tuple[str, ...] = (*PROTOCOLS, ADMIN)


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    # JMAP (HTTP)
    jmap_accepts_basic: bool = True
    jmap_accepts_account_password: bool = True
    jmap_accepts_app_passwords: bool = True
    jmap_accepts_bearer: bool = True
    # IMAP
    imap_accepts_account_password: bool = True
    imap_accepts_app_passwords: bool = True
    imap_accepts_bearer: bool = True
    imap_plaintext_without_tls: PlaintextRule = "loopback"
    # SMTP submission
    smtp_accepts_account_password: bool = True
    smtp_accepts_app_passwords: bool = True
    smtp_accepts_bearer: bool = True
    smtp_plaintext_without_tls: PlaintextRule = "loopback"
    # SASL mechanisms beyond the must-haves (PLAIN, OAUTHBEARER)
    sasl_login: bool = True  # legacy LOGIN: Outlook and old phones still use it
    sasl_xoauth2: bool = True  # Google-style legacy of OAUTHBEARER
    sasl_scram: bool = True
    # Failed-login backoff (see throttle.LoginThrottle): the n-th failure of a (client, account) pair costs
    # base * 2**(n-1) seconds, capped; counts are forgotten `window` seconds after the last failure.
    login_delay_base: float = 1.0
    login_delay_max: float = 15.0
    login_failure_window: float = 900.0
    # Password hashing capacity (see throttle.HashGate): concurrent argon2 verifications (0: one per CPU, 3 to
    # 4) and how many more may wait; beyond that a login is refused at once as busy.
    login_hash_workers: int = 0
    login_hash_queue: int = 32
    # How long a verified password/app password is remembered (keyed by a keyed hash, never the secret), so
    # JMAP's per-request Basic auth and clients that log in every minute do not pay argon2 every time.
    # 0 disables the cache.
    credential_cache_seconds: float = 600.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_plaintext_without_tls"):
                if value not in PLAINTEXT_RULES:
                    raise ValueError(f"{f.name} must be one of {', '.join(PLAINTEXT_RULES)}, not {value!r}")
            elif f.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{f.name} must be true or false, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{f.name} must be a non-negative number, not {value!r}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> AuthPolicy:
        """Build from the ``[auth]`` config table; unknown keys are an error (a typo must not silently change security)."""
        cfg = dict(cfg or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown auth setting(s): {', '.join(sorted(unknown))}")
        for name in (
            "login_delay_base",
            "login_delay_max",
            "login_failure_window",
            "credential_cache_seconds",
        ):
            if isinstance(cfg.get(name), int) and not isinstance(cfg.get(name), bool):
                cfg[name] = float(cfg[name])
        return cls(**cfg)

    def allows(self, method: str, protocol: str) -> bool:
        """Does ``protocol`` accept credentials of kind ``method`` at all (before checking the secret)?"""
        return self.refusal(method, protocol) is None

    def refusal(self, method: str, protocol: str) -> str | None:
        """The setting that keeps ``protocol`` from accepting credentials of kind ``method`` (as the operator
        writes it in ``[auth]``, e.g. ``jmap_accepts_basic = false``), ``None`` when it accepts them. One
        decision for :meth:`allows` (every login) and for the admin's JMAPACCESS explanation, so the two
        cannot disagree."""
        if protocol == ADMIN:
            return None if method == "password" else "the admin accepts only the account password"
        if protocol not in PROTOCOLS or method not in METHODS:
            return f"unknown protocol {protocol!r} or credential kind {method!r}"
        if protocol == "jmap":
            if method != "bearer" and not self.jmap_accepts_basic:
                return "jmap_accepts_basic = false"
            field = {"password": "jmap_accepts_account_password", "scram": "jmap_accepts_account_password",
                     "app_password": "jmap_accepts_app_passwords", "bearer": "jmap_accepts_bearer"}[method]
            return None if getattr(self, field) else f"{field} = false"
        if method == "scram" and not self.sasl_scram:
            return "sasl_scram = false"
        kind = {"password": "account_password", "scram": "account_password", "app_password": "app_passwords",
                "bearer": "bearer"}[method]
        field = f"{protocol}_accepts_{kind}"
        return None if getattr(self, field) else f"{field} = false"

    def plaintext_allowed(self, protocol: str, tls_active: bool, peer_loopback: bool = False) -> bool:
        """May a mechanism that exposes the secret be used on this connection? (IMAP LOGINDISABLED etc.)"""
        if tls_active or protocol == "jmap":
            return True  # JMAP's transport security is the HTTP server's (or proxy's) business
        rule = getattr(self, f"{protocol}_plaintext_without_tls", "never")
        return rule == "always" or (rule == "loopback" and peer_loopback)


def is_loopback(peer: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; anything unparsable is not loopback."""
    if not peer:
        return False
    host = peer.strip("[]")
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback
