"""Issue 8 item 4 end to end: the JMAP failed-login throttle punishes failures, never the innocent.

Real server, real HTTP (httpx). The throttle's clock and sleep are injected where the test must control time,
so nothing here asserts a duration: "not delayed" is shown by a request answering while an hour-long tarpit
holds the failures, or by the throttle recording no tarpit for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import argon2
import httpx
import pytest

from janusmail.auth import make_credentials, passwords
from janusmail.auth.throttle import LoginThrottle
from tests.serverutil import ServerThread, make_config

PASSWORDS = {"alice@example.test": "alice-secret-1", "bob@example.test": "bob-secret-2"}
ALICE = ("alice@example.test", PASSWORDS["alice@example.test"])
BOB = ("bob@example.test", PASSWORDS["bob@example.test"])
HOUR = 3600.0
DEADLINE = 60.0
CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_argon2() -> Iterator[None]:
    prev = passwords.set_hasher(CHEAP)
    yield
    passwords.set_hasher(prev)


def start(tmp_path: Path, **overrides: object) -> ServerThread:
    cfg = make_config(tmp_path / "data", None, imap__listen=None, imap__imaps=None, **overrides)
    srv = ServerThread(cfg).start()
    for address, password in PASSWORDS.items():
        srv.store.accounts.create(address, *make_credentials(password))
    return srv


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    srv = start(tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[ServerThread]:
    srv = start(tmp_path, http__trusted_proxies=["127.0.0.1"])
    yield srv
    srv.stop()


class FakeTime:
    """The throttle's clock; its sleep advances the clock (a client that waited) unless ``frozen``."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.frozen = False
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if not self.frozen:
            self.now += seconds


def fake_throttle(server: ServerThread, **kw: float) -> tuple[LoginThrottle, FakeTime]:
    t = FakeTime()
    throttle = LoginThrottle(clock=t, sleep=t.sleep, **kw)
    server.runtime.auth.throttle = throttle
    return throttle, t


def session(server: ServerThread, auth: tuple[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(server.config.public_url + "/.well-known/jmap", auth=auth, headers=headers, timeout=DEADLINE)


def wait_for(predicate, what: str) -> None:  # noqa: ANN001
    import time

    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_correct_credentials_answer_while_an_ips_failures_are_tarpitted(tmp_path: Path) -> None:
    """More than 10 failed logins from one address (unknown accounts), each held in an hour-long tarpit; correct
    Basic requests from that same address (one cached, one needing argon2) are answered meanwhile, with no
    tarpit of their own. The old throttle made them wait before even looking (~8 s by default)."""
    tarpits: list[float] = []

    async def sleep(seconds: float) -> None:
        tarpits.append(seconds)
        await asyncio.sleep(seconds)

    server = start(tmp_path)
    stopped = False
    failures: list[int] = []
    threads: list[threading.Thread] = []

    def fail(i: int) -> None:
        failures.append(session(server, (f"nobody{i}@example.test", "x")).status_code)

    try:
        throttle = LoginThrottle(base=HOUR, maximum=HOUR, sleep=sleep)
        server.runtime.auth.throttle = throttle
        assert session(server, ALICE).status_code == 200  # a JMAP client's credential, now cached
        threads = [threading.Thread(target=fail, args=(i,), daemon=True) for i in range(11)]
        for th in threads:
            th.start()
        wait_for(lambda: throttle.failures("127.0.0.1") == 11 and len(tarpits) == 11, "11 failures in tarpits")
        assert session(server, ALICE).status_code == 200  # cached
        assert session(server, BOB).status_code == 200  # argon2, ranked behind clean addresses, not delayed
        assert failures == [] and len(tarpits) == 11  # the failures are still held; the successes got no tarpit
        assert throttle.failures("127.0.0.1") == 11  # success clears only its own pair, never the address's
        server.stop()  # shutdown cuts the tarpits short: the held failures answer 401 and the server exits
        stopped = True
        for th in threads:
            th.join(DEADLINE)
        assert failures == [401] * 11
    finally:
        if not stopped:
            server.stop()


def test_success_clears_its_own_counter(server: ServerThread) -> None:
    throttle, t = fake_throttle(server, base=1, maximum=60)
    for _ in range(3):  # a client that waits for each (tarpitted) answer is never refused
        assert session(server, ("alice@example.test", "typo")).status_code == 401
    assert t.slept == [1, 2, 4]
    assert throttle.failures("127.0.0.1", "alice@example.test") == 3
    assert session(server, ALICE).status_code == 200
    assert throttle.failures("127.0.0.1", "alice@example.test") == 0
    assert throttle.failures("127.0.0.1") == 3
    assert session(server, ("alice@example.test", "typo")).status_code == 401
    assert t.slept[-1] == 1  # the pair starts again from the first penalty


def test_parallel_guess_is_refused_unchecked_with_429(server: ServerThread) -> None:
    throttle, t = fake_throttle(server, base=30, maximum=60)
    t.frozen = True  # the attacker does not wait for its answers
    gate = server.runtime.auth.gate
    assert session(server, ("alice@example.test", "guess1")).status_code == 401
    admitted = gate.admitted
    r = session(server, ALICE)  # even the right password: this pair is not looked at inside its penalty
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert gate.admitted == admitted  # no hashing
    assert session(server, BOB).status_code == 200  # other accounts from the same address are unaffected
    t.now += 30
    assert session(server, ALICE).status_code == 200


def test_x_forwarded_for_from_an_untrusted_loopback_peer_is_ignored(server: ServerThread) -> None:
    throttle, t = fake_throttle(server, base=30, maximum=60)
    t.frozen = True
    r = session(server, ("alice@example.test", "guess"), {"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 401
    assert throttle.failures("127.0.0.1", "alice@example.test") == 1
    assert throttle.failures("203.0.113.9") == 0
    for header in ({"X-Forwarded-For": "203.0.113.10"}, {"Forwarded": "for=203.0.113.11"}):
        assert session(server, ALICE, header).status_code == 429  # a new header does not dodge the throttle


def test_forwarded_headers_are_honoured_from_a_trusted_proxy(proxied: ServerThread) -> None:
    throttle, t = fake_throttle(proxied, base=30, maximum=60)
    t.frozen = True
    r = session(proxied, ("alice@example.test", "guess"), {"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 401
    assert throttle.failures("203.0.113.9", "alice@example.test") == 1
    assert throttle.failures("127.0.0.1") == 0
    # another client behind the same proxy is a different address: not throttled
    assert session(proxied, ALICE, {"X-Forwarded-For": "203.0.113.10"}).status_code == 200
    # the client cannot pick its address: our proxy's entry is the rightmost one (a guess, since the
    # credential is remembered now and would be heard even from the throttled pair)
    guess = ("alice@example.test", "guess2")
    assert session(proxied, guess, {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}).status_code == 429
    assert throttle.failures("198.51.100.1") == 0
    assert session(proxied, ALICE).status_code == 200  # no header: the proxy itself


def test_a_spoofed_forwarded_header_does_not_move_the_client(proxied: ServerThread) -> None:
    """nginx/HAProxy append the client to X-Forwarded-For and pass a ``Forwarded`` header the client wrote
    through untouched: with the default ``forwarded_header`` the failure is counted under the X-Forwarded-For
    address, whatever ``Forwarded`` says, and a new ``Forwarded`` value does not dodge the refusal."""
    throttle, t = fake_throttle(proxied, base=30, maximum=60)
    t.frozen = True
    spoofed = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=198.51.100.77"}
    assert session(proxied, ("alice@example.test", "guess"), spoofed).status_code == 401
    assert throttle.failures("203.0.113.9", "alice@example.test") == 1
    assert throttle.failures("198.51.100.77") == 0
    again = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=198.51.100.78"}
    assert session(proxied, ("alice@example.test", "guess2"), again).status_code == 429
    assert throttle.failures("198.51.100.78") == 0 and throttle.failures("203.0.113.9") == 1


def test_forwarded_header_setting_reads_only_forwarded(tmp_path: Path) -> None:
    """With ``[http] forwarded_header = "forwarded"`` (a proxy that writes RFC 7239), X-Forwarded-For is the
    client's own writing and is ignored."""
    srv = start(tmp_path, http__trusted_proxies=["127.0.0.1"], http__forwarded_header="forwarded")
    try:
        throttle, t = fake_throttle(srv, base=30, maximum=60)
        t.frozen = True
        headers = {"Forwarded": 'for="203.0.113.9:5555"', "X-Forwarded-For": "198.51.100.77"}
        assert session(srv, ("alice@example.test", "guess"), headers).status_code == 401
        assert throttle.failures("203.0.113.9", "alice@example.test") == 1
        assert throttle.failures("198.51.100.77") == 0
        assert session(srv, ALICE, {"X-Forwarded-For": "198.51.100.77"}).status_code == 200  # the proxy itself
    finally:
        srv.stop()


def test_remembered_basic_credential_answers_from_a_throttled_pair(server: ServerThread) -> None:
    """Issue 8 item 3 over JMAP Basic: someone on the owner's address failing for the owner's account must not
    keep the owner's JMAP client (which sends Basic with every request) out. The remembered credential is
    answered 200 from the throttled pair, without a hashing slot and without a failure; a right password the
    cache does not remember, and any guess, are still refused unchecked (429)."""
    throttle, t = fake_throttle(server, base=30, maximum=60)
    t.frozen = True  # the attacker does not wait for its answers
    gate = server.runtime.auth.gate
    assert session(server, ALICE).status_code == 200  # the owner's client: now remembered
    assert session(server, ("alice@example.test", "guess1")).status_code == 401
    assert throttle.check("127.0.0.1", "alice@example.test").refused
    admitted = gate.admitted
    assert session(server, ("alice@example.test", "guess2")).status_code == 429
    assert session(server, ALICE).status_code == 200  # heard from the cache, not hashed
    assert gate.admitted == admitted
    assert throttle.failures("127.0.0.1", "alice@example.test") == 0  # success clears its own pair
    assert t.slept == [30]  # the one failure's tarpit; the owner's answer had none
    assert session(server, ("alice@example.test", "guess3")).status_code == 401
    server.runtime.auth.cache.clear()  # not remembered: the pair is not looked at inside its penalty
    assert session(server, ALICE).status_code == 429
    assert gate.admitted == admitted + 1  # only guess3 was hashed
