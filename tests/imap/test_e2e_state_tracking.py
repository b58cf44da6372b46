"""Concurrent sessions keep a true picture of one mailbox (issue 11: the stress run's state-tracking checker).

Four connections select one INBOX and, at the same time (one thread each), APPEND, STORE (+/-/replace, silent
or not, by number and by UID), EXPUNGE, UID EXPUNGE, UID MOVE and FETCH. Each keeps its own view of the mailbox
built *only* from the untagged responses it is sent (EXISTS, EXPUNGE, VANISHED, FETCH FLAGS, FLAGS), the way a
client does, and checks every response against it as it arrives:

* EXISTS never decreases (only EXPUNGE/VANISHED remove messages);
* EXPUNGE / VANISHED / FETCH name only messages the session was told about (by number or by UID);
* a FETCH's UID agrees with what that sequence number meant; UIDs stay ascending;
* no EXPUNGE during FETCH, STORE or SEARCH by sequence numbers (RFC 9051 §7.5.1);
* a keyword in FETCH FLAGS was announced by ``* FLAGS`` first (RFC 9051 §7.3.5);
* nothing is answered BAD (every request is well-formed and names messages of the session's view).

At sync points (every thread done, so nothing is being written) each session sends NOOP; its view must then
equal the mailbox as a fresh EXAMINE sees it: the same UIDs in order, the same flags, as many messages as
STATUS MESSAGES, UIDNEXT beyond the last UID; and no message is ``\\Recent`` in two sessions (RFC 3501 §2.3.2).
Two sessions are plain IMAP4rev1, one has CONDSTORE, one QRESYNC (VANISHED instead of EXPUNGE). Failures are
reported grouped by kind, like imaptest's checker. No sleeps: the threads are joined, never waited on by time.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.imap.e2e_util import Raw, Tenant, serve_shared, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

CLIENTS = 4
ROUNDS = 3
OPS_PER_ROUND = 25
SEED_MESSAGES = 12
FLAG_POOL = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft", "$Label1", "$Label2", "$Work", "Junk"]

_FETCH = re.compile(rb"^\* (\d+) FETCH \((.*)\)$")
_UID = re.compile(rb"\bUID (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def tenant(shared: ServerThread) -> Tenant:
    return Tenant(shared)


def uid_set(text: bytes) -> list[int]:
    out: list[int] = []
    for part in text.split(b","):
        lo, _, hi = part.partition(b":")
        a, b = int(lo), int(hi or lo)
        out.extend(range(min(a, b), max(a, b) + 1))
    return out


class Tracker:
    """One session and the mailbox as that session was told it is. ``uids[i]``/``flags[i]`` describe message
    ``i + 1``; None = announced by EXISTS but not fetched yet (such entries are always the last ones)."""

    def __init__(self, srv: Tenant, name: str, enable: str | None, rnd: random.Random) -> None:
        self.name, self.rnd = name, rnd
        self.raw = Raw(srv.imap_port)
        self.errors: list[tuple[str, str]] = []
        self.uids: list[int | None] = []
        self.flags: list[frozenset[str] | None] = []
        self.announced: set[str] = set()
        self.qresync = enable == "QRESYNC"
        self.command = b""
        self.n = 0
        assert self.raw.cmd("l", f'LOGIN {srv.address} "{srv.password}"')[-1].startswith(b"l OK")
        if enable:
            assert self.run(f"ENABLE {enable}")[0] == "OK"
        status, _ = self.run("SELECT INBOX")
        assert status == "OK"
        self.refresh()

    # -- the wire ------------------------------------------------------------------------------------------

    def error(self, kind: str, detail: str) -> None:
        self.errors.append((kind, f"{self.name} after {self.command[:70]!r}: {detail}"))

    def run(self, command: str | bytes, literal: bytes | None = None) -> tuple[str, list[bytes]]:
        """Send one command, feed every untagged line through the view, return (OK/NO/BAD, the lines)."""
        self.n += 1
        tag = f"t{self.n}"
        text = command.encode() if isinstance(command, str) else command
        self.command = text
        data = tag.encode() + b" " + text
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        self.raw.send(data + b"\r\n")
        lines = self.raw.until(tag)
        for line in lines[:-1]:
            self.feed(line)
        status = lines[-1].split(b" ", 2)[1].decode()
        if status == "BAD":
            self.error("BAD answer", repr(lines[-1]))
        return status, lines[:-1]

    def feed(self, line: bytes) -> None:
        words = line.split(b" ", 3)
        if line.startswith(b"* FLAGS ("):
            self.announced = {f for f in line[9:-1].decode().split() if not f.startswith("\\")}
        elif len(words) >= 3 and words[2] == b"EXISTS":
            n = int(words[1])
            if n < len(self.uids):
                self.error("EXISTS decreased without EXPUNGE", f"{n} < {len(self.uids)}")
            else:
                self.uids += [None] * (n - len(self.uids))
                self.flags += [None] * (n - len(self.flags))
        elif len(words) >= 3 and words[2] == b"EXPUNGE":
            self.expunged_here()
            n = int(words[1])
            if not 1 <= n <= len(self.uids):
                self.error("EXPUNGE of a message never announced", f"{n} of {len(self.uids)}")
            else:
                del self.uids[n - 1], self.flags[n - 1]
        elif line.startswith(b"* VANISHED "):
            if not line.startswith(b"* VANISHED (EARLIER)"):
                self.expunged_here()
                self.vanished(uid_set(line.split()[2]))
        elif (m := _FETCH.match(line)) is not None:
            self.fetched(int(m.group(1)), m.group(2))

    def expunged_here(self) -> None:
        verb = self.command.split(b" ", 1)[0].upper()
        if verb in (b"FETCH", b"STORE", b"SEARCH"):
            self.error("EXPUNGE during FETCH/STORE/SEARCH", repr(self.command[:40]))

    def vanished(self, gone: list[int]) -> None:
        """Drop the VANISHED UIDs. One the session has not fetched yet must fall in a gap holding an entry it was
        told about but has not fetched (a UID between the known UIDs around that entry)."""
        known = {u: i for i, u in enumerate(self.uids) if u is not None}
        drop = {known[u] for u in gone if u in known}
        low, high, last = [], [0] * len(self.uids), 0
        for u in self.uids:
            low.append(last)
            last = u if u is not None else last
        nxt = 1 << 62
        for i in range(len(self.uids) - 1, -1, -1):
            high[i] = nxt
            nxt = self.uids[i] if self.uids[i] is not None else nxt  # type: ignore[assignment]
        for u in sorted(u for u in gone if u not in known):
            spot = next((i for i, x in enumerate(self.uids)
                         if x is None and i not in drop and low[i] < u < high[i]), None)
            if spot is None:
                self.error("VANISHED for a message never announced", f"UID {u}")
            else:
                drop.add(spot)
        for i in sorted(drop, reverse=True):
            del self.uids[i], self.flags[i]

    def fetched(self, seq: int, items: bytes) -> None:
        if not 1 <= seq <= len(self.uids):
            self.error("FETCH for a message never announced", f"{seq} of {len(self.uids)}")
            return
        i = seq - 1
        if (u := _UID.search(items)) is not None:
            uid = int(u.group(1))
            if self.uids[i] is None:
                before = max((x for x in self.uids[:i] if x is not None), default=0)
                after = min((x for x in self.uids[i + 1 :] if x is not None), default=1 << 62)
                if not before < uid < after:
                    self.error("UIDs out of order", f"message {seq} is UID {uid} between {before} and {after}")
                self.uids[i] = uid
            elif self.uids[i] != uid:
                self.error("FETCH UID disagrees with the sequence number", f"{seq}: UID {uid}, was {self.uids[i]}")
        if (f := _FLAGS.search(items)) is not None:
            flags = set(f.group(1).decode().split())
            flags.discard("\\Recent")
            unannounced = {k for k in flags if not k.startswith("\\")} - self.announced
            if unannounced:
                self.error("keyword used without being in FLAGS", f"{sorted(unannounced)} (FLAGS {self.announced})")
            self.flags[i] = frozenset(flags)

    def refresh(self) -> None:
        """Fetch what was only announced (by number: no EXPUNGE may come in between). A message expunged
        elsewhere meanwhile may get no answer (its EXPUNGE comes later): stop when a pass fills nothing."""
        while None in self.uids:
            first, missing = self.uids.index(None) + 1, self.uids.count(None)
            self.run(f"FETCH {first}:* (UID FLAGS)")
            if self.uids.count(None) >= missing:
                return

    # -- the workload --------------------------------------------------------------------------------------

    def pick_flags(self) -> list[str]:
        return self.rnd.sample(FLAG_POOL, self.rnd.randint(1, 3))

    def step(self) -> None:
        r, rnd, n = self.rnd.random(), self.rnd, len(self.uids)
        known = [u for u in self.uids if u is not None]
        if r < 0.15 or not known:
            flags = " ".join(self.pick_flags()) if rnd.random() < 0.5 else ""
            self.run(f"APPEND INBOX ({flags})", simple(rnd.randrange(10**9)))
        elif r < 0.50:
            op = rnd.choice(["+FLAGS", "-FLAGS", "FLAGS"]) + (".SILENT" if rnd.random() < 0.4 else "")
            flags = self.pick_flags()
            if rnd.random() < 0.12:
                flags.append("\\Deleted")
            if rnd.random() < 0.5:
                targets = sorted(rnd.sample(known, min(len(known), rnd.randint(1, 3))))
                command = f"UID STORE {','.join(map(str, targets))} {op} ({' '.join(flags)})"
                seqs = [self.uids.index(u) + 1 for u in targets]
            else:
                seqs = sorted(rnd.sample(range(1, n + 1), min(n, rnd.randint(1, 3))))
                command = f"STORE {','.join(map(str, seqs))} {op} ({' '.join(flags)})"
            if op.endswith(".SILENT"):
                # a client applies its own silent change as it sends it; any FETCH FLAGS in the answer (another
                # session's change, before or after ours) is then the truth and overrides it
                self.apply_silent(seqs, op, set(flags))
            if self.run(command)[0] != "OK":
                self.run("FETCH 1:* (UID FLAGS)")
        elif r < 0.62:
            self.run("EXPUNGE")
        elif r < 0.70:
            self.run(f"UID EXPUNGE {','.join(map(str, rnd.sample(known, min(len(known), 3))))}")
        elif r < 0.78:
            self.run(f"UID MOVE {rnd.choice(known)} Archive")
        elif r < 0.90:
            lo = rnd.randint(1, n)
            self.run(f"FETCH {lo}:{min(n, lo + rnd.randint(0, 5))} (UID FLAGS)")
        else:
            self.run("NOOP")
        self.refresh()

    def apply_silent(self, seqs: list[int], op: str, flags: set[str]) -> None:
        """.SILENT: the server does not echo our own change, so the client applies it to what it knows."""
        for s in seqs:
            old = self.flags[s - 1]
            if old is None:
                continue
            if op.startswith("+"):
                self.flags[s - 1] = old | flags
            elif op.startswith("-"):
                self.flags[s - 1] = old - flags
            else:
                self.flags[s - 1] = frozenset(flags)

    def work(self, steps: int) -> None:
        for _ in range(steps):
            self.step()

    # -- checking against the truth ------------------------------------------------------------------------

    def check(self, truth: list[tuple[int, frozenset[str]]], messages: int, uidnext: int) -> set[int]:
        """NOOP, then the view must be the truth. Returns the UIDs that are \\Recent to this session."""
        self.run("NOOP")
        self.refresh()
        if None in self.uids:
            self.error("FETCH does not answer for an announced message", f"message {self.uids.index(None) + 1}")
        if len(self.uids) != messages:
            self.error("EXISTS disagrees with STATUS MESSAGES", f"{len(self.uids)} != {messages}")
        if self.uids != [u for u, _ in truth]:
            self.error("UIDs differ from the mailbox", f"{self.uids} != {[u for u, _ in truth]}")
        else:
            for uid, (have, (_, want)) in zip(self.uids, zip(self.flags, truth, strict=True), strict=True):
                if have != want:
                    self.error("FLAGS change not reported", f"UID {uid}: {sorted(have or ())} != {sorted(want)}")
        if truth and truth[-1][0] >= uidnext:
            self.error("UIDNEXT not above the last UID", f"{truth[-1][0]} >= {uidnext}")
        _, lines = self.run("UID SEARCH RECENT")
        found = [line for line in lines if line.startswith(b"* SEARCH")]
        return {int(x) for x in found[0].split()[2:]} if found else set()


def truth_of(srv: Tenant) -> tuple[list[tuple[int, frozenset[str]]], int, int]:
    """The mailbox as a fresh read-only session sees it, and STATUS MESSAGES / UIDNEXT."""
    raw = Raw(srv.imap_port)
    try:
        assert raw.cmd("l", f'LOGIN {srv.address} "{srv.password}"')[-1].startswith(b"l OK")
        status = raw.cmd("s", "STATUS INBOX (MESSAGES UIDNEXT)")
        m = re.search(rb"MESSAGES (\d+) UIDNEXT (\d+)", status[0])
        assert m, status
        assert raw.cmd("e", "EXAMINE INBOX")[-1].startswith(b"e OK")
        rows = []
        for line in raw.cmd("f", "UID FETCH 1:* (UID FLAGS)")[:-1]:
            if _FETCH.match(line):
                flags = set(_FLAGS.search(line).group(1).decode().split()) - {"\\Recent"}  # type: ignore[union-attr]
                rows.append((int(_UID.search(line).group(1)), frozenset(flags)))  # type: ignore[union-attr]
        return sorted(rows), int(m.group(1)), int(m.group(2))
    finally:
        raw.close()


def test_concurrent_sessions_track_the_mailbox(tenant: Tenant) -> None:
    seed = Raw(tenant.imap_port)
    assert seed.cmd("l", f'LOGIN {tenant.address} "{tenant.password}"')[-1].startswith(b"l OK")
    for i in range(SEED_MESSAGES):
        msg = simple(i)
        seed.send(b"a APPEND INBOX (%s) {%d+}\r\n" % (b"$Label1" if i % 3 else b"", len(msg)) + msg + b"\r\n")
        assert seed.until("a")[-1].startswith(b"a OK")
    seed.close()
    enables = [None, None, "CONDSTORE", "QRESYNC"]
    clients = [Tracker(tenant, f"c{k}", enables[k], random.Random(1000 + k)) for k in range(CLIENTS)]
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            for _ in range(ROUNDS):
                for future in [pool.submit(c.work, OPS_PER_ROUND) for c in clients]:
                    future.result()
                truth, messages, uidnext = truth_of(tenant)
                recent = [c.check(truth, messages, uidnext) for c in clients]
                for a in range(CLIENTS):
                    for b in range(a + 1, CLIENTS):
                        if both := recent[a] & recent[b]:
                            clients[a].error("\\Recent in two sessions", f"UIDs {sorted(both)} also in c{b}")
        errors = [e for c in clients for e in c.errors]
        kinds = Counter(kind for kind, _ in errors)
        assert not errors, f"{sum(kinds.values())} state-tracking errors: {dict(kinds)}\n" + "\n".join(
            f"  [{kind}] {detail}" for kind, detail in errors[:25])
    finally:
        for c in clients:
            c.raw.close()


@pytest.mark.parametrize("enable", [None, "CONDSTORE"])
def test_silent_store_after_a_change_elsewhere_reports_that_change(tenant: Tenant, enable: str | None) -> None:
    """The race the concurrent run found, made deterministic: B changes a message, then A (not told yet: it sent
    nothing since) stores on it with .SILENT. A's client applies only its own change, so the server must still
    send the message's flags (B's keyword with A's flag); before the fix it took A's write for the only change
    and sent nothing, leaving A's client without ``$FromB`` for good."""
    a, b = (Tracker(tenant, name, enable, random.Random(0)) for name in ("a", "b"))
    try:
        assert a.run("APPEND INBOX ()", simple(1))[0] == "OK"
        a.refresh()
        b.run("NOOP")
        b.refresh()
        assert b.run("STORE 1 +FLAGS ($FromB)")[0] == "OK"
        a.apply_silent([1], "+FLAGS.SILENT", {"\\Seen"})
        _, lines = a.run("STORE 1 +FLAGS.SILENT (\\Seen)")
        assert any(b"$FromB" in line for line in lines), lines
        assert a.flags == [frozenset({"\\Seen", "$FromB"})], a.flags
        # with nothing in between, .SILENT stays silent: no FETCH FLAGS comes back, now or at the next NOOP
        _, lines = a.run("STORE 1 -FLAGS.SILENT ($FromB)")
        _, later = a.run("NOOP")
        assert not any(b"FLAGS" in line for line in lines + later), lines + later
        assert not a.errors + b.errors, a.errors + b.errors
    finally:
        a.raw.close()
        b.raw.close()
