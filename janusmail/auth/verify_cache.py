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

**Hints.** A throttled (client, account) pair is heard only for a remembered credential (an attacker sharing
the owner's NAT must not keep the owner out), but looking that up needs the account row (the binding). So every
entry also leaves a *hint*: an HMAC of (address, secret) alone, which :meth:`VerifiedCache.hinted` answers with
no database read. A throttled attempt without a hint is refused on the spot; one with a hint goes on to the real,
binding-checked lookup. A hint is only ever a reason to look, never an answer.
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
        #: moves at each :meth:`clear`: what others remember on the strength of this cache (the JMAP header memo,
        #: janusmail.auth.http_memo) is forgotten with it
        self.generation = 0
        self._max = max_entries
        self._clock = clock
        self._key = key if key is not None else secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, Verified] = OrderedDict()
        self._hints: OrderedDict[bytes, float] = OrderedDict()  # hint key -> until

    def key(self, account_id: str, binding: str, secret: str) -> bytes:
        """The lookup key for ``secret`` presented for ``account_id`` whose credential state is ``binding``."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (account_id, binding, secret):  # length-prefixed: no two splits of one text collide
            data = part.encode("utf-8", "surrogatepass")
            mac.update(len(data).to_bytes(4, "big") + data)
        return mac.digest()

    def hint_key(self, address: str, secret: str) -> bytes:
        """The hint for ``secret`` presented for the (normalised) ``address``: no account id, no binding."""
        return self.key("\0hint", address, secret)

    def hinted(self, address: str, secret: str) -> bool:
        """Might ``secret`` for ``address`` be remembered? (No database read; ``True`` is only worth a look.)"""
        if self.ttl <= 0:
            return False
        hint = self.hint_key(address, secret)
        with self._lock:
            until = self._hints.get(hint)
            if until is not None and until <= self._clock():
                del self._hints[hint]
                until = None
            return until is not None

    def get(self, key: bytes) -> Verified | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.until <= self._clock():
                del self._entries[key]
                entry = None
            return entry

    def put(
        self, key: bytes, kind: str, account_id: str, ref: str | None = None, *, hint: bytes | None = None
    ) -> None:
        """Remember a verification; ``hint`` (:meth:`hint_key`) lets a throttled pair find it (see above)."""
        if self.ttl <= 0:
            return
        entry = Verified(kind, account_id, ref, self._clock() + self.ttl)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
            if hint is not None:
                self._hints[hint] = entry.until
                self._hints.move_to_end(hint)
                while len(self._hints) > self._max:
                    self._hints.popitem(last=False)

    def discard(self, key: bytes) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._hints.clear()
            self.generation += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class _Flight:
    __slots__ = ("done", "verified")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.verified: Verified | None = None


class InFlight:
    """Concurrent verifications of one credential share one hash: the first *leads* (verifies), the others
    *follow* (wait for its outcome) instead of each taking a hashing slot.

    Why: a mail client opens several connections at once and logs in on each; on a cold cache they would all
    hash the same password, and the gate would rank all but one as a second attempt from the address. Only a
    success is shared (a follower whose leader failed verifies on its own, so a failure for one protocol never
    answers another). Followers block a thread each, so there are at most ``max_followers`` at a time; the
    rest simply verify on their own.
    """

    def __init__(self, max_followers: int = 16) -> None:
        self.max_followers = max_followers
        self._lock = threading.Lock()
        self._flights: dict[bytes, _Flight] = {}
        self._followers = 0

    def join(self, key: bytes) -> tuple[str, _Flight | None]:
        """``("lead", flight)``: verify, then :meth:`finish`; ``("follow", flight)``: :meth:`wait`;
        ``("alone", None)``: verify without sharing (too many followers already)."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = _Flight()
                return "lead", flight
            if self._followers >= self.max_followers:
                return "alone", None
            self._followers += 1
            return "follow", flight

    def wait(self, flight: _Flight, timeout: float) -> Verified | None:
        """The leader's success, or ``None`` (it failed, or took longer than ``timeout``)."""
        try:
            flight.done.wait(timeout)
            return flight.verified
        finally:
            with self._lock:
                self._followers -= 1

    def finish(self, key: bytes, flight: _Flight, verified: Verified | None) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.verified = verified
        flight.done.set()
