"""JMAP requests of a credential this process accepted, answered without the database or a login thread.

Why: JMAP authenticates every request. A Basic credential already verified costs no argon2 (the verified cache,
:mod:`.verify_cache`), but each request still hopped to a login thread and read the account's row to learn
that nothing had changed: about a fifth of the server's time per upload (py-spy, issue 10's JMAP ingest).

How: the same fact IMAP sessions rely on (:mod:`janusmail.store.credential_signal`). On SQLite every process of
the store shares a counter that moves after each committed credential change of any account (password, app
password, token revocation, disabling, JMAP switched off, deletion). An accepted ``Authorization`` header is
remembered with the counter's value read *before* it was verified; while the counter still shows that value
and the credential cache's lifetime (``[auth] credential_cache_seconds``) has not run out, nothing that could
refuse it has been committed, and the remembered result is the answer. The memo lives on the strength of the
verified cache (:class:`~janusmail.auth.verify_cache.VerifiedCache`): clearing that forgets it too. Any other value sends the request
through :meth:`~janusmail.auth.authenticator.Authenticator.http_authenticate` as before. PostgreSQL stores share
no memory between nodes: there is no counter, so nothing is remembered.

Headers are kept only as an HMAC under a per-process key (never the secret itself), at most :data:`LIMIT` of
them (the oldest goes first).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .verify_cache import VerifiedCache

__all__ = ["LIMIT", "HttpMemo"]

#: remembered headers at most
LIMIT = 4096


@dataclass(frozen=True, slots=True)
class _Entry:
    baseline: tuple[int, int]
    until: float
    result: Any


class HttpMemo:
    """Accepted JMAP ``Authorization`` headers while no credential changed (see the module docstring).

    ``signal``: reads the store's shared credential counter (None: no counter, remember nothing); ``cache``: the
    verified cache whose lifetime (0: remember nothing) and clearing the memo follows; ``clock``: seconds."""

    def __init__(self, signal: Callable[[], int | None], cache: VerifiedCache, clock: Callable[[], float]) -> None:
        self._signal = signal
        self._cache = cache
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()

    def _mac(self, header: str) -> bytes:
        return hmac.new(self._key, header.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def baseline(self) -> tuple[int, int] | None:
        """What to remember a header under (the counter, the cache's generation): read it before verifying
        the header. None: nothing can be remembered."""
        if self._cache.ttl <= 0:
            return None
        signal = self._signal()
        return None if signal is None else (signal, self._cache.generation)

    def get(self, header: str) -> Any:
        """The remembered result of ``header``, or None when it must be authenticated."""
        now = self.baseline()
        if now is None:
            return None
        entry = self._entries.get(self._mac(header))
        if entry is None or entry.baseline != now or entry.until <= self._clock():
            return None
        return entry.result

    def put(self, header: str, baseline: tuple[int, int] | None, result: Any) -> None:
        """Remember ``result`` for ``header``, verified after :meth:`baseline` gave ``baseline``."""
        if baseline is None:
            return
        entry = _Entry(baseline, self._clock() + self._cache.ttl, result)
        with self._lock:
            if len(self._entries) >= LIMIT:
                self._entries.pop(next(iter(self._entries)))
            self._entries[self._mac(header)] = entry
