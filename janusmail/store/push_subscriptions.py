"""JMAP push subscriptions (RFC 8620 §7.2): where to POST StateChange objects for an account, kept across restarts.

Why no modseq and no change log: a PushSubscription has no state string (PushSubscription/get and /set carry
none, §7.2.1-7.2.2) and creating one is not a change of mail, so its writes are the store's small
transactions (``Store.transaction``), like an app password's last-used stamp: they wake no IMAP session and
no EventSource. A subscription belongs to the account that created it; every read and write names the
account, so one account can never see or touch another's subscription through its id.

The verification code is minted here and POSTed to the URL by the JMAP door (janusmail/jmap/webpush.py); the
subscription becomes ``verified`` when the client echoes it back (§7.2.2). ``expires`` is clamped to
``MAX_LIFETIME`` from now; expired subscriptions are ignored by :meth:`PushSubscriptions.deliverable` and
removed by :meth:`PushSubscriptions.sweep`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import ids
from .model import NotFound, StoreError
from .schema import ID, metadata
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = [
    "KEEP",
    "Credential",
    "MAX_LIFETIME",
    "MAX_PER_ACCOUNT",
    "PushSubscription",
    "PushSubscriptions",
    "TooManySubscriptions",
    "WrongCode",
    "push_subscriptions_table",
]

#: Longest a subscription may live before the client renews it (RFC 8620 §7.2: the server may shorten).
MAX_LIFETIME = 7 * 24 * 3600
#: Subscriptions one account may hold (each change of the account is POSTed to every one of them).
MAX_PER_ACCOUNT = 50

#: ``update(..., types=KEEP)``: leave the types as they are (None would mean "every type").
KEEP = object()


class TooManySubscriptions(StoreError):
    """The account holds MAX_PER_ACCOUNT subscriptions already."""

    code = "tooMany"


class WrongCode(StoreError):
    """The verificationCode does not match the one POSTed to the URL."""

    code = "wrongCode"


# Migration 0012, declared beside the only code that reads and writes it (as identities.py does).
push_subscriptions_table = sa.Table(
    "push_subscriptions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("device_client_id", sa.String(255), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("p256dh", sa.Text, nullable=True),  # RFC 8291 keys (base64url), both or neither
    sa.Column("auth", sa.Text, nullable=True),
    sa.Column("verification_code", sa.String(64), nullable=False),
    sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("expires", sa.BigInteger, nullable=False),  # epoch seconds
    sa.Column("types", sa.Text, nullable=True),  # JSON list of type names; NULL: every type
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # RFC 8620 §7.2: the subscription dies with the credential that made it. How that credential is checked:
    # its kind (AuthResult.method), the app password's id, and the account's credential epoch at creation.
    sa.Column("credential_method", sa.String(16), nullable=False, server_default="password"),
    sa.Column("credential_id", sa.String(64), nullable=True),
    sa.Column("credential_baseline", sa.BigInteger, nullable=False, server_default="0"),
)


@dataclass(frozen=True, slots=True)
class PushSubscription:
    id: str
    account_id: str
    device_client_id: str
    url: str
    keys: tuple[str, str] | None  # (p256dh, auth)
    verification_code: str
    verified: bool
    expires: int
    types: tuple[str, ...] | None
    credential: Credential = field(default_factory=lambda: Credential("password", None, 0))

    def wants(self, type_name: str) -> bool:
        return self.types is None or type_name in self.types


@dataclass(frozen=True, slots=True)
class Credential:
    """What made a subscription (RFC 8620 §7.2: it must die with it): ``method`` as AuthResult.method, the app
    password's id, and the account's credential epoch when it was made (janusmail.auth.revocation's baseline)."""

    method: str
    credential_id: str | None
    baseline: int


def _row(r: sa.Row) -> PushSubscription:
    keys = (r.p256dh, r.auth) if r.p256dh is not None and r.auth is not None else None
    types = tuple(json.loads(r.types)) if r.types is not None else None
    return PushSubscription(
        r.id,
        r.account_id,
        r.device_client_id,
        r.url,
        keys,
        r.verification_code,
        bool(r.verified),
        int(r.expires),
        types,
        Credential(r.credential_method, r.credential_id, int(r.credential_baseline)),
    )


def _clamp(expires: int | None, now: int) -> int:
    latest = now + MAX_LIFETIME
    return latest if expires is None else max(now, min(int(expires), latest))


class PushSubscriptions:
    """The store's push subscriptions service (``store.push_subscriptions``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reads --------------------------------------------------------------------------------------------

    def list(self, account_id: str, subscription_ids: Sequence[str] | None = None) -> list[PushSubscription]:
        """The account's subscriptions (``subscription_ids`` None: all), expired ones included (the client
        sees them until it renews or destroys them, or the sweep removes them)."""
        t = push_subscriptions_table
        q = sa.select(t).where(t.c.account_id == account_id).order_by(t.c.created_at, t.c.id)
        if subscription_ids is not None:
            if not subscription_ids:
                return []
            q = q.where(t.c.id.in_(list(subscription_ids)))
        with self._store.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def deliverable(self, account_id: str, now: int | None = None) -> list[PushSubscription]:
        """Verified, unexpired subscriptions of the account: the ones a StateChange goes to."""
        t = push_subscriptions_table
        now = int(time.time()) if now is None else now
        q = sa.select(t).where(t.c.account_id == account_id, t.c.verified.is_(True), t.c.expires > now)
        with self._store.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def count_deliverable(self, now: int | None = None) -> int:
        """Verified, unexpired subscriptions of every account (the metrics' gauge): one count over a table
        of at most ``MAX_PER_ACCOUNT`` rows an account."""
        t = push_subscriptions_table
        now = int(time.time()) if now is None else now
        q = sa.select(sa.func.count()).select_from(t).where(t.c.verified.is_(True), t.c.expires > now)
        with self._store.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    # -- writes (small transactions: no modseq, no change log) -------------------------------------------

    @writes
    def create(
        self,
        account_id: str,
        device_client_id: str,
        url: str,
        *,
        keys: tuple[str, str] | None = None,
        expires: int | None = None,
        types: Iterable[str] | None = None,
        credential: tuple[str, str | None] = ("password", None),
        now: int | None = None,
    ) -> PushSubscription:
        """A new, unverified subscription with a fresh verification code; ``expires`` clamped. ``credential``:
        (AuthResult.method, app password id) of what authenticated the request; the account's credential
        epoch now is its baseline (a later password change or revocation kills the subscription). Raises
        :class:`TooManySubscriptions` when the account holds ``MAX_PER_ACCOUNT`` already."""
        t = push_subscriptions_table
        now = int(time.time()) if now is None else now
        sub_id = ids.mint("P")
        code = secrets.token_urlsafe(24)
        row = {
            "id": sub_id,
            "account_id": account_id,
            "device_client_id": device_client_id,
            "url": url,
            "p256dh": keys[0] if keys else None,
            "auth": keys[1] if keys else None,
            "verification_code": code,
            "verified": False,
            "expires": _clamp(expires, now),
            "types": json.dumps(sorted(set(types))) if types is not None else None,
            "created_at": now,
        }
        found = self._store.credentials.epochs(account_id)
        made_by = Credential(credential[0], credential[1], found[0] if found else 0)
        row.update(credential_method=made_by.method, credential_id=made_by.credential_id,
                   credential_baseline=made_by.baseline)
        with self._store.transaction() as conn:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c.account_id == account_id)
            )
            if count.scalar_one() >= MAX_PER_ACCOUNT:
                raise TooManySubscriptions(
                    f"an account may hold at most {MAX_PER_ACCOUNT} push subscriptions"
                )
            conn.execute(t.insert().values(**row))
        return PushSubscription(
            sub_id,
            account_id,
            device_client_id,
            url,
            keys,
            code,
            False,
            int(row["expires"]),
            tuple(sorted(set(types))) if types is not None else None,
            made_by,
        )

    @writes
    def update(
        self,
        account_id: str,
        subscription_id: str,
        *,
        verification_code: str | None = None,
        expires: int | None = None,
        types: Iterable[str] | None | object = KEEP,
        now: int | None = None,
    ) -> PushSubscription:
        """Set what a client may change: the verification code (must equal the one sent: raises
        ``WrongCode`` otherwise, and marks the subscription verified), ``expires`` (clamped), ``types``
        (``KEEP``, the default, leaves it; None means every type). Raises NotFound."""
        t = push_subscriptions_table
        now = int(time.time()) if now is None else now
        with self._store.transaction() as conn:
            found = conn.execute(
                sa.select(t).where(t.c.id == subscription_id, t.c.account_id == account_id)
            ).first()
            if found is None:
                raise NotFound("no such push subscription")
            values: dict[str, object] = {}
            if verification_code is not None:
                if not secrets.compare_digest(verification_code, found.verification_code):
                    raise WrongCode("the verification code is not the one sent to the push URL")
                values["verified"] = True
            if expires is not None:
                values["expires"] = _clamp(expires, now)
            if types is not KEEP:
                values["types"] = None if types is None else json.dumps(sorted(set(types)))  # type: ignore[arg-type]
            if values:
                conn.execute(t.update().where(t.c.id == subscription_id).values(**values))
            row = conn.execute(sa.select(t).where(t.c.id == subscription_id)).one()
        return _row(row)

    @writes
    def destroy(self, account_id: str, subscription_id: str) -> None:
        t = push_subscriptions_table
        with self._store.transaction() as conn:
            gone = conn.execute(t.delete().where(t.c.id == subscription_id, t.c.account_id == account_id))
            if gone.rowcount == 0:
                raise NotFound("no such push subscription")

    @writes
    def sweep(self, now: int | None = None) -> int:
        """Remove expired subscriptions of every account (one DELETE by time; run rarely, at start-up)."""
        t = push_subscriptions_table
        now = int(time.time()) if now is None else now
        with self._store.transaction() as conn:
            return conn.execute(t.delete().where(t.c.expires <= now)).rowcount or 0
