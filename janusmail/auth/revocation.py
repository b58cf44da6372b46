"""Is the credential a session logged in with still good? The check behind "sessions end with their credential".

JMAP authenticates every request, so a replaced password, a revoked app password or an expired token fails at
the next request by itself. An IMAP session authenticates once and may run for days; without this check it
would keep reading (and writing) mail with a credential the operator has taken away, and keep promising
JMAPACCESS that JMAP no longer honours. The rule, as the README states it: a session whose credential was
revoked, replaced or expired is told ``* BYE`` at its next command (within seconds while IDLE).

:func:`check` is what the session asks before every command, unless nothing changed: on SQLite a counter in
shared memory (:mod:`janusmail.store.credential_signal`) moves after every committed credential change in any
process, and while it shows what it showed before the session's last good check the IMAP session skips the
check. The check costs one primary-key read: the account's
credential epoch (``Store.credentials.epochs``, see :mod:`janusmail.store.credentials`) against the baseline the
session logged in under. It asks the store through typed methods only (the doors run no SQL), and is
synchronous: callers run it on the store's threads (``await store.call(check, store, ...)``). Only
when the account's credentials changed since does it look at *which* change: a disabled account ends every
session, a password change ends password (and SCRAM) sessions, a revoked or deleted app password ends the sessions of that app password only,
a revoked token (``store.tokens``) ends the sessions logged in with that token only,
and anything else (another app password revoked) just moves the baseline. Token expiry needs no database:
``exp`` plus the issuer's clock-skew grace, the moment a new login with the token would fail too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .authenticator import AuthResult

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.store import Store

PASSWORD_CHANGED = "Your password was changed; log in again with the new one"
APP_PASSWORD_REVOKED = "This app password was revoked"
TOKEN_EXPIRED = "Your access token expired; log in again with a new one"
TOKEN_REVOKED = "This access token was revoked"
ACCOUNT_GONE = "This account no longer exists"
ACCOUNT_DISABLED = "This account was disabled"


@dataclass(frozen=True, slots=True)
class Verdict:
    """``reason``: why the session must end (safe to show the client), ``None`` while the credential is good.
    ``baseline``: the epoch to compare with next time (moved forward past changes that did not concern us)."""

    reason: str | None
    baseline: int


def deadline(result: AuthResult, grace: float = 0) -> float | None:
    """When a session logged in with ``result`` must end by the clock (bearer tokens), else ``None``."""
    if result.method != "bearer" or result.expires_at is None:
        return None
    return result.expires_at + grace


def check(store: Store, result: AuthResult, baseline: int, *, now: float, grace: float = 0) -> Verdict:
    """Would the credential ``result`` was made from still be accepted, as far as revocation and expiry go?
    Blocking (a few reads by key): run it with ``store.call``, or ``store.read_inline`` (it writes nothing)."""
    end = deadline(result, grace)
    if end is not None and now >= end:
        return Verdict(TOKEN_EXPIRED, baseline)
    found = store.credentials.epochs(result.account_id)
    if found is None:
        return Verdict(ACCOUNT_GONE, baseline)
    epoch, password_epoch = found
    if epoch <= baseline:
        return Verdict(None, baseline)
    disabled = store.credentials.disabled(result.account_id)  # something changed: what?
    if disabled is None:
        return Verdict(ACCOUNT_GONE, baseline)
    if disabled:
        return Verdict(ACCOUNT_DISABLED, baseline)
    if result.method in ("password", "scram") and password_epoch > baseline:
        return Verdict(PASSWORD_CHANGED, baseline)
    if result.method == "app_password":
        state = store.app_passwords.state(result.credential_id) if result.credential_id else None
        if state != (result.account_id, True):  # gone, revoked, or (never) another account's
            return Verdict(APP_PASSWORD_REVOKED, baseline)
    if result.method == "bearer" and result.credential_id:
        state = store.tokens.state(result.credential_id)
        # no record (an unrecorded or external token) is no revocation, nor is another account's record
        if state is not None and state[0] == result.account_id and not state[1]:
            return Verdict(TOKEN_REVOKED, baseline)
    return Verdict(None, epoch)
