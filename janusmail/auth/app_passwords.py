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
  busy JMAP client does not turn every request into a write transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from janusmail.store import app_passwords as store_app_passwords
from janusmail.store import ids
from janusmail.store.schema import accounts, app_passwords

from . import passwords

PROTOCOLS: tuple[str, ...] = ("imap", "jmap", "smtp")
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
LENGTH = 24
GROUP = 4
LAST_USED_GRANULARITY = 60
MAX_NAME = 200


class AppPasswordError(ValueError):
    """Refusal to create or change an app password; the message is safe to show to the user."""


class DuplicateName(AppPasswordError):
    pass


class UnknownAccount(AppPasswordError):
    pass


@dataclass(frozen=True, slots=True)
class AppPassword:
    """An app password as listed to its owner; never carries the secret or its hash."""

    id: str
    account_id: str
    name: str
    protocols: frozenset[str]
    created_at: int
    last_used_at: int | None
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, protocol: str) -> bool:
        return self.active and protocol in self.protocols


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


def _row(row: sa.Row) -> AppPassword:
    return AppPassword(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        protocols=frozenset(p for p in row.protocols.split(",") if p),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _clean_name(name: str) -> str:
    if not isinstance(name, str):
        raise AppPasswordError("an app password name must be text")
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise AppPasswordError(f"an app password name must be 1-{MAX_NAME} printable characters")
    return name


def create(
    engine: sa.Engine,
    account_id: str,
    name: str,
    protocols: str | Iterable[str] = PROTOCOLS,
    *,
    now: int | None = None,
) -> tuple[AppPassword, str]:
    """Create an app password; returns it and the secret, which is never retrievable again."""
    name = _clean_name(name)
    protos = parse_protocols(protocols)
    now = int(time.time()) if now is None else now
    secret = generate()
    new_id = ids.mint(ids.APP_PASSWORD)
    ap = app_passwords.c
    try:
        with engine.begin() as conn:
            if conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
                raise UnknownAccount(f"no account {account_id!r}")
            existing = conn.execute(
                sa.select(ap.id, ap.revoked_at).where(ap.account_id == account_id, ap.name == name)
            ).first()
            if existing is not None:
                if existing.revoked_at is None:
                    raise DuplicateName(f"an app password named {name!r} already exists")
                conn.execute(sa.delete(app_passwords).where(ap.id == existing.id))
            conn.execute(
                sa.insert(app_passwords).values(
                    id=new_id,
                    account_id=account_id,
                    name=name,
                    password_hash=_digest(normalize(secret) or ""),
                    protocols=format_protocols(protos),
                    created_at=now,
                )
            )
    except sa.exc.IntegrityError as exc:  # a concurrent create with the same name won the race
        raise DuplicateName(f"an app password named {name!r} already exists") from exc
    return AppPassword(new_id, account_id, name, protos, now, None, None), secret


def list_for(engine: sa.Engine, account_id: str, *, include_revoked: bool = False) -> list[AppPassword]:
    """The account's app passwords, oldest first."""
    ap = app_passwords.c
    q = sa.select(app_passwords).where(ap.account_id == account_id)
    if not include_revoked:
        q = q.where(ap.revoked_at.is_(None))
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(q.order_by(ap.created_at, ap.id))]


def get(engine: sa.Engine, app_password_id: str) -> AppPassword | None:
    """One app password by id, revoked or not (``jmap_access_ok`` re-reads the current facts with this)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(app_passwords).where(app_passwords.c.id == app_password_id)).first()
    return _row(row) if row else None


def revoke(target: Any, account_id: str, name_or_id: str, *, now: int | None = None) -> bool:
    """Revoke the active app password with that id or name; False when there is none.

    New logins and JMAP requests with it fail at once; IMAP sessions logged in with it end (``* BYE``) at
    their next command or, while IDLE, within seconds. The store does it (``target``: the Store, or an
    engine for a tool without one): the revocation stamps the account's credential epoch and announces itself
    in the same transaction (:mod:`janusmail.store.app_passwords`), from any process."""
    if isinstance(target, sa.Engine):
        return store_app_passwords.revoke_with_engine(target, account_id, name_or_id, now=now)
    return bool(target.revoke_app_password(account_id, name_or_id, now=now))


def verify(
    engine: sa.Engine, account_id: str, secret: str, protocol: str, *, now: int | None = None
) -> AppPassword | None:
    """The active app password of this account equal to ``secret`` and allowed for ``protocol``, else None.

    A correct secret used for a protocol it was not granted is a failed login, exactly like a wrong secret.
    """
    canon = normalize(secret)
    if canon is None:
        return None
    ap = app_passwords.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(app_passwords).where(ap.account_id == account_id, ap.revoked_at.is_(None))
        ).all()
    found = None
    for row in rows:  # every row is compared, so timing does not depend on which one matched
        if _matches(row.password_hash, canon) and found is None:
            found = row
    if found is None:
        return None
    result = _row(found)
    if protocol not in result.protocols:
        return None
    return touch(engine, result, now=now)


def touch(engine: sa.Engine, app_password: AppPassword, *, now: int | None = None) -> AppPassword:
    """Record a use (at most one write per :data:`LAST_USED_GRANULARITY` seconds)."""
    now = int(time.time()) if now is None else now
    last = app_password.last_used_at
    if last is not None and now - last < LAST_USED_GRANULARITY:
        return app_password
    ap = app_passwords.c
    with engine.begin() as conn:
        conn.execute(
            sa.update(app_passwords)
            .where(ap.id == app_password.id)
            .where(sa.or_(ap.last_used_at.is_(None), ap.last_used_at < now - LAST_USED_GRANULARITY + 1))
            .values(last_used_at=now)
        )
    return AppPassword(
        app_password.id,
        app_password.account_id,
        app_password.name,
        app_password.protocols,
        app_password.created_at,
        now,
        app_password.revoked_at,
    )
