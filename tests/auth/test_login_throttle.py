"""Issue 8 items 3-4, unit level: the shared failed-login throttle, the bounded prioritised hashing gate, the
cache of recent verifications, the trusted-proxy rule, and how the authenticator puts them together.

The properties: a throttled attempt is refused before any database or argon2 work; nothing is keyed by account
alone (a correct credential from another address always gets in); failures per client never refuse a correct
credential; the hashing queue is bounded and a trusted or clean login never waits for a guess's hash; the cache
keys on an HMAC that binds the stored credential, so a changed password never matches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from janusmail.auth import passwords
from janusmail.auth.authenticator import Authenticator
from janusmail.auth.policy import AuthPolicy
from janusmail.auth.proxies import TrustedProxies, forwarded_hops, parse_address
from janusmail.auth.sasl import Failure, SaslServer, Success
from janusmail.auth.throttle import (
    CLEAN,
    SUSPECT,
    TRUSTED,
    HashGate,
    LoginRefused,
    LoginThrottle,
    client_key,
)
from janusmail.auth.verify_cache import InFlight, Verified, VerifiedCache
from janusmail.config import Config
from janusmail.store.schema import accounts
from janusmail.store.store import Store

from .conftest import Clock, MakeAccount, sqlite_only

PW = "correct horse"
DEADLINE = 30.0


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition another thread brings about (generous deadline; no fixed sleeps)."""
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


# --- LoginThrottle ------------------------------------------------------------------------------------------


def test_pair_refused_only_inside_its_penalty(clock: Clock) -> None:
    t = LoginThrottle(base=1, maximum=8, clock=clock)
    assert t.check("1.2.3.4", "a@x") == t.check("1.2.3.4", "a@x")
    assert not t.check("1.2.3.4", "a@x").refused
    assert t.failed("1.2.3.4", "a@x") == 1
    v = t.check("1.2.3.4", "A@X ")  # the same account, normalised
    assert v.refused and v.retry_after == 1
    clock.advance(0.5)
    assert t.check("1.2.3.4", "a@x").retry_after == 0.5
    clock.advance(0.5)  # a client that waited for its tarpitted answer is heard again
    assert not t.check("1.2.3.4", "a@x").refused
    assert t.failed("1.2.3.4", "a@x") == 2
    assert t.check("1.2.3.4", "a@x").retry_after == 2  # doubling


def test_never_keyed_by_account_alone(clock: Clock) -> None:
    """1,000 failures against one account from 100 addresses: any other address is still heard, and is CLEAN."""
    t = LoginThrottle(base=1, maximum=900, clock=clock)
    for i in range(1000):
        t.failed(f"10.0.{i % 100}.1", "owner@x")
    assert t.check("10.0.5.1", "owner@x").refused
    owner = t.check("192.0.2.7", "owner@x")
    assert not owner.refused and owner.priority == CLEAN


def test_client_failures_never_refuse_and_only_lower_priority(clock: Clock) -> None:
    t = LoginThrottle(base=0.5, maximum=10, clock=clock)
    delays = [t.failed("9.9.9.9", f"user{i}@x") for i in range(LoginThrottle.IP_FREE_FAILURES + 3)]
    assert delays[-3:] == [0.5, 1.0, 2.0]  # spraying makes failure answers slow ...
    v = t.check("9.9.9.9", "colleague@x")
    assert not v.refused and v.priority == SUSPECT  # ... but a colleague behind the same NAT is still heard


def test_success_clears_its_pair_trusts_it_and_keeps_the_client_count(clock: Clock) -> None:
    t = LoginThrottle(base=1, clock=clock)
    t.failed("1.2.3.4", "a@x")
    t.failed("1.2.3.4", "b@x")
    clock.advance(2)
    t.succeeded("1.2.3.4", "a@x")
    assert t.failures("1.2.3.4", "a@x") == 0
    assert t.failures("1.2.3.4", "b@x") == 1
    assert t.failures("1.2.3.4") == 2
    assert t.check("1.2.3.4", "a@x").priority == TRUSTED
    assert t.check("1.2.3.4", "b@x").priority == SUSPECT
    t.failed("1.2.3.4", "a@x")  # a failure ends the trust
    clock.advance(2)
    assert t.check("1.2.3.4", "a@x").priority == SUSPECT


def test_trust_and_counts_expire(clock: Clock) -> None:
    t = LoginThrottle(base=1, window=600, trust_seconds=3600, clock=clock)
    t.succeeded("1.2.3.4", "a@x")
    t.failed("5.6.7.8", "a@x")
    clock.advance(601)
    assert t.failures("5.6.7.8") == 0 and t.check("5.6.7.8", "a@x").priority == CLEAN
    clock.advance(3000)
    assert t.check("1.2.3.4", "a@x").priority == CLEAN


def test_zero_base_turns_refusals_and_delays_off(clock: Clock) -> None:
    t = LoginThrottle(base=0, maximum=0, clock=clock)
    for _ in range(50):
        assert t.failed("1.2.3.4", "a@x") == 0
    assert not t.check("1.2.3.4", "a@x").refused


def test_ipv6_counts_per_64_and_mapped_ipv4_as_ipv4(clock: Clock) -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("[2001:db8:1:2:bbbb::9]") == "2001:db8:1:2::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key(None) == "?"
    t = LoginThrottle(base=1, clock=clock)
    t.failed("2001:db8:1:2::1", "a@x")
    assert t.check("2001:db8:1:2::ffff", "a@x").refused
    assert not t.check("2001:db8:1:3::1", "a@x").refused


def test_memory_is_bounded_and_keys_are_short(clock: Clock) -> None:
    t = LoginThrottle(max_entries=10, clock=clock)
    for i in range(100):
        t.failed(f"10.0.0.{i}", "x" * 100_000)
        t.succeeded(f"10.1.0.{i}", "a@x")
    assert len(t._pairs) == 10 and len(t._ips) == 10 and len(t._trusted) == 10
    assert all(len(addr) <= 320 for _, addr in t._pairs)


def test_one_client_cannot_evict_other_pairs_penalties(clock: Clock) -> None:
    """Flooding distinct account names from one address (SCRAM failures cost the server nothing) creates at most
    PAIRS_PER_CLIENT pair entries; the rest count under the address only, so the LRU never drops another
    client's penalty, and the flooder's extra accounts are tarpitted by its address count, not refused."""
    t = LoginThrottle(base=60, maximum=60, max_entries=200, clock=clock)
    t.failed("10.0.0.1", "ann@example.test")
    for i in range(1000):
        t.failed("10.9.9.9", f"user{i}@example.test")
    assert t.check("10.0.0.1", "ann@example.test").refused  # the victim pair's penalty survived
    cap = LoginThrottle.PAIRS_PER_CLIENT
    assert sum(1 for ip, _ in t._pairs if ip == "10.9.9.9") == cap
    assert t.failures("10.9.9.9") == 1000
    assert t.failures("10.9.9.9", f"user{cap - 1}@example.test") == 1
    assert t.failures("10.9.9.9", f"user{cap}@example.test") == 0  # beyond the cap: the address only
    assert t.delay("10.9.9.9", f"user{cap}@example.test") == 60  # ... whose spray penalty still tarpits
    assert t.failed("10.9.9.9", "user0@example.test") == 60  # an existing pair keeps counting
    assert t.failures("10.9.9.9", "user0@example.test") == 2
    t.succeeded("10.9.9.9", "user1@example.test")  # a success frees its pair's place
    t.failed("10.9.9.9", "fresh@example.test")
    assert t.failures("10.9.9.9", "fresh@example.test") == 1
    clock.advance(t.window + 1)  # expired pairs make room again
    t.failed("10.9.9.9", "later@example.test")
    assert t.failures("10.9.9.9", "later@example.test") == 1


async def test_pause_uses_the_injected_sleep() -> None:
    slept: list[float] = []

    async def fake(seconds: float) -> None:
        slept.append(seconds)

    t = LoginThrottle(sleep=fake)
    await t.pause(0)
    await t.pause(2.5)
    assert slept == [2.5]


# --- HashGate -----------------------------------------------------------------------------------------------


class Holder:
    """A thread that takes a gate slot and keeps it until released, recording what happened."""

    def __init__(self, gate: HashGate, priority: int, client: str, log: list[str], name: str,
                 account: str | None = None) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.outcome: str | None = None
        args = (gate, priority, client, account or f"{name}@x", log, name)  # an account each, unless told
        self.thread = threading.Thread(target=self._run, args=args, daemon=True)
        self.thread.start()

    def _run(self, gate: HashGate, priority: int, client: str, account: str, log: list[str], name: str) -> None:
        try:
            with gate.admit(priority, client, account):
                log.append(name)
                self.started.set()
                self.release.wait(4 * DEADLINE)
            self.outcome = "done"
        except LoginRefused as exc:
            self.outcome = exc.kind

    def finish(self) -> None:
        self.release.set()
        self.thread.join(DEADLINE)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for h in made:  # release every holder first: a queued one may be waiting for a later one's slot
        h.release.set()
    for h in made:
        h.thread.join(DEADLINE)


def test_gate_tiers_keep_a_slot_for_clean_and_one_for_trusted(holders: list[Holder]) -> None:
    gate = HashGate(workers=3, queue=8)
    log: list[str] = []
    spam = [Holder(gate, SUSPECT, f"10.0.0.{i}", log, f"s{i}") for i in range(3)]
    holders.extend(spam)
    wait_for(lambda: gate.running == 1 and gate.waiting == 2, "one suspect running, two queued")
    clean = Holder(gate, CLEAN, "192.0.2.1", log, "clean")
    holders.append(clean)
    assert clean.started.wait(DEADLINE)  # started beside the suspect's hash, did not queue behind it
    clean2 = Holder(gate, CLEAN, "192.0.2.2", log, "clean2")
    holders.append(clean2)
    wait_for(lambda: gate.waiting == 3, "the second clean login queued")
    trusted = Holder(gate, TRUSTED, "192.0.2.3", log, "trusted")
    holders.append(trusted)
    assert trusted.started.wait(DEADLINE)
    assert log == ["s0", "clean", "trusted"]
    spam[0].finish()  # running: clean + trusted, the clean tier (2 of 3) is full: nobody starts
    trusted.finish()  # now the best waiter goes: the clean one, ahead of the earlier suspects
    assert clean2.started.wait(DEADLINE)
    assert log == ["s0", "clean", "trusted", "clean2"]
    assert gate.waiting == 2  # the suspects still wait: with 3 workers they start only while none else runs


def test_gate_queue_is_bounded_and_better_arrivals_evict_the_worst(holders: list[Holder]) -> None:
    gate = HashGate(workers=1, queue=2)
    log: list[str] = []
    first = Holder(gate, SUSPECT, "10.0.0.1", log, "first")
    holders.append(first)
    assert first.started.wait(DEADLINE)
    q1 = Holder(gate, SUSPECT, "10.0.0.2", log, "q1")
    q2 = Holder(gate, SUSPECT, "10.0.0.3", log, "q2")
    holders.extend([q1, q2])
    wait_for(lambda: gate.waiting == 2, "two suspects queued")
    extra = Holder(gate, SUSPECT, "10.0.0.4", log, "extra")  # full of equals: refused at once
    holders.append(extra)
    extra.thread.join(DEADLINE)
    assert extra.outcome == "busy"
    better = Holder(gate, CLEAN, "192.0.2.1", log, "better")  # full, but it outranks the newest suspect
    holders.append(better)
    q2.thread.join(DEADLINE)
    assert q2.outcome == "busy" and gate.waiting == 2
    first.finish()
    assert better.started.wait(DEADLINE)
    assert gate.refused == 2


def test_gate_caps_one_accounts_queue_places_newest_wins(holders: list[Holder]) -> None:
    """Guesses from fresh addresses look like the owner's first login: one account gets at most per_account
    queue places, a newer attempt displaces its oldest, and other accounts keep the rest of the queue."""
    gate = HashGate(workers=1, queue=8, per_account=2)
    log: list[str] = []
    hog = Holder(gate, TRUSTED, "192.0.2.9", log, "hog", "x@x")
    holders.append(hog)
    assert hog.started.wait(DEADLINE)
    g = [Holder(gate, CLEAN, f"10.0.0.{i}", log, f"g{i}", "owner@x") for i in range(2)]
    holders.extend(g)
    wait_for(lambda: gate.waiting == 2, "two guesses queued")
    owner = Holder(gate, CLEAN, "192.0.2.1", log, "owner", "owner@x")  # displaces the oldest guess
    holders.append(owner)
    g[0].thread.join(DEADLINE)
    assert g[0].outcome == "busy" and gate.waiting == 2
    worse = Holder(gate, SUSPECT, "10.0.1.1", log, "worse", "owner@x")  # outranked by every waiter: refused
    holders.append(worse)
    worse.thread.join(DEADLINE)
    assert worse.outcome == "busy"
    other = Holder(gate, SUSPECT, "10.0.1.2", log, "other", "colleague@x")  # other accounts still queue
    holders.append(other)
    wait_for(lambda: gate.waiting == 3, "the other account's attempt queued")
    for h in holders:
        h.release.set()
    for h in (hog, g[1], owner, other):
        h.thread.join(DEADLINE)
    assert log == ["hog", "g1", "owner", "other"]


def test_gate_ranks_retrying_clients_behind_fresh_ones(clock: Clock, holders: list[Holder]) -> None:
    """Attempts from addresses without failures look alike; a flood retries, an owner tries once. Within a
    class the client with fewer recent attempts goes first, and a client that keeps coming is SUSPECT."""
    gate = HashGate(workers=1, queue=8, clock=clock)
    for client, times in (("10.0.0.1", 2), ("10.0.0.3", 1)):
        for _ in range(times):
            with gate.admit(CLEAN, client):
                pass
    log: list[str] = []
    hog = Holder(gate, TRUSTED, "192.0.2.9", log, "hog")
    holders.append(hog)
    assert hog.started.wait(DEADLINE)
    for n, (client, name) in enumerate((("10.0.0.1", "retrier"), ("10.0.0.3", "again"), ("10.0.0.2", "fresh"))):
        holders.append(Holder(gate, CLEAN, client, log, name))
        wait_for(lambda n=n: gate.waiting == n + 1, f"{name} queued")
    for h in holders:
        h.release.set()
    for h in holders:
        h.thread.join(DEADLINE)
    assert log == ["hog", "fresh", "again", "retrier"]
    clock.advance(300)  # ten half-lives later the retrier is fresh again
    with gate.admit(CLEAN, "10.0.0.1"):
        assert gate._loads["10.0.0.1"][0] < 1.01


def test_gate_demotes_a_clients_second_attempt(holders: list[Holder]) -> None:
    gate = HashGate(workers=1, queue=4)
    log: list[str] = []
    busy = Holder(gate, TRUSTED, "192.0.2.9", log, "busy")
    holders.append(busy)
    assert busy.started.wait(DEADLINE)
    a1 = Holder(gate, CLEAN, "10.0.0.1", log, "a1")
    holders.append(a1)
    wait_for(lambda: gate.waiting == 1, "a1 queued")
    a2 = Holder(gate, CLEAN, "10.0.0.1", log, "a2")  # same client again: ranks as suspect
    holders.append(a2)
    wait_for(lambda: gate.waiting == 2, "a2 queued")
    b = Holder(gate, CLEAN, "10.0.0.2", log, "b")
    holders.append(b)
    wait_for(lambda: gate.waiting == 3, "b queued")
    for h in (busy, a1, b, a2):
        h.finish()
    assert log == ["busy", "a1", "b", "a2"]


def test_gate_wait_is_bounded(holders: list[Holder]) -> None:
    gate = HashGate(workers=1, queue=4, max_wait=0.05)
    log: list[str] = []
    hog = Holder(gate, TRUSTED, "192.0.2.9", log, "hog")
    holders.append(hog)
    assert hog.started.wait(DEADLINE)
    with pytest.raises(LoginRefused) as exc:
        with gate.admit(CLEAN, "10.0.0.1"):
            pass
    assert exc.value.kind == "busy" and exc.value.code == "UNAVAILABLE"
    assert gate.waiting == 0


# --- VerifiedCache ------------------------------------------------------------------------------------------


def test_cache_keys_are_keyed_hmacs_of_account_binding_and_secret(clock: Clock) -> None:
    c = VerifiedCache(600, clock=clock, key=b"k" * 32)
    k = c.key("acct1", "$argon2id$hash1", "hunter2")
    assert len(k) == 32 and b"hunter2" not in k
    assert k == c.key("acct1", "$argon2id$hash1", "hunter2")
    assert len({k, c.key("acct2", "$argon2id$hash1", "hunter2"), c.key("acct1", "$argon2id$hash2", "hunter2"),
                c.key("acct1", "$argon2id$hash1", "hunter3")}) == 4
    other = VerifiedCache(600, clock=clock, key=b"j" * 32)
    assert other.key("acct1", "$argon2id$hash1", "hunter2") != k  # a server secret keys it
    # no ambiguity between the parts
    assert c.key("a", "b\0c", "d") != c.key("a\0b", "c", "d")


def test_cache_ttl_bound_and_disable(clock: Clock) -> None:
    c = VerifiedCache(300, clock=clock, max_entries=3)
    c.put(b"k1", "password", "a1")
    assert c.get(b"k1") is not None
    clock.advance(299)
    assert c.get(b"k1") is not None  # a hit does not extend the entry ...
    clock.advance(1)
    assert c.get(b"k1") is None  # ... which ends ttl seconds after the verification
    for i in range(5):
        c.put(f"k{i}".encode(), "password", "a")
    assert len(c) == 3 and c.get(b"k0") is None and c.get(b"k4") is not None
    off = VerifiedCache(0, clock=clock)
    off.put(b"k", "password", "a")
    assert off.get(b"k") is None


def test_in_flight_shares_only_successes_and_bounds_followers() -> None:
    f = InFlight(max_followers=1)
    role, lead = f.join(b"k")
    assert role == "lead" and lead is not None
    role2, same = f.join(b"k")
    assert role2 == "follow" and same is lead
    assert f.join(b"k") == ("alone", None)  # follower cap reached
    got: list[object] = []
    th = threading.Thread(target=lambda: got.append(f.wait(same, DEADLINE)), daemon=True)
    th.start()
    ok = Verified("password", "a1", None, 0.0)
    f.finish(b"k", lead, ok)
    th.join(DEADLINE)
    assert got == [ok]
    role3, again = f.join(b"k")  # a finished flight is gone: the next attempt leads
    assert role3 == "lead" and again is not lead
    f.finish(b"k", again, None)
    assert f.wait(again, DEADLINE) is None  # a failure is not shared


# --- the authenticator ----------------------------------------------------------------------------------------


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count argon2 work (verifications and the unknown-user burn) without changing it."""
    counts = {"argon2": 0}
    real_check, real_burn = passwords.check_password, passwords.burn_time

    def check(*a: object) -> passwords.PasswordCheck:
        counts["argon2"] += 1
        return real_check(*a)  # type: ignore[arg-type]

    def burn() -> None:
        counts["argon2"] += 1
        real_burn()

    monkeypatch.setattr(passwords, "check_password", check)
    monkeypatch.setattr(passwords, "burn_time", burn)
    return counts


def make(engine: sa.Engine, clock: Clock, **throttle: float) -> Authenticator:
    return Authenticator(
        engine, AuthPolicy(), clock=clock, throttle=LoginThrottle(clock=clock, **throttle),  # type: ignore[arg-type]
        gate=HashGate(workers=3, queue=8),
    )


def test_throttled_pair_with_a_remembered_credential_gets_in(engine, auth_store: Store, make_account: MakeAccount, clock: Clock,
                                                              counting, monkeypatch) -> None:
    """An attacker on the owner's NAT failing once each time the penalty ends must not keep the owner out: a
    credential in the success cache is accepted from a throttled pair without argon2 or a hashing slot, and
    counts no failure; a miss (a guess, or a right password not remembered) is refused without argon2."""
    acct = make_account("ann@example.test")
    auth = make(auth_store, clock, base=60, maximum=60)
    assert auth.verify_password("ann@example.test", PW, "imap", client_ip="10.0.0.1") is not None  # remembered
    assert auth.verify_password("ann@example.test", "guess", "imap", client_ip="10.0.0.1") is None
    auth.throttle.failed("10.0.0.1", "ann@example.test")
    hashed, admitted = counting["argon2"], auth.gate.admitted
    assert auth.precheck("10.0.0.1", "Ann@Example.test", PW).refused  # heard: the door passes it on
    for protocol in ("imap", "jmap"):
        r = auth.verify_password("ann@example.test", PW, protocol, client_ip="10.0.0.1")
        assert r is not None and r.account_id == acct
    assert (counting["argon2"], auth.gate.admitted) == (hashed, admitted)
    assert auth.throttle.failures("10.0.0.1", "ann@example.test") == 1  # no failure counted (the door clears)
    with pytest.raises(LoginRefused):
        auth.precheck("10.0.0.1", "ann@example.test", "guess2")
    with pytest.raises(LoginRefused):
        auth.verify_password("ann@example.test", "guess2", "imap", client_ip="10.0.0.1")
    new_hash, _ = passwords.make_credentials("new password")  # the password changed: the entry no longer binds
    with engine.begin() as conn:
        conn.execute(sa.update(accounts).where(accounts.c.id == acct).values(password_hash=new_hash))
    with pytest.raises(LoginRefused) as exc:
        auth.verify_password("ann@example.test", PW, "imap", client_ip="10.0.0.1")
    assert exc.value.kind == "throttled"
    auth.cache.clear()
    monkeypatch.setattr(auth, "_account", lambda **kw: pytest.fail("database read for a throttled miss"))
    with pytest.raises(LoginRefused):
        auth.verify_password("ann@example.test", "new password", "imap", client_ip="10.0.0.1")
    assert (counting["argon2"], auth.gate.admitted) == (hashed, admitted)
    assert auth.throttle.failures("10.0.0.1", "ann@example.test") == 1


def test_throttled_attempt_does_no_work_at_all(auth_store: Store, make_account: MakeAccount, clock: Clock, counting,
                                               monkeypatch) -> None:
    make_account("ann@example.test")
    auth = make(auth_store, clock, base=60, maximum=60)
    assert auth.verify_password("ann@example.test", "guess", "imap", client_ip="10.0.0.1") is None
    auth.throttle.failed("10.0.0.1", "ann@example.test")
    assert counting["argon2"] == 1
    monkeypatch.setattr(auth, "_account", lambda **kw: pytest.fail("database read for a throttled attempt"))
    for secret in ("guess2", PW):  # even the right password is not looked at from the throttled pair
        with pytest.raises(LoginRefused) as exc:
            auth.verify_password("ann@example.test", secret, "imap", client_ip="10.0.0.1")
        assert exc.value.kind == "throttled" and exc.value.code == "AUTHENTICATIONFAILED"
        assert exc.value.retry_after == 60
    assert counting["argon2"] == 1


def test_owner_gets_in_while_the_account_is_under_attack(auth_store: Store, make_account: MakeAccount, clock: Clock,
                                                         counting) -> None:
    acct = make_account("ann@example.test")
    auth = make(auth_store, clock, base=60, maximum=900)
    for i in range(50):
        ip = f"10.0.0.{i}"
        assert auth.verify_password("ann@example.test", f"guess{i}", "imap", client_ip=ip) is None
        auth.throttle.failed(ip, "ann@example.test")
    before = counting["argon2"]
    for i in range(50):  # the flood goes on: every attacker address is refused unchecked
        with pytest.raises(LoginRefused):
            auth.verify_password("ann@example.test", "again", "imap", client_ip=f"10.0.0.{i}")
    assert counting["argon2"] == before
    r = auth.verify_password("ann@example.test", PW, "imap", client_ip="192.0.2.50")
    assert r is not None and r.account_id == acct


def test_unknown_users_cost_one_gated_hash_like_known_ones(auth_store: Store, make_account: MakeAccount, clock: Clock,
                                                          counting) -> None:
    make_account("ann@example.test")
    auth = make(auth_store, clock)
    for address in ("ann@example.test", "nobody@example.test"):
        admitted, hashed = auth.gate.admitted, counting["argon2"]
        assert auth.verify_password(address, "wrong", "imap", client_ip="10.0.0.1") is None
        assert (auth.gate.admitted - admitted, counting["argon2"] - hashed) == (1, 1)


def test_busy_gate_refuses_at_once(auth_store: Store, make_account: MakeAccount, clock: Clock, holders: list[Holder]) -> None:
    make_account("ann@example.test")
    auth = Authenticator(auth_store, AuthPolicy(), clock=clock, gate=HashGate(workers=1, queue=0))
    hog = Holder(auth.gate, TRUSTED, "192.0.2.9", [], "hog")
    holders.append(hog)
    assert hog.started.wait(DEADLINE)
    with pytest.raises(LoginRefused) as exc:
        auth.verify_password("ann@example.test", PW, "imap", client_ip="10.0.0.1")
    assert exc.value.kind == "busy"
    assert auth.throttle.failures("10.0.0.1") == 0  # not checked, so not a failure


def test_cache_hit_needs_no_hashing_slot(auth_store: Store, make_account: MakeAccount, clock: Clock,
                                         holders: list[Holder]) -> None:
    make_account("ann@example.test")
    auth = Authenticator(auth_store, AuthPolicy(), clock=clock, gate=HashGate(workers=1, queue=0))
    assert auth.verify_password("ann@example.test", PW, "jmap", client_ip="10.0.0.1") is not None
    hog = Holder(auth.gate, TRUSTED, "192.0.2.9", [], "hog")
    holders.append(hog)
    assert hog.started.wait(DEADLINE)
    assert auth.verify_password("ann@example.test", PW, "jmap", client_ip="10.0.0.1") is not None


def test_cache_never_holds_the_password_and_a_changed_password_misses(engine, auth_store: Store, make_account: MakeAccount,
                                                                      clock: Clock, counting) -> None:
    acct = make_account("ann@example.test")
    auth = make(auth_store, clock)
    assert auth.verify_password("ann@example.test", PW, "imap") is not None
    entries = list(auth.cache._entries.items())
    assert len(entries) == 1
    assert PW.encode() not in entries[0][0] and PW not in repr(entries[0][1])
    new_hash, _ = passwords.make_credentials("new password")
    with engine.begin() as conn:
        conn.execute(sa.update(accounts).where(accounts.c.id == acct).values(password_hash=new_hash))
    hashed = counting["argon2"]
    assert auth.verify_password("ann@example.test", PW, "imap") is None  # the old entry is unreachable
    assert counting["argon2"] == hashed + 1  # it was checked against the new hash, not answered from memory
    assert auth.verify_password("ann@example.test", "new password", "imap") is not None


def test_concurrent_logins_with_one_credential_share_one_hash(auth_store: Store, make_account: MakeAccount, clock: Clock,
                                                               monkeypatch) -> None:
    """A client opening several connections at once on a cold cache pays argon2 once, and none is refused."""
    acct = make_account("ann@example.test")
    auth = Authenticator(auth_store, AuthPolicy(), clock=clock, gate=HashGate(workers=3, queue=0))
    release, calls = threading.Event(), []
    real = passwords.check_password

    def held(*a: object) -> passwords.PasswordCheck:
        calls.append(1)
        release.wait(DEADLINE)
        return real(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(passwords, "check_password", held)
    results: list[object] = []

    def login() -> None:
        try:
            r = auth.verify_password("ann@example.test", PW, "imap", client_ip="10.0.0.1")
            results.append(r.account_id if r else None)
        except LoginRefused as exc:
            results.append(exc.kind)

    threads = [threading.Thread(target=login, daemon=True) for _ in range(6)]
    for th in threads:
        th.start()
    wait_for(lambda: auth.flights._followers == 5, "five followers")
    release.set()
    for th in threads:
        th.join(DEADLINE)
    assert results == [acct] * 6 and calls == [1]


def test_queued_attempt_is_refused_if_its_pair_failed_meanwhile(auth_store: Store, make_account: MakeAccount, clock: Clock,
                                                               counting, holders: list[Holder]) -> None:
    make_account("ann@example.test")
    auth = Authenticator(auth_store, AuthPolicy(), clock=clock, throttle=LoginThrottle(base=60, clock=clock),
                         gate=HashGate(workers=1, queue=4))
    hog = Holder(auth.gate, TRUSTED, "192.0.2.9", [], "hog")
    holders.append(hog)
    assert hog.started.wait(DEADLINE)
    outcome: list[object] = []

    def attempt() -> None:
        try:
            outcome.append(auth.verify_password("ann@example.test", "guess", "imap", client_ip="10.0.0.1"))
        except LoginRefused as exc:
            outcome.append(exc.kind)

    th = threading.Thread(target=attempt, daemon=True)
    th.start()
    wait_for(lambda: auth.gate.waiting == 1, "the attempt queued")
    auth.throttle.failed("10.0.0.1", "ann@example.test")  # a sibling attempt of the pair failed meanwhile
    hog.finish()
    th.join(DEADLINE)
    assert outcome == ["throttled"] and counting["argon2"] == 0


@sqlite_only
def test_sasl_plain_and_scram_respect_the_throttle(auth_store: Store, make_account: MakeAccount, clock: Clock) -> None:
    make_account("ann@example.test")
    auth = make(auth_store, clock, base=60, maximum=60)
    auth.throttle.failed("10.0.0.1", "ann@example.test")
    plain = SaslServer(auth, "imap", client_ip="10.0.0.1").create("PLAIN", True)
    assert plain is not None
    step = plain.start(b"\0ann@example.test\0" + PW.encode())
    assert isinstance(step, Failure) and step.refusal is not None and step.refusal.kind == "throttled"
    assert step.address == "ann@example.test"
    other = SaslServer(auth, "imap", client_ip="10.0.0.2").create("PLAIN", True)
    assert other is not None and isinstance(other.start(b"\0ann@example.test\0" + PW.encode()), Success)
    with pytest.raises(LoginRefused):
        auth.scram_secret("ann@example.test", "imap", client_ip="10.0.0.1")


@sqlite_only
def test_throttled_scram_is_a_refusal_not_a_failure(auth_store: Store, make_account: MakeAccount, clock: Clock) -> None:
    """SCRAM costs no argon2, so a throttled pair's exchange ends at once as a refusal: no proof is looked at
    (an uncounted guess would be free) and no failure is reported (which would lengthen the penalty)."""
    import scramp

    make_account("ann@example.test")
    auth = make(auth_store, clock, base=60, maximum=60)
    auth.throttle.failed("10.0.0.1", "ann@example.test")
    for ip in ("10.0.0.1", "10.0.0.2"):
        client = scramp.ScramClient(["SCRAM-SHA-256"], "ann@example.test", PW)
        mech = SaslServer(auth, "imap", client_ip=ip).create("SCRAM-SHA-256", True)
        assert mech is not None
        step = mech.start(client.get_client_first().encode())
        if ip == "10.0.0.1":
            assert isinstance(step, Failure) and step.refusal is not None
            assert step.refusal.kind == "throttled" and step.refusal.retry_after == 60
            assert step.code == "AUTHENTICATIONFAILED" and mech.done
            continue
        client.set_server_first(step.data.decode())  # type: ignore[union-attr]
        assert isinstance(mech.step(client.get_client_final().encode()), Success)
    assert auth.throttle.failures("10.0.0.1", "ann@example.test") == 1


@sqlite_only
def test_http_authenticate_passes_the_client_on(auth_store: Store, make_account: MakeAccount, clock: Clock) -> None:
    import base64

    make_account("ann@example.test")
    auth = make(auth_store, clock, base=60)
    auth.throttle.failed("10.0.0.1", "ann@example.test")
    header = "Basic " + base64.b64encode(f"ann@example.test:{PW}".encode()).decode()
    with pytest.raises(LoginRefused):
        auth.http_authenticate(header, client_ip="10.0.0.1")
    assert auth.http_authenticate(header, client_ip="10.0.0.2") is not None


# --- trusted proxies ------------------------------------------------------------------------------------------


def test_forwarded_headers_ignored_without_trusted_proxies() -> None:
    p = TrustedProxies()
    assert p.client_ip("127.0.0.1", x_forwarded_for=["203.0.113.9"]) == "127.0.0.1"
    assert p.client_ip("127.0.0.1", forwarded=["for=203.0.113.9"]) == "127.0.0.1"
    assert p.client_ip(None) == "?"


def test_forwarded_headers_from_a_trusted_proxy() -> None:
    p = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    assert p.client_ip("127.0.0.1", x_forwarded_for=["203.0.113.9"]) == "203.0.113.9"
    # whatever the client wrote left of our proxies' entries is ignored
    assert p.client_ip("127.0.0.1", x_forwarded_for=["1.1.1.1, 203.0.113.9, 10.1.2.3"]) == "203.0.113.9"
    assert p.client_ip("127.0.0.1", x_forwarded_for=["1.1.1.1", "203.0.113.9:4711"]) == "203.0.113.9"
    assert p.client_ip("127.0.0.1", x_forwarded_for=["10.9.9.9"]) == "10.9.9.9"  # all trusted: the leftmost
    assert p.client_ip("127.0.0.1", x_forwarded_for=["garbage"]) == "127.0.0.1"  # unknown: the proxy's bucket
    assert p.client_ip("127.0.0.1") == "127.0.0.1"
    assert p.client_ip("192.0.2.1", x_forwarded_for=["203.0.113.9"]) == "192.0.2.1"  # not a proxy of ours


def test_only_the_configured_forwarding_header_is_read() -> None:
    """nginx and HAProxy append to X-Forwarded-For and pass a client's own ``Forwarded`` through untouched, so
    reading both (or preferring ``Forwarded``) would let the client pick its throttle address."""
    p = TrustedProxies(["127.0.0.1"])
    assert p.header == "x-forwarded-for"
    spoof = {"forwarded": ["for=198.51.100.77"], "x_forwarded_for": ["203.0.113.9"]}
    assert p.client_ip("127.0.0.1", **spoof) == "203.0.113.9"
    assert p.client_ip("127.0.0.1", forwarded=["for=198.51.100.77"]) == "127.0.0.1"  # the proxy's own bucket
    f = TrustedProxies(["127.0.0.1", "10.0.0.0/8"], header="Forwarded")
    assert f.header == "forwarded"
    assert f.client_ip("127.0.0.1", **spoof) == "198.51.100.77"
    assert f.client_ip("127.0.0.1", x_forwarded_for=["203.0.113.9"]) == "127.0.0.1"
    fwd = ['for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::17]:4711"']
    assert f.client_ip("127.0.0.1", forwarded=fwd) == "2001:db8::17"
    assert f.client_ip("127.0.0.1", forwarded=["for=unknown"]) == "127.0.0.1"
    with pytest.raises(ValueError, match="forwarded_header"):
        TrustedProxies(["127.0.0.1"], header="x-real-ip")


def test_proxy_parsing_helpers_and_config_check(tmp_path) -> None:  # noqa: ANN001
    assert parse_address("[::ffff:10.0.0.1]:80") == "10.0.0.1"
    assert parse_address('"[2001:db8::1]"') == "2001:db8::1"
    assert parse_address("_hidden") is None and parse_address("[::1") is None
    assert forwarded_hops(['for="a,b";by=x', "proto=https"]) == ['"a,b"', None]
    with pytest.raises(ValueError, match="not-an-ip"):
        TrustedProxies(["not-an-ip"])
    with pytest.raises(ValueError):
        TrustedProxies("127.0.0.1")  # type: ignore[arg-type]
    cfg = Config(data_dir=tmp_path, public_url="http://127.0.0.1:8080")
    cfg.http.trusted_proxies = ["127.0.0.1", "fd00::/8"]
    cfg.check()
    cfg.http.trusted_proxies = ["10.0.0.0/8", "nope"]
    with pytest.raises(ValueError, match="trusted_proxies"):
        cfg.check()
    cfg.http.trusted_proxies = []
    assert cfg.http.forwarded_header == "x-forwarded-for"
    cfg.http.forwarded_header = "forwarded"
    cfg.check()
    cfg.http.forwarded_header = "x-real-ip"
    with pytest.raises(ValueError, match="forwarded_header"):
        cfg.check()
