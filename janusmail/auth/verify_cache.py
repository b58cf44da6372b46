"""A short memory of credentials that verified, so a client that logs in every minute does not pay argon2 each
time (and JMAP, which sends Basic on every request, pays it once per ``ttl``).

Why it is safe to keep:

* **No secret is stored.** The key is HMAC-SHA256 under a random per-process key of (account id, binding,
  secret); the value says only which kind of credential it was. A memory dump yields neither passwords nor
  anything to guess them offline against without the process key.
* **A changed credential never matches.** The *binding* is something that changes with the credential: the
  caller passes the account's stored password hash, which every password change replaces (argon2 salts are
  random), so after ``janusmail user passwd`` the old password's entry is simply unreachable. App password
  entries are re-checked against their row (revocation) by the caller on every hit.
* **Short and bounded.** Entries live ``ttl`` seconds from verification (a hit does not extend them), at most
  ``max_entries`` (LRU). ``ttl = 0`` disables the cache.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verified:
    """One remembered verification: ``kind`` is ``password`` or ``app_password``; ``ref`` the app password id."""

    kind: str
    account_id: str
    ref: str | None
    until: float


class VerifiedCache:
    """Thread-safe TTL cache of successful verifications keyed by an HMAC of the credential (never the secret)."""

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
        key: bytes | None = None,
    ) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._key = key if key is not None else secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, Verified] = OrderedDict()

    def key(self, account_id: str, binding: str, secret: str) -> bytes:
        """The lookup key for ``secret`` presented for ``account_id`` whose credential state is ``binding``."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (account_id, binding, secret):  # length-prefixed: no two splits of one text collide
            data = part.encode("utf-8", "surrogatepass")
            mac.update(len(data).to_bytes(4, "big") + data)
        return mac.digest()

    def get(self, key: bytes) -> Verified | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.until <= self._clock():
                del self._entries[key]
                entry = None
            return entry

    def put(self, key: bytes, kind: str, account_id: str, ref: str | None = None) -> None:
        if self.ttl <= 0:
            return
        entry = Verified(kind, account_id, ref, self._clock() + self.ttl)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def discard(self, key: bytes) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
