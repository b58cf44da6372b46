"""Watch the credential a long-lived JMAP connection was opened with (README, "Sessions end with their credential").

Plain JMAP requests need none of this: each one is authenticated on its own, so a revoked app password or a
replaced password fails at the next request. A WebSocket (RFC 8887) or an EventSource stream (RFC 8620 §7.3)
is authenticated once, on its opening request, and may then run for days; without a watch it would go on
pushing (and, on a WebSocket, executing API calls) for a credential the operator has taken away.

The facts are the same as for IMAP sessions (:mod:`janusmail.auth.revocation`): the store-wide credential epoch
read *before* the opening request was authenticated is the baseline, and :func:`revocation.check` compares the
account's epoch with it (one primary-key read). The prompt part comes from the store's change notifier: every
credential change is a ``Credential`` event (published by the writing process, by PostgreSQL ``NOTIFY`` from
other nodes, by the SQLite watcher for other processes), and only such an event leads to a check. No polling.

Two ways to use it, because the EventSource stream already holds a notifier subscription for its pushes and
should not take a second one: :meth:`CredentialWatch.hears` looks at events someone else received;
:meth:`CredentialWatch.dead` keeps its own subscription (the WebSocket, whose pushes come and go).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from janusmail.auth import revocation
from janusmail.auth.authenticator import Authenticator, AuthResult
from janusmail.observability.metrics import Metrics
from janusmail.store.credentials import is_credential_event
from janusmail.store.notifier import ChangeEvent

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.store import Store

__all__ = ["CredentialWatch", "read_baseline"]

log = logging.getLogger("janusmail.jmap.credentials")


async def read_baseline(store: Store) -> int | None:
    """The store-wide credential epoch now, or ``None`` when the store cannot say. Read it *before*
    authenticating the opening request: any later change of that account's credentials is then larger."""
    try:
        return int(await store.call(store.credentials.sequence))
    except Exception:  # noqa: BLE001 - the caller answers 503 instead of opening a connection it cannot watch
        log.warning("could not read the credential epoch", exc_info=True)
        return None


def _grace(auth: Authenticator, principal: AuthResult) -> float:
    """The token issuer's clock-skew leeway: a token is accepted that long after ``exp``, so it dies then."""
    tokens = auth.tokens
    if tokens is None or principal.method != "bearer":
        return 0.0
    return float(tokens.grace(principal.issuer))


class CredentialWatch:
    """Is ``principal``'s credential (as authenticated after ``baseline`` was read) still good?"""

    def __init__(
        self, store: Store, principal: AuthResult, baseline: int, *, auth: Authenticator,
        clock: Callable[[], float] = time.time, metrics: Metrics | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.metrics = metrics or Metrics()
        self.principal = principal
        self.baseline = baseline
        self.grace = _grace(auth, principal)
        self.clock = clock

    async def problem(self) -> str | None:
        """Why the credential is no longer good (revoked, replaced, expired, account deleted), else ``None``.
        A store that cannot answer is not taken for a revocation: the connection's own work meets the same
        trouble and says so, and the next credential event asks again."""
        try:
            verdict = await self.store.call(
                revocation.check, self.store, self.principal, self.baseline,
                now=self.clock(), grace=self.grace,
            )  # fmt: skip
        except Exception:  # noqa: BLE001
            log.warning("credential check failed", exc_info=True)
            return None
        self.baseline = verdict.baseline  # past changes that did not concern us: not looked at again
        if verdict.reason is not None:
            log.info("ending JMAP push connection of %s: %s", self.principal.account_id, verdict.reason)
            self.metrics.session_revoked("jmap", verdict.reason)
        return verdict.reason

    async def hears(self, events: Iterable[ChangeEvent]) -> str | None:
        """:meth:`problem`, but only when ``events`` (from the account's notifier subscription) include a
        credential change: mail changes cost nothing."""
        if not any(is_credential_event(ev) for ev in events):
            return None
        return await self.problem()

    async def dead(self) -> str:
        """Return the reason once the credential dies, woken only by credential events. Subscribes first and
        then checks once, so a change made between reading the baseline and subscribing is not missed."""
        sub = self.store.notifier.subscribe(self.principal.account_id)
        try:
            reason = await self.problem()
            while reason is None:
                reason = await self.hears(await sub.wait())
            return reason
        finally:
            sub.close()
