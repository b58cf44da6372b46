"""App passwords: per-device secrets, each limited to a set of protocols and revocable on its own.

Why they exist: an operator can turn off the account password for JMAP (RFC 9698 example 3) or hand an old
IMAP-only client a secret that cannot read mail over JMAP. Whether a login made with an app password "would
work over JMAP" is then a fact about that one credential (its protocols, whether it was revoked), which
:meth:`janusmail.auth.authenticator.Authenticator.jmap_access_ok` reads.

Design decisions:

* **Generated, never chosen**: 24 symbols from a 31-letter alphabet without look-alikes (no ``0 1 i l o``),
  about 119 bits, shown once as six groups of four (``abcd-efgh-...``). Users may type them with or without the
  dashes, spaces, in either case; :func:`normalize` undoes all of that.
* **Stored as SHA-256, not argon2**: a slow hash protects guessable human passwords; a 119-bit random secret
  cannot be guessed, so a fast hash loses nothing and lets a login test every app password of an account in
  microseconds instead of N x argon2 (JMAP with Basic authenticates every HTTP request). Hashes in argon2 form
  (e.g. imported) are still accepted.
* **Revocation keeps the row** (``revoked_at``) for auditing, and ends the sessions logged in with it. Creating a new app password with the name of a
  revoked one deletes the revoked row first, because names are unique per account.
* ``last_used_at`` is written at most once per :data:`LAST_USED_GRANULARITY` seconds per credential, so a
  busy JMAP client does not turn every request into a write transaction; a login does not wait for it
  (``wait=False``: the stamp is queued on the store's writer).
* **The store holds the data** (``store.app_passwords``, :mod:`janusmail.store.app_passwords`); this module
  keeps the credential logic: generating a secret, hashing and comparing it, validating names and protocols.
  The secret itself never reaches the store, only its hash. Writes run on the store's writer executor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from janusmail.store import app_passwords as store_app_passwords
from janusmail.store import writer_calls
from janusmail.store.app_passwords import AppPassword
from janusmail.store.model import AlreadyExists, NotFound

from . import passwords

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.store import Store

__all__ = [
    "LAST_USED_GRANULARITY",
    "PROTOCOLS",
    "AppPassword",
    "AppPasswordError",
    "DuplicateName",
    "UnknownAccount",
    "create",
    "format_protocols",
    "generate",
    "get",
    "list_for",
    "normalize",
    "parse_protocols",
    "revoke",
    "touch",
    "verify",
]

T = TypeVar("T")

PROTOCOLS: tuple[str, ...] = ("imap", "jmap", "smtp")
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
LENGTH = 24
GROUP = 4
LAST_USED_GRANULARITY = 60
MAX_NAME = 200

#: Where app passwords live: a Store (its ``app_passwords`` service), or a bare engine for a tool without one.
Target = Any  # a Store, or a bare database engine (tools, old tests); loose: no database imports here


class AppPasswordError(ValueError):
    """Refusal to create or change an app password; the message is safe to show to the user."""


class DuplicateName(AppPasswordError):
    pass


class UnknownAccount(AppPasswordError):
    pass


def parse_protocols(value: str | Iterable[str]) -> frozenset[str]:
    """``"imap,jmap"`` or ``["imap", "jmap"]`` -> frozenset; unknown or no protocol is an error."""
    items = value.split(",") if isinstance(value, str) else list(value)
    protos = frozenset(p.strip().lower() for p in items if isinstance(p, str) and p.strip())
    unknown = protos - set(PROTOCOLS)
    if unknown:
        raise AppPasswordError(
            f"unknown protocol(s): {', '.join(sorted(unknown))} (allowed: {', '.join(PROTOCOLS)})"
        )
    if not protos:
        raise AppPasswordError("an app password needs at least one protocol")
    return protos


def format_protocols(protocols: Iterable[str]) -> str:
    return ",".join(p for p in PROTOCOLS if p in set(protocols))


def generate() -> str:
    """A fresh secret in display form, e.g. ``k7wm-3pqa-xh2c-9dtr-fve4-nsbu``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i : i + GROUP] for i in range(0, LENGTH, GROUP))


def normalize(secret: str) -> str | None:
    """The canonical form of a typed app password, or ``None`` if it cannot be one (no database work then)."""
    if not isinstance(secret, str) or len(secret) > 4 * LENGTH:
        return None
    canon = "".join(ch for ch in secret.lower() if ch not in "- \t")
    if len(canon) != LENGTH or any(ch not in ALPHABET for ch in canon):
        return None
    return canon


def _digest(canon: str) -> str:
    return "sha256$" + hashlib.sha256(canon.encode("ascii")).hexdigest()


def _matches(stored: str, canon: str) -> bool:
    if stored.startswith("$argon2"):
        return passwords.check_password(stored, canon).ok
    return hmac.compare_digest(stored.encode(), _digest(canon).encode())


def _clean_name(name: str) -> str:
    if not isinstance(name, str):
        raise AppPasswordError("an app password name must be text")
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise AppPasswordError(f"an app password name must be 1-{MAX_NAME} printable characters")
    return name


def _service(target: Target) -> store_app_passwords.AppPasswords | store_app_passwords.EngineAppPasswords:
    return store_app_passwords.service_for(target)


def _write(target: Target, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a write of the service: on the store's writer executor for a Store, in place for a bare engine."""
    if isinstance(getattr(fn, "__self__", None), store_app_passwords.AppPasswords):
        return writer_calls.run(target, fn, *args, **kwargs)
    return fn(*args, **kwargs)


def create(
    target: Store | Target,
    account_id: str,
    name: str,
    protocols: str | Iterable[str] = PROTOCOLS,
    *,
    now: int | None = None,
) -> tuple[AppPassword, str]:
    """Create an app password; returns it and the secret, which is never retrievable again (the store keeps
    only its hash)."""
    name = _clean_name(name)
    protos = parse_protocols(protocols)
    secret = generate()
    svc = _service(target)
    try:
        ap = _write(target, svc.create, account_id, name, protos, _digest(normalize(secret) or ""), now=now)
    except NotFound:
        raise UnknownAccount(f"no account {account_id!r}") from None
    except AlreadyExists:
        raise DuplicateName(f"an app password named {name!r} already exists") from None
    return ap, secret


def list_for(target: Store | Target, account_id: str, *, include_revoked: bool = False) -> list[AppPassword]:
    """The account's app passwords, oldest first."""
    return _service(target).list(account_id, include_revoked=include_revoked)


def get(target: Store | Target, app_password_id: str) -> AppPassword | None:
    """One app password by id, revoked or not (``jmap_access_ok`` re-reads the current facts with this)."""
    return _service(target).get(app_password_id)


def revoke(target: Store | Target, account_id: str, name_or_id: str, *, now: int | None = None) -> bool:
    """Revoke the active app password with that id or name; False when there is none.

    New logins and JMAP requests with it fail at once; IMAP sessions logged in with it end (``* BYE``) at
    their next command or, while IDLE, within seconds. The store does it (``target``: the Store, or an
    engine for a tool without one): the revocation stamps the account's credential epoch and announces itself
    in the same transaction (:mod:`janusmail.store.app_passwords`), from any process."""
    svc = _service(target)
    return bool(_write(target, svc.revoke, account_id, name_or_id, now=now))


def verify(
    target: Store | Target, account_id: str, secret: str, protocol: str, *, now: int | None = None,
    wait: bool = True,
) -> AppPassword | None:
    """The active app password of this account equal to ``secret`` and allowed for ``protocol``, else None.

    A correct secret used for a protocol it was not granted is a failed login, exactly like a wrong secret.
    One read; the last-used stamp follows (``wait=False``: queued, the caller does not wait for it).
    """
    canon = normalize(secret)
    if canon is None:
        return None
    found = None
    for ap, stored in _service(target).candidates(account_id):
        # every row is compared, so timing does not depend on which one matched
        if _matches(stored, canon) and found is None:
            found = ap
    if found is None or protocol not in found.protocols:
        return None
    return touch(target, found, now=now, wait=wait)


def touch(target: Store | Target, app_password: AppPassword, *, now: int | None = None,
          wait: bool = True) -> AppPassword:
    """Record a use (at most one write per :data:`LAST_USED_GRANULARITY` seconds); returns the app password as
    it is after the stamp. ``wait=False`` queues the write on the store's writer and returns at once."""
    now = int(time.time()) if now is None else now
    last = app_password.last_used_at
    if last is not None and now - last < LAST_USED_GRANULARITY:
        return app_password
    svc = _service(target)
    not_since = now - LAST_USED_GRANULARITY + 1
    if wait:
        _write(target, svc.touch, app_password.id, now, not_since=not_since)
    else:
        svc.touch_soon(app_password.id, now, not_since=not_since)
    return dataclasses.replace(app_password, last_used_at=now)
