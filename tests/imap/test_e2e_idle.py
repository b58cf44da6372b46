"""Live updates: IDLE sees deliveries (store and LMTP), flag changes and expunges made elsewhere within a
second; outside IDLE they arrive at command boundaries, with EXPUNGE held back during FETCH/STORE/SEARCH;
QRESYNC gets VANISHED; IMAP4rev1 sessions get RECENT."""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import Iterator

import aioimaplib
import pytest

from tests.imap.e2e_util import ADDRESS, Raw, Tenant, serve_shared, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    return Tenant(shared_server)


@pytest.fixture(scope="module")
def shared_pg_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def pg_server(shared_pg_server: ServerThread) -> Tenant:
    return Tenant(shared_pg_server)


def inbox(srv: ServerThread):  # noqa: ANN201
    return srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])


def deliver(srv: ServerThread, i: int = 0) -> int:
    box = inbox(srv)
    d = srv.run(srv.store.deliver(srv.account.id, simple(i), (box.id,)))
    return d.uids[box.id]


#: How long to wait for something that should happen: generous, because a busy machine is slow, not broken.
WAIT = 30.0


def settle(srv: ServerThread) -> None:
    """Wait until the server loop has run every callback queued so far.

    The notifier hands each change to the loop with ``call_soon_threadsafe`` and the loop runs those in order,
    so once a no-op scheduled now has run, every session has the events of writes that already returned.
    This is the event a test waits for instead of sleeping "long enough".
    """

    async def noop() -> None:
        return None

    srv.run(noop())


def read_until(raw: Raw, pattern: bytes, timeout: float = WAIT) -> list[bytes]:
    """Lines until one matches ``pattern`` (regex), failing if that takes longer than ``timeout``."""
    raw.sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    lines = []
    try:
        while True:
            line = raw.line()
            lines.append(line)
            if re.search(pattern, line):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout}s: {lines}")
    except TimeoutError:
        raise AssertionError(f"no {pattern!r} within {timeout}s: {lines}") from None
    finally:
        raw.sock.settimeout(30)


def logged_in(srv: ServerThread, select: str | None = "INBOX") -> Raw:
    raw = Raw(srv.imap_port)
    assert raw.cmd("a", f'LOGIN {srv.address} "{srv.password}"')[-1].startswith(b"a OK")
    if select:
        assert raw.cmd("s", f"SELECT {select}")[-1].startswith(b"s OK")
    return raw


def test_idle_sees_store_delivery(pg_server: Tenant) -> None:
    raw = logged_in(pg_server)
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    deliver(pg_server)
    read_until(raw, rb"^\* 1 EXISTS$")
    raw.send(b"DONE\r\n")
    out = raw.until("i")
    assert out[-1] == b"i OK IDLE terminated"
    raw.close()


def test_idle_sees_lmtp_delivery(server: Tenant) -> None:
    raw = logged_in(server)
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    with smtplib.LMTP("127.0.0.1", server.lmtp_port) as lmtp:
        lmtp.sendmail("sender@example.test", [server.address], simple(1))
    lines = read_until(raw, rb"^\* 1 EXISTS$")
    assert b"* 1 RECENT" in lines or read_until(raw, rb"^\* 1 RECENT$")
    raw.send(b"DONE\r\n")
    assert raw.until("i")[-1] == b"i OK IDLE terminated"
    raw.close()


def test_idle_sees_append_from_another_client(server: Tenant) -> None:
    raw = logged_in(server)
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    other = logged_in(server, select=None)
    msg = simple(8)
    other.send(b"a APPEND INBOX (\\Flagged) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert other.until("a")[-1].startswith(b"a OK")
    read_until(raw, rb"^\* 1 EXISTS$")
    raw.send(b"DONE\r\n")
    assert raw.until("i")[-1] == b"i OK IDLE terminated"
    other.close()
    raw.close()


def test_idle_flags_and_expunge_from_elsewhere(server: Tenant) -> None:
    deliver(server, 1)
    deliver(server, 2)
    raw = logged_in(server)
    raw.cmd("e", "ENABLE CONDSTORE")
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    box = inbox(server)
    res = server.store.memberships.store_flags(server.account.id, box.id, [(2, 2)], "add", ["$seen", "Work"], None)
    line = read_until(raw, rb"FETCH")[-1]
    assert line == b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent Work) MODSEQ (%d))" % res.modseq
    server.store.memberships.store_flags(server.account.id, box.id, [(1, 1)], "add", [], True)
    server.store.memberships.expunge(server.account.id, box.id)
    lines = read_until(raw, rb"EXPUNGE")
    assert lines[-1] == b"* 1 EXPUNGE"
    raw.send(b"DONE\r\n")
    assert raw.until("i")[-1] == b"i OK IDLE terminated"
    out = raw.cmd("n", "NOOP")
    assert out == [b"n OK NOOP completed"]  # nothing reported twice
    raw.close()


def test_idle_in_authenticated_state(server: Tenant) -> None:
    raw = logged_in(server, select=None)
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    deliver(server)
    raw.send(b"DONE\r\n")
    assert raw.until("i") == [b"i OK IDLE terminated"]
    raw.close()


def test_idle_bad_continuation(server: Tenant) -> None:
    raw = logged_in(server)
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    raw.send(b"NOT DONE\r\n")
    assert raw.until("i")[-1].startswith(b"i BAD")
    assert raw.cmd("n", "NOOP")[-1] == b"n OK NOOP completed"
    raw.close()


def test_updates_at_command_boundaries(server: Tenant) -> None:
    deliver(server, 1)
    deliver(server, 2)
    deliver(server, 3)
    raw = logged_in(server)
    box = inbox(server)
    server.store.memberships.store_flags(server.account.id, box.id, [(2, 2)], "add", [], True)
    server.store.memberships.expunge(server.account.id, box.id)
    uid4 = deliver(server, 4)
    assert uid4 == 4
    settle(server)
    # FETCH must not announce the expunge (sequence numbers would shift under it), but new mail is fine
    out = raw.cmd("f", "FETCH 1 (UID)")
    assert not any(b"EXPUNGE" in line for line in out), out
    assert b"* 4 EXISTS" in out
    out = raw.cmd("n", "NOOP")
    assert b"* 2 EXPUNGE" in out
    out = raw.cmd("n2", "NOOP")
    assert out == [b"n2 OK NOOP completed"]
    raw.close()


def test_uid_fetch_may_announce_expunge(server: Tenant) -> None:
    deliver(server, 1)
    deliver(server, 2)
    raw = logged_in(server)
    box = inbox(server)
    server.store.memberships.store_flags(server.account.id, box.id, [(1, 1)], "add", [], True)
    server.store.memberships.expunge(server.account.id, box.id)
    settle(server)
    out = raw.cmd("f", "UID FETCH 1:* (FLAGS)")
    assert b"* 1 EXPUNGE" in out
    raw.close()


def test_qresync_select_and_vanished(server: Tenant) -> None:
    for i in range(5):
        deliver(server, i)
    raw = logged_in(server, select=None)
    raw.cmd("e", "ENABLE QRESYNC")
    out = raw.cmd("s", "SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"\n".join(out)).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(out)).group(1))
    raw.cmd("u", "UNSELECT")
    box = inbox(server)
    server.store.memberships.store_flags(server.account.id, box.id, [(2, 3)], "add", [], True)
    server.store.memberships.expunge(server.account.id, box.id)
    server.store.memberships.store_flags(server.account.id, box.id, [(5, 5)], "add", ["$flagged"], None)
    out = raw.cmd("q", f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert b"* VANISHED (EARLIER) 2:3" in out
    assert any(re.fullmatch(rb"\* 3 FETCH \(UID 5 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)", line) for line in out), out
    assert b"* 3 EXISTS" in out
    # while selected, an expunge elsewhere is a VANISHED (not EXPUNGE) under QRESYNC
    server.store.memberships.store_flags(server.account.id, box.id, [(4, 4)], "add", [], True)
    server.store.memberships.expunge(server.account.id, box.id)
    out = raw.cmd("n", "NOOP")
    assert b"* VANISHED 4" in out and not any(b"EXPUNGE" in line for line in out)
    raw.close()


def test_own_append_to_selected_mailbox_announced(server: Tenant) -> None:
    raw = logged_in(server)
    msg = simple(3)
    raw.send(b"a APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    out = raw.until("a")
    assert out[0] == b"* 1 EXISTS" and out[-1].startswith(b"a OK [APPENDUID ")
    # a delivery to another mailbox does not wake this session's sync, but one to INBOX does
    other = server.store.mailboxes.by_path(server.account.id, ["Sent"])
    server.store.emails.ingest(server.account.id, simple(4), (other.id,))
    assert raw.cmd("n", "NOOP") == [b"n OK NOOP completed"]
    deliver(server, 5)
    settle(server)
    assert b"* 2 EXISTS" in raw.cmd("f", "UID FETCH 1 (FLAGS)")
    raw.close()


def test_qresync_requires_enable(server: Tenant) -> None:
    raw = logged_in(server, select=None)
    assert raw.cmd("q", "SELECT INBOX (QRESYNC (1 1))")[-1].startswith(b"q BAD")
    raw.close()


def test_recent_for_rev1_not_rev2(server: Tenant) -> None:
    deliver(server, 1)
    raw = logged_in(server, select=None)
    out = raw.cmd("s", "SELECT INBOX")
    assert b"* 1 RECENT" in out
    other = logged_in(server, select=None)
    out = other.cmd("s", "SELECT INBOX")
    assert b"* 0 RECENT" in out  # the first session claimed it
    deliver(server, 2)
    out = raw.cmd("n", "NOOP")
    assert b"* 2 EXISTS" in out and b"* 2 RECENT" in out
    other.cmd("e", "ENABLE IMAP4rev2")
    deliver(server, 3)
    out = other.cmd("n", "NOOP")
    assert b"* 3 EXISTS" in out and not any(b"RECENT" in line for line in out)
    raw.close()
    other.close()


def test_mailbox_deleted_under_selected_session(server: Tenant) -> None:
    a = logged_in(server, select=None)
    a.cmd("c", "CREATE Doomed")
    a.cmd("s", "SELECT Doomed")
    b = logged_in(server, select=None)
    assert b.cmd("d", "DELETE Doomed")[-1].startswith(b"d OK")
    a.send(b"n NOOP\r\n")
    assert a.line().startswith(b"* BYE")
    with pytest.raises(EOFError):
        a.line()
    a.close()
    b.close()


def test_mailbox_deleted_under_an_idling_session(server: Tenant) -> None:
    """The same while the session idles: BYE, then the server closes (it waited for the idle timeout, 30 min,
    holding the connection's slots)."""
    a = logged_in(server, select=None)
    a.cmd("c", "CREATE Doomed2")
    a.cmd("s", "SELECT Doomed2")
    a.send(b"i IDLE\r\n")
    assert a.line().startswith(b"+ ")
    b = logged_in(server, select=None)
    assert b.cmd("d", "DELETE Doomed2")[-1].startswith(b"d OK")
    assert a.line().startswith(b"* BYE")
    with pytest.raises(EOFError):
        a.line()
    a.close()
    b.close()


async def test_aioimaplib_idle(server: Tenant) -> None:
    client = aioimaplib.IMAP4(host="127.0.0.1", port=server.imap_port, timeout=30)
    await client.wait_hello_from_server()
    await client.login(server.address, server.password)
    await client.select("INBOX")
    idle = await client.idle_start(timeout=120)  # returns once the server has answered "+ idling"
    import asyncio

    box = inbox(server)
    await asyncio.to_thread(server.store.emails.ingest, server.account.id, simple(7), (box.id,))
    pushed = await asyncio.wait_for(client.wait_server_push(), WAIT)
    assert any(b"EXISTS" in (p if isinstance(p, bytes) else str(p).encode()) for p in pushed)
    client.idle_done()
    assert (await asyncio.wait_for(idle, WAIT)).result == "OK"
    await client.logout()


@pytest.mark.slow
def test_select_100k_sees_every_message(tmp_path) -> None:  # noqa: ANN001
    """A 100k-message snapshot loads whole and maps sequence numbers right. How fast: bench/imap.py (SELECT on
    a 100,000-message INBOX); a wall-clock bound here would fail on a busy machine, not on slow code."""
    from janusmail.imap.selected import SelectedMailbox
    from janusmail.store.schema import messages
    from janusmail.store.store import Store

    store = Store.open(tmp_path / "data", fsync=False)
    try:
        acct = store.accounts.create(ADDRESS, "x")
        box = store.mailboxes.by_path(acct.id, ["INBOX"])
        first = store.emails.ingest(acct.id, simple(0), (box.id,))
        # 100k memberships of one email: a big snapshot, without parsing 100k messages
        with store.engine.begin() as conn:
            conn.execute(messages.insert(), [
                {"mailbox_id": box.id, "uid": u, "email_id": first.email_id, "deleted": False, "modseq": 2}
                for u in range(2, 100_001)
            ])
            conn.exec_driver_sql(f"UPDATE mailboxes SET uidnext = 100001 WHERE id = '{box.id}'")
        box = store.mailboxes.get(acct.id, box.id)
        first_look = SelectedMailbox.load(store, box, readonly=True, claim_recent=False)
        sel = SelectedMailbox.load(store, box, readonly=False, claim_recent=True)  # second load: the cached path
        for s in (first_look, sel):
            assert s.exists == 100_000
            assert (s.seq_to_uid(1), s.seq_to_uid(50_000), s.seq_to_uid(100_000)) == (1, 50_000, 100_000)
    finally:
        store.close()


def test_many_idlers_one_change_each_told_right(server: Tenant) -> None:
    """One delivery and one flag change wake 20 IDLE sessions of one mailbox (their catch-up is one shared read,
    janusmail/store/mailbox_deltas.py): each is told ``* 3 EXISTS`` and the FETCH in its own dialect, and
    exactly one IMAP4rev1 session gets the new message as \\Recent."""
    deliver(server, 1)
    early = [logged_in(server) for _ in range(10)]  # selected before message 2
    deliver(server, 2)
    late = [logged_in(server, select=None) for _ in range(10)]
    for raw in late:
        assert raw.cmd("e", "ENABLE IMAP4rev2 CONDSTORE")[-1].startswith(b"e OK")
        assert raw.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
    sessions = early + late
    for raw in sessions:
        raw.send(b"i IDLE\r\n")
        assert raw.line() == b"+ idling"
    for raw in early:
        read_until(raw, rb"^\* 2 EXISTS$")  # the forced check at IDLE's start
    deliver(server, 3)
    for raw in sessions:
        read_until(raw, rb"^\* 3 EXISTS$")
    box = inbox(server)
    res = server.store.memberships.store_flags(server.account.id, box.id, [(1, 1)], "add", ["$seen"], None)
    for raw in early:
        line = read_until(raw, rb"FETCH")[-1]
        assert re.fullmatch(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Seen( \\Recent)?\)\)", line), line
    for raw in late:
        line = read_until(raw, rb"FETCH")[-1]
        assert line == b"* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (%d))" % res.modseq
    recent = 0
    for raw in sessions:
        raw.send(b"DONE\r\n")
        assert raw.until("i")[-1] == b"i OK IDLE terminated"
        out = raw.cmd("f", "FETCH 3 (FLAGS)")
        assert out[-1].startswith(b"f OK")
        recent += sum(b"\\Recent" in line for line in out if line.startswith(b"* 3 FETCH"))
        raw.close()
    assert recent == 1
