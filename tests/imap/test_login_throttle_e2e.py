"""Issue 8 item 3 end to end: a login flood cannot starve the server or lock the owner out.

The real server on loopback; attackers are raw asyncio connections bound to distinct loopback source addresses
(127.0.0.2 .. 127.0.0.51; all of 127/8 is loopback on Linux). No wall-clock assertions: argon2 is replaced by a
hasher that *holds* every wrong-password verification until the test lets go, so "the owner got in while the
attackers' hashes were still running and queued" is a fact the test observes, not a timing. Tarpits last an
hour, so "while every attacker attempt is still unanswered" is also observable.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import argon2
import pytest

from janusmail.auth import passwords
from janusmail.auth.throttle import HashGate, LoginThrottle
from tests.imap.e2e_util import ADDRESS, PASSWORD, serve, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

ATTACKERS = [f"127.0.0.{i}" for i in range(2, 52)]  # 50 source addresses
DEADLINE = 60.0
HOUR = 3600.0


class HeldHasher(argon2.PasswordHasher):
    """Cheap argon2 that counts verifications and holds every one of a password other than the owner's until
    :attr:`release` is set (as if each guess took forever): the hashing slots stay occupied by attackers."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.wrong = 0  # verifications of wrong passwords (including the unknown-user burn)
        self.held = 0  # of those, currently held
        self.right = 0  # verifications of the owner's password

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 - argon2's name
        if password == PASSWORD:
            with self.lock:
                self.right += 1
            return super().verify(hash, password)
        with self.lock:
            self.wrong += 1
            self.held += 1
        try:
            self.release.wait(DEADLINE)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.held -= 1


@pytest.fixture(scope="module", autouse=True)
def loopback_sources() -> None:
    """The attackers bind 127.0.0.x source addresses: Linux routes all of 127/8 to loopback, others may not."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.51", 0))
    except OSError as exc:
        pytest.skip(f"cannot bind loopback source addresses other than 127.0.0.1: {exc}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    yield from serve(tmp_path)


@pytest.fixture
def hasher() -> Iterator[HeldHasher]:
    h = HeldHasher()
    prev = passwords.set_hasher(h)
    yield h
    h.release.set()
    passwords.set_hasher(prev)


def arm(server: ServerThread) -> tuple[HashGate, list[float]]:
    """An hour-long tarpit (recorded), 3 hashing workers and a queue of 32, as configured by default."""
    auth = server.runtime.auth
    tarpits: list[float] = []

    async def sleep(seconds: float) -> None:
        tarpits.append(seconds)
        await asyncio.sleep(seconds)

    auth.throttle = LoginThrottle(base=HOUR, maximum=HOUR, sleep=sleep)
    auth.gate = HashGate(workers=3, queue=32)
    return auth.gate, tarpits


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Client:
    """A raw IMAP connection from a chosen loopback source address."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.answer: bytes | None = None

    @classmethod
    async def connect(cls, server: ServerThread, source: str) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.imap_port, local_addr=(source, 0))
        greeting = await reader.readline()
        assert greeting.startswith(b"* OK"), greeting
        return cls(reader, writer)

    async def login(self, user: str, password: str, *, retry_busy: bool = False) -> bytes:
        """Send LOGIN and wait for the tagged answer (records it in :attr:`answer`); with ``retry_busy``, a
        ``NO [UNAVAILABLE]`` is answered with the same LOGIN again, as a flooding client would."""
        while True:
            self.writer.write(f'a1 LOGIN "{user}" "{password}"\r\n'.encode())
            await self.writer.drain()
            line = await self.reader.readline()
            while line and not line.startswith(b"a1 "):
                line = await self.reader.readline()
            if retry_busy and b"[UNAVAILABLE]" in line:
                continue
            self.answer = line
            return line

    async def cmd(self, text: str) -> bytes:
        """Send one tagged command (tag ``t``) and return its tagged answer."""
        self.writer.write(f"t {text}\r\n".encode())
        await self.writer.drain()
        while True:
            line = await self.reader.readline()
            if not line or line.startswith(b"t "):
                return line

    def close(self) -> None:
        self.writer.close()


async def flood(
    server: ServerThread, attempts: list[tuple[str, str]], *, retry_busy: bool = False
) -> tuple[list[Client], list[asyncio.Task]]:
    """Connect every (source, user) and send one wrong LOGIN each, all at once; the answers come when they come."""
    clients = await asyncio.gather(*(Client.connect(server, source) for source, _ in attempts))
    tasks = [  # every guess a different password, as in a real attack
        asyncio.create_task(c.login(user, f"wrong guess {i}", retry_busy=retry_busy))
        for i, (c, (_, user)) in enumerate(zip(clients, attempts, strict=True))
    ]
    return list(clients), tasks


async def finish(clients: list[Client], tasks: list[asyncio.Task]) -> None:
    for c in clients:
        c.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def answered(clients: list[Client]) -> list[bytes]:
    return [c.answer for c in clients if c.answer is not None]


async def test_trusted_owner_gets_in_through_a_burst_of_200_from_50_addresses(server, hasher) -> None:
    """The owner's usual address never waits for an attacker's hash: 200 concurrent wrong-password LOGINs for
    the owner's account from 50 fresh addresses take every slot they may and the account's places in the queue,
    and stay stuck there; the owner logs in meanwhile, from the success cache and, with the cache emptied,
    through the slot kept for addresses that last logged in successfully. The flood costs at most 2 + 2
    verifications; everything else is refused unchecked."""
    gate, _ = arm(server)
    auth = server.runtime.auth
    owner_ip = "127.0.0.52"
    owner = await Client.connect(server, owner_ip)
    assert b"a1 OK" in await owner.login(ADDRESS, PASSWORD)  # earlier today: the address becomes trusted
    owner.close()

    attempts = [(ip, ADDRESS) for _ in range(4) for ip in ATTACKERS]
    clients, tasks = await flood(server, attempts)
    try:
        # The burst settles: 2 guesses hashing (held), the account's 2 queue places taken, the other 196
        # refused as busy (after a short hold).
        await wait_for(lambda: gate.running == 2 and gate.waiting == 2 and len(answered(clients)) == 196,
                       "the burst to fill the gate")
        assert all(b"NO [UNAVAILABLE]" in a for a in answered(clients))
        assert hasher.held == 2

        again = await Client.connect(server, owner_ip)  # a recently verified credential: no hashing at all
        assert b"a1 OK" in await again.login(ADDRESS, PASSWORD)
        again.close()

        auth.cache.clear()  # the cache has expired: argon2 it is, in the slot kept for trusted logins
        third = await Client.connect(server, owner_ip)
        assert b"a1 OK" in await third.login(ADDRESS, PASSWORD)
        third.close()
        assert hasher.held == 2 and gate.waiting == 2  # the attackers' guesses were still stuck meanwhile

        hasher.release.set()
        await wait_for(lambda: gate.running == 0 and gate.waiting == 0, "the queue to drain")
        assert hasher.wrong <= 4  # 200 concurrent guesses, at most the clean slots + the account's queue places
        assert not any(b"OK" in a for a in answered(clients))
    finally:
        await finish(clients, tasks)


async def test_fresh_owner_address_gets_in_while_200_attempts_from_50_addresses_are_outstanding(
    server, hasher
) -> None:
    """The issue's aim, by events: 200 wrong-password attempts against the owner's account from 50 addresses
    (one wave, then three more per address while the first are tarpitted), and the same addresses spraying
    other accounts to keep the hashing queue full; the owner, from an address never seen before, gets in
    while all 200 are unanswered. The 150 repeats are refused without any hashing."""
    gate, tarpits = arm(server)
    hasher.release.set()  # first wave: one real (failed) verification per address
    first, first_tasks = await flood(server, [(ip, ADDRESS) for ip in ATTACKERS], retry_busy=True)
    more: list[Client] = []
    more_tasks: list[asyncio.Task] = []
    spray: list[Client] = []
    spray_tasks: list[asyncio.Task] = []
    try:
        throttle = server.runtime.auth.throttle
        held = lambda: sum(1 for d in tarpits if d > 60)  # noqa: E731 - hour-long tarpits (not busy pauses)
        await wait_for(lambda: held() == 50 and all(throttle.failures(ip) == 1 for ip in ATTACKERS),
                       "every first attempt to fail into its tarpit")
        assert hasher.wrong == 50
        hasher.release.clear()

        more, more_tasks = await flood(server, [(ip, ADDRESS) for _ in range(3) for ip in ATTACKERS])
        await wait_for(lambda: held() == 200, "the repeats to be refused into their tarpits")
        assert hasher.wrong == 50  # refused before any hashing

        spray, spray_tasks = await flood(server, [(ip, f"nobody{i}@example.test") for i, ip in enumerate(ATTACKERS)])
        await wait_for(lambda: gate.running == 1 and gate.waiting == 32 and len(answered(spray)) == 17,
                       "the spray to fill the hashing queue")
        assert hasher.held == 1

        owner = await Client.connect(server, "127.0.0.99")
        assert b"a1 OK" in await owner.login(ADDRESS, PASSWORD)
        owner.close()
        assert answered(first) == [] and answered(more) == []  # all 200 still outstanding
        assert hasher.held == 1 and gate.waiting == 32  # and the spray's guesses still stuck
        assert throttle.failures("127.0.0.99") == 0
    finally:
        hasher.release.set()
        await finish(first + more + spray, first_tasks + more_tasks + spray_tasks)


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


async def test_authenticate_plain_is_throttled_and_gated_like_login(server, hasher) -> None:
    """SASL PLAIN (what most clients use) goes through the same throttle and gate as LOGIN: a throttled pair is
    refused unchecked (no failure counted) unless its credential is a remembered one, a full hashing queue
    answers NO [UNAVAILABLE]."""
    auth = server.runtime.auth
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)  # answer at once: this test looks at the answers, not the tarpit

    auth.throttle = LoginThrottle(base=HOUR, maximum=HOUR, sleep=sleep)
    auth.gate = HashGate(workers=1, queue=0)
    hasher.release.set()
    c = await Client.connect(server, "127.0.0.2")
    assert b"NO [AUTHENTICATIONFAILED]" in await c.cmd("AUTHENTICATE PLAIN " + plain(ADDRESS, "wrong"))
    assert hasher.wrong == 1 and auth.throttle.failures("127.0.0.2", ADDRESS) == 1
    answer = await c.cmd("AUTHENTICATE PLAIN " + plain(ADDRESS, PASSWORD))  # right, but not remembered
    assert answer.startswith(b"t NO [AUTHENTICATIONFAILED] Too many failed logins"), answer
    assert auth.throttle.failures("127.0.0.2", ADDRESS) == 1 and pauses[-1] > HOUR - 60
    assert hasher.right == 0  # not looked at
    c.close()

    hasher.release.clear()  # one guess from elsewhere holds the only hashing slot
    holder = await Client.connect(server, "127.0.0.3")
    held = asyncio.create_task(holder.cmd("AUTHENTICATE PLAIN " + plain("nobody@example.test", "x")))
    await wait_for(lambda: hasher.held == 1, "the slot to be taken")
    fresh = await Client.connect(server, "127.0.0.4")
    assert b"NO [UNAVAILABLE]" in await fresh.cmd("AUTHENTICATE PLAIN " + plain(ADDRESS, PASSWORD))
    assert auth.throttle.failures("127.0.0.4") == 0  # busy is not a failure
    hasher.release.set()
    assert b"NO [AUTHENTICATIONFAILED]" in await held
    assert b"t OK" in await fresh.cmd("AUTHENTICATE PLAIN " + plain(ADDRESS, PASSWORD))
    fresh.close()
    holder.close()


async def test_a_remembered_credential_gets_in_from_a_throttled_pair(server, hasher) -> None:
    """Issue 8 item 3: an attacker sharing the owner's address (a NAT) who fires one wrong guess each time the
    penalty ends must not keep the owner out. The owner's credential, in the success cache, is accepted from
    the throttled (address, account) pair over LOGIN and AUTHENTICATE PLAIN, with no argon2 and no failure
    counted; the attacker's guesses from there are still refused unhashed."""
    auth = server.runtime.auth
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    auth.throttle = LoginThrottle(base=HOUR, maximum=HOUR, sleep=sleep)
    hasher.release.set()
    nat = "127.0.0.2"
    owner = await Client.connect(server, nat)
    assert b"a1 OK" in await owner.login(ADDRESS, PASSWORD)  # this morning: argon2 once, now remembered
    owner.close()
    assert hasher.right == 1
    for attempt in ("login", "plain"):
        attacker = await Client.connect(server, nat)
        assert b"a1 NO [AUTHENTICATIONFAILED]" in await attacker.login(ADDRESS, f"guess {attempt}")
        assert auth.throttle.check(nat, ADDRESS).refused
        assert b"a1 NO [AUTHENTICATIONFAILED]" in await attacker.login(ADDRESS, "guess again")  # refused
        attacker.close()
        wrong = hasher.wrong
        assert wrong >= 1 and auth.throttle.failures(nat, ADDRESS) == 1
        owner = await Client.connect(server, nat)
        if attempt == "login":
            answer = await owner.login(ADDRESS, PASSWORD)
            assert answer.startswith(b"a1 OK"), answer
        else:
            answer = await owner.cmd("AUTHENTICATE PLAIN " + plain(ADDRESS, PASSWORD))
            assert answer.startswith(b"t OK"), answer
        owner.close()
        assert hasher.right == 1 and hasher.wrong == wrong  # no argon2 for either
        assert auth.throttle.failures(nat, ADDRESS) == 0  # the success cleared its pair; nothing was counted
    assert all(p > HOUR - 60 for p in pauses)  # the only pauses: the attacker's tarpit and refusal


async def test_throttled_scram_is_refused_and_not_counted(server, hasher) -> None:
    """SCRAM from a throttled pair ends at the client-first message as a refusal (NO [AUTHENTICATIONFAILED] with
    the throttle's text): no proof is looked at and no failure counted, so the penalty does not grow."""
    import scramp

    auth = server.runtime.auth
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    auth.throttle = LoginThrottle(base=HOUR, maximum=HOUR, sleep=sleep)
    hasher.release.set()
    c = await Client.connect(server, "127.0.0.2")
    assert b"a1 NO [AUTHENTICATIONFAILED]" in await c.login(ADDRESS, "wrong")
    assert auth.throttle.failures("127.0.0.2", ADDRESS) == 1
    first = scramp.ScramClient(["SCRAM-SHA-256"], ADDRESS, PASSWORD).get_client_first()
    answer = await c.cmd("AUTHENTICATE SCRAM-SHA-256 " + base64.b64encode(first.encode()).decode())
    assert answer.startswith(b"t NO [AUTHENTICATIONFAILED] Too many failed logins"), answer
    assert auth.throttle.failures("127.0.0.2", ADDRESS) == 1 and auth.throttle.failures("127.0.0.2") == 1
    assert len(pauses) == 2 and pauses[-1] > HOUR - 60  # the refusal waits out the rest of the penalty
    c.close()


async def test_a_client_opening_twelve_connections_at_once_pays_one_hash(server, hasher) -> None:
    """Cold cache, 12 simultaneous LOGINs with the same credential from one address (a mail client starting):
    all get in, none is refused as busy, and argon2 runs once."""
    arm(server)
    clients = await asyncio.gather(*(Client.connect(server, "127.0.0.5") for _ in range(12)))
    answers = await asyncio.gather(*(c.login(ADDRESS, PASSWORD) for c in clients))
    assert all(a.startswith(b"a1 OK") for a in answers), answers
    assert hasher.right == 1
    for c in clients:
        c.close()
