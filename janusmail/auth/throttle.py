"""Failed-login throttling and bounded, prioritised password hashing: one implementation for every door.

Why this shape (argon2 costs ~0.1-0.2 s of CPU per verification with the default parameters, and a login
server's CPU is what an attacker floods):

* **Refuse before hashing.** :meth:`LoginThrottle.check` runs before any database or argon2 work. A client
  address that failed for an account is told to wait (refused without a look) until the penalty for that
  (address, account) pair has passed; the penalty doubles with each failure, up to ``maximum``. A client that
  waits for its (tarpitted) failure answer before retrying is never refused; parallel guessing is.
* **Never keyed by account alone.** An attacker anywhere could then lock the owner out. Refusals are keyed by
  (client address, account); a correct credential from any other address is always heard.
* **Per client address, failures only.** Failures across many accounts (password spraying) lengthen the tarpit
  on *failure* answers and lower the address's priority for hashing, but never refuse or delay a correct
  credential: a NAT or office shared with a guesser keeps working (under load, it queues behind cleaner
  addresses at most). Success clears its own (address, account) count, never the address's.
* **Bounded, prioritised hashing** (:class:`HashGate`): a fixed number of workers and a bounded queue ordered by
  priority: ``TRUSTED`` (this address last logged in to this account successfully), ``CLEAN`` (no recent failures
  from this address, and nothing else of its in the gate), ``SUSPECT`` (the rest), and within a class by how
  many attempts the address made lately (a flood retries, an owner tries once). Each class has a worker slot
  the classes below it cannot take, so a trusted login never waits for a lower class's hash to finish (a clean
  one never for a suspect's), and it goes ahead of every lower-ranked waiter. Identical concurrent attempts
  share one hash (verify_cache.InFlight). One account holds only a few queue places. When the queue is full a
  better-ranked arrival evicts the worst-ranked waiter; otherwise the arrival is refused at once ("busy")
  instead of queueing forever.

IPv6 clients are counted per /64 (one host usually holds a whole /64); IPv4-mapped addresses as IPv4.

The throttle is sans-IO: adapters sleep through :meth:`LoginThrottle.pause` (injectable, so tests can observe
or hold the tarpit). The gate is thread-based because verification runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from janusmail.store.accounts import normalize_address

#: Hashing priorities, best first.
TRUSTED, CLEAN, SUSPECT = 0, 1, 2
PRIORITY_NAMES = ("trusted", "clean", "suspect")

_MAX_KEY = 320  # longer "addresses" are cut: they are garbage anyway, and keys must stay small


def client_key(ip: str | None) -> str:
    """The bucket a client address is counted in: IPv4 as is, IPv6 by /64, unparsable text as given."""
    if not ip:
        return "?"
    host = ip.strip().strip("[]").split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return ip[:_MAX_KEY]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def _account_key(address: str | None) -> str:
    return normalize_address(address or "")[:_MAX_KEY]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the throttle says about an attempt before it is checked: refuse it (``retry_after`` > 0) or hash it
    with ``priority``."""

    priority: int = CLEAN
    retry_after: float = 0.0

    @property
    def refused(self) -> bool:
        return self.retry_after > 0


@dataclass(frozen=True, slots=True)
class PairFailures:
    """Recent failures of one client for one account; ``retry_after`` > 0 while the pair is refused unchecked."""

    client: str
    account: str
    failures: int
    last_ago: float
    retry_after: float


@dataclass(frozen=True, slots=True)
class ClientFailures:
    """Recent failures of one client across accounts; ``tarpit``: the delay its failure answers get now."""

    client: str
    failures: int
    last_ago: float
    tarpit: float


@dataclass(frozen=True, slots=True)
class ThrottleView:
    """What :meth:`LoginThrottle.snapshot` shows (the admin's "auth failures and throttles" page)."""

    pairs: list[PairFailures]
    clients: list[ClientFailures]
    tracked_pairs: int
    tracked_clients: int
    trusted_pairs: int
    window: float


class LoginRefused(Exception):
    """The attempt was not checked at all, so it says nothing about the credential and counts as no failure.

    ``kind`` is ``throttled`` (this client address failed for this account too recently: IMAP
    ``NO [AUTHENTICATIONFAILED]``, HTTP 429) or ``busy`` (the hashing queue is full: IMAP ``NO [UNAVAILABLE]``,
    HTTP 503). ``retry_after`` is in seconds.
    """

    def __init__(self, kind: str, retry_after: float) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = max(retry_after, 0.0)

    @property
    def code(self) -> str:
        """The IMAP response code (RFC 5530)."""
        return "AUTHENTICATIONFAILED" if self.kind == "throttled" else "UNAVAILABLE"

    @property
    def reason(self) -> str:
        if self.kind == "throttled":
            return "Too many failed logins; wait before trying again"
        return "Server busy; try again shortly"


class LoginThrottle:
    """Sans-IO failure accounting: :meth:`check` before an attempt, :meth:`failed` / :meth:`succeeded` after.

    Per (client, account): the n-th consecutive failure costs ``base * 2**(n-1)`` seconds (capped at
    ``maximum``): the failure answer is delayed that long, and attempts for the pair are refused unchecked until
    it has passed. Per client alone, failures beyond :attr:`IP_FREE_FAILURES` add the same delay to *failure*
    answers only, and any failure makes the client ``SUSPECT`` for hashing priority. Counts are forgotten
    ``window`` seconds after the last failure. ``base = 0`` turns delays and refusals off (priorities remain).
    Memory is bounded (LRU, ``max_entries`` per table). Thread-safe.

    One client holds at most :attr:`PAIRS_PER_CLIENT` pair entries; its failures for further accounts count
    under the client alone. Why: account names are free to invent (unknown ones too, and SCRAM failures cost the
    server no argon2), so without a cap one client could flood the pair table and have the LRU evict every
    other client's penalty. Beyond the cap its failures are still tarpitted by its per-client count.
    """

    IP_FREE_FAILURES = 10
    PAIRS_PER_CLIENT = 64

    def __init__(
        self,
        base: float = 1.0,
        maximum: float = 15.0,
        window: float = 900.0,
        *,
        max_entries: int = 100_000,
        trust_seconds: float = 30 * 86400.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        self.base, self.maximum, self.window = base, maximum, window
        self.trust_seconds = trust_seconds
        self._max = max_entries
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._pairs: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._client_pairs: dict[str, set[str]] = {}  # client -> accounts it holds pair entries for
        self._ips: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _penalty(self, n: int) -> float:
        if n <= 0 or self.base <= 0:
            return 0.0
        return min(self.maximum, self.base * 2 ** min(n - 1, 30))

    def _entry(self, table: OrderedDict, key: object, now: float) -> tuple[int, float]:
        entry = table.get(key)
        if entry is None:
            return 0, 0.0
        if now - entry[1] > self.window:
            self._drop(table, key)
            return 0, 0.0
        return entry

    def _drop(self, table: OrderedDict, key: object) -> None:
        if table.pop(key, None) is not None and table is self._pairs:
            self._unindex(key)  # type: ignore[arg-type]

    def _unindex(self, key: tuple[str, str]) -> None:
        held = self._client_pairs.get(key[0])
        if held is not None:
            held.discard(key[1])
            if not held:
                del self._client_pairs[key[0]]

    def _bound(self, table: OrderedDict) -> None:
        while len(table) > self._max:
            key, _ = table.popitem(last=False)
            if table is self._pairs:
                self._unindex(key)

    def _room_for_pair(self, ipk: str, now: float) -> bool:
        """May ``ipk`` get one more pair entry? Its expired entries are forgotten first (at most the cap)."""
        held = self._client_pairs.get(ipk)
        if held is None or len(held) < self.PAIRS_PER_CLIENT:
            return True
        for account in list(held):
            self._entry(self._pairs, (ipk, account), now)
        return len(self._client_pairs.get(ipk, ())) < self.PAIRS_PER_CLIENT

    def check(self, ip: str | None, address: str | None) -> Verdict:
        """The verdict for an attempt from ``ip`` for ``address``, before anything is verified (no recording)."""
        now = self._clock()
        ipk = client_key(ip)
        key = (ipk, _account_key(address))
        with self._lock:
            pair_n, pair_last = self._entry(self._pairs, key, now)
            ip_n, _ = self._entry(self._ips, ipk, now)
            trusted_at = self._trusted.get(key)
            if trusted_at is not None and now - trusted_at > self.trust_seconds:
                del self._trusted[key]
                trusted_at = None
        wait = pair_last + self._penalty(pair_n) - now if pair_n else 0.0
        if wait > 0:
            return Verdict(SUSPECT, wait)
        if trusted_at is not None:
            return Verdict(TRUSTED)
        return Verdict(CLEAN if ip_n == 0 else SUSPECT)

    def delay(self, ip: str | None, address: str | None) -> float:
        """The tarpit the last failure earned (pair or spray), for information; nothing waits on it."""
        now = self._clock()
        ipk = client_key(ip)
        with self._lock:
            pair, _ = self._entry(self._pairs, (ipk, _account_key(address)), now)
            ipn, _ = self._entry(self._ips, ipk, now)
        return max(self._penalty(pair), self._penalty(ipn - self.IP_FREE_FAILURES))

    def failed(self, ip: str | None, address: str | None) -> float:
        """Record a checked, failed attempt; returns the seconds to wait before sending the failure answer."""
        now = self._clock()
        ipk = client_key(ip)
        key = (ipk, _account_key(address))
        with self._lock:
            pair = self._entry(self._pairs, key, now)[0]
            ipn = self._entry(self._ips, ipk, now)[0] + 1
            if pair or self._room_for_pair(ipk, now):
                pair += 1
                self._pairs[key] = (pair, now)
                self._pairs.move_to_end(key)
                self._client_pairs.setdefault(ipk, set()).add(key[1])
            self._ips[ipk] = (ipn, now)
            self._ips.move_to_end(ipk)
            self._trusted.pop(key, None)
            self._bound(self._pairs)
            self._bound(self._ips)
        return max(self._penalty(pair), self._penalty(ipn - self.IP_FREE_FAILURES))

    def succeeded(self, ip: str | None, address: str | None) -> None:
        """Forget the (client, account) failures and trust the pair; the client's own count stays (a spray
        that hits one account goes on being a spray)."""
        now = self._clock()
        key = (client_key(ip), _account_key(address))
        with self._lock:
            self._drop(self._pairs, key)
            self._trusted[key] = now
            self._trusted.move_to_end(key)
            self._bound(self._trusted)

    def failures(self, ip: str | None, address: str | None = None) -> int:
        """Recent failures counted for the client (``address`` None) or for the (client, account) pair."""
        now = self._clock()
        ipk = client_key(ip)
        with self._lock:
            if address is None:
                return self._entry(self._ips, ipk, now)[0]
            return self._entry(self._pairs, (ipk, _account_key(address)), now)[0]

    def snapshot(self, limit: int = 200) -> ThrottleView:
        """A read view for the web admin: the most recent failing (client, account) pairs and clients still
        remembered, newest first, at most ``limit`` of each; ages and waits in seconds from now."""
        now = self._clock()
        with self._lock:
            pairs = [(k, v) for k, v in reversed(self._pairs.items()) if now - v[1] <= self.window][:limit]
            ips = [(k, v) for k, v in reversed(self._ips.items()) if now - v[1] <= self.window][:limit]
            n_pairs, n_ips, n_trusted = len(self._pairs), len(self._ips), len(self._trusted)
        return ThrottleView(
            pairs=[PairFailures(client, account, n, now - last, max(0.0, last + self._penalty(n) - now))
                   for (client, account), (n, last) in pairs],
            clients=[ClientFailures(client, n, now - last, self._penalty(n - self.IP_FREE_FAILURES))
                     for client, (n, last) in ips],
            tracked_pairs=n_pairs, tracked_clients=n_ips, trusted_pairs=n_trusted, window=self.window,
        )

    async def pause(self, seconds: float) -> None:
        """Wait out a tarpit delay (adapters call this, so tests can replace the sleeping)."""
        if seconds <= 0:
            return
        await (self._sleep or asyncio.sleep)(seconds)


# --- bounded, prioritised hashing ------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Ticket:
    priority: int
    load: float
    seq: int
    client: str
    account: str
    state: str = "waiting"  # -> "granted" | "evicted"

    @property
    def rank(self) -> tuple[int, float]:
        return (self.priority, self.load)

    @property
    def order(self) -> tuple[int, float, int]:
        return (self.priority, self.load, self.seq)


class HashGate:
    """At most ``workers`` password verifications at once, at most ``queue`` more waiting, best-ranked first.

    Capacity is tiered so no class waits for a worse class's hashes to finish: ``SUSPECT`` attempts may hold at
    most ``workers - 2`` slots and ``CLEAN`` ones ``workers - 1`` (never fewer than one), so one slot is always
    kept for ``TRUSTED`` logins and one more for ``CLEAN`` ones.

    Within a class, attempts rank by their client's recent *load*: how many attempts it brought to the gate
    lately (decaying, half-life ``load_half_life`` seconds), then first come. A flood retries; the owner, who
    tries once, ranks ahead of every retrying guesser even when both come from addresses without failures
    (which the throttle cannot tell apart). A ``CLEAN`` attempt ranks as ``SUSPECT`` when its client already
    has one in the gate or a load of ``suspect_load`` or more: one address cannot fill the clean lane, and
    guessers whose attempts keep being refused as busy (so never fail) do not stay clean.

    One account holds at most ``per_account`` non-trusted places in the queue: an attempt for it that ranks at
    least as well as the account's worst waiter displaces that one (the oldest among equals), so an attack on
    one account cannot fill the queue for everyone else, and a fresh attempt is not stuck behind stale guesses.

    :meth:`admit` is a context manager around the expensive call; it raises :class:`LoginRefused` ("busy") when
    the queue is full of better-or-equal-ranked waiters, when a better-ranked arrival evicts this waiter, or
    after ``max_wait`` seconds. Waiting blocks the calling thread, so callers run it on threads of their own
    (:meth:`Authenticator.run`), never on the event loop's shared executor.
    """

    def __init__(
        self,
        workers: int = 3,
        queue: int = 32,
        *,
        per_account: int = 2,
        max_wait: float = 30.0,
        load_half_life: float = 30.0,
        suspect_load: float = 2.0,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workers = max(1, int(workers))
        self.queue = max(0, int(queue))
        self.per_account = max(1, int(per_account))
        self.max_wait = max_wait
        self.load_half_life = load_half_life
        self.suspect_load = suspect_load
        self._max_clients = max_clients
        self._clock = clock
        self._cond = threading.Condition()
        self._running = 0
        self._waiting: list[_Ticket] = []
        self._clients: Counter[str] = Counter()  # entries (running or waiting) per client
        self._loads: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (load, when)
        self._seq = itertools.count()
        #: Counters for tests and metrics: verifications admitted, attempts refused as busy.
        self.admitted = 0
        self.refused = 0

    def limit(self, priority: int) -> int:
        """How many slots may be busy for an attempt of ``priority`` to start."""
        return max(1, self.workers - priority)

    @property
    def running(self) -> int:
        with self._cond:
            return self._running

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def _arrive(self, client: str) -> float:
        """The client's load before this attempt, and count this one."""
        now = self._clock()
        load, when = self._loads.pop(client, (0.0, now))
        if self.load_half_life > 0:
            load *= 0.5 ** ((now - when) / self.load_half_life)
        self._loads[client] = (load + 1.0, now)
        while len(self._loads) > self._max_clients:
            self._loads.popitem(last=False)
        return load if load >= 0.01 else 0.0

    def _leave(self, client: str) -> None:
        self._clients[client] -= 1
        if self._clients[client] <= 0:
            del self._clients[client]

    def _busy(self) -> LoginRefused:
        self.refused += 1
        return LoginRefused("busy", 1.0)

    def _evict(self, victim: _Ticket) -> None:
        self._waiting.remove(victim)
        self._leave(victim.client)
        victim.state = "evicted"
        self._cond.notify_all()

    def _dispatch(self) -> None:
        """Start waiters, best first, while the best one's tier has room."""
        granted = False
        while self._waiting:
            best = min(self._waiting, key=lambda t: t.order)
            if self._running >= self.limit(best.priority):
                break
            self._waiting.remove(best)
            best.state = "granted"
            self._running += 1
            self.admitted += 1
            granted = True
        if granted:
            self._cond.notify_all()

    def _acquire(self, priority: int, client: str, account: str) -> None:
        with self._cond:
            load = self._arrive(client)
            if priority == CLEAN and (self._clients.get(client) or load >= self.suspect_load):
                priority = SUSPECT
            ticket = _Ticket(priority, load, next(self._seq), client, account)
            ahead = any(t.order <= ticket.order for t in self._waiting)
            if not ahead and self._running < self.limit(priority):
                self._running += 1
                self._clients[client] += 1
                self.admitted += 1
                return
            if priority != TRUSTED and self.queue:
                mine = [t for t in self._waiting if t.account == account and t.priority != TRUSTED]
                if len(mine) >= self.per_account:
                    victim = max(mine, key=lambda t: (t.rank, -t.seq))  # worst-ranked, oldest of those
                    if victim.rank < ticket.rank:
                        raise self._busy()
                    self._evict(victim)
            if len(self._waiting) >= self.queue:
                if not self._waiting:
                    raise self._busy()
                worst = max(self._waiting, key=lambda t: t.order)
                if worst.rank <= ticket.rank:
                    raise self._busy()
                self._evict(worst)
            self._waiting.append(ticket)
            self._clients[client] += 1
            deadline = time.monotonic() + self.max_wait
            while ticket.state == "waiting":
                left = deadline - time.monotonic()
                if left <= 0:
                    self._waiting.remove(ticket)
                    self._leave(client)
                    raise self._busy()
                self._cond.wait(left)
            if ticket.state == "evicted":
                raise self._busy()

    def _release(self, client: str) -> None:
        with self._cond:
            self._leave(client)
            self._running -= 1
            self._dispatch()

    @contextlib.contextmanager
    def admit(self, priority: int, client: str = "?", account: str = "") -> Iterator[None]:
        """Hold one hashing slot for the ``with`` body (raises LoginRefused "busy" instead of waiting forever).
        ``client`` is the :func:`client_key`, ``account`` the normalised address tried."""
        self._acquire(priority, client, account)
        try:
            yield
        finally:
            self._release(client)
