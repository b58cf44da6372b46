"""PARTIAL (RFC 9394) end to end on SQLite and PostgreSQL: SEARCH / UID SEARCH RETURN (PARTIAL ...) with windows
from the front and from the end, reversed and out of range, with COUNT, through the session's snapshot (message
numbers, an expunge another session made); SORT RETURN (PARTIAL ...); the UID FETCH (PARTIAL ...) modifier; and
the refusals (RFC 9394 §3.1 and §4 grammar).

One server per backend for the module; each test works in an account of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.imap.e2e_util import Raw, Tenant, serve_shared, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

N = 25


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    """An account of this test's own on the module's server, its INBOX holding the N messages."""
    srv = Tenant(shared_server)
    inbox = srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])
    for i in range(N):  # UIDs 1..25; the odd UIDs are \Seen
        srv.store.emails.ingest(srv.account.id, simple(i), [inbox.id],
                                ["$seen"] if i % 2 == 0 else [], 1_700_000_000 - i * 60)
    return srv


def client(srv: Tenant) -> Raw:
    c = Raw(srv.imap_port)
    assert c.cmd("l", f'LOGIN {srv.address} "{srv.password}"')[-1].startswith(b"l OK")
    assert c.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
    return c


def esearch(c: Raw, tag: str, command: str) -> bytes:
    out = c.cmd(tag, command)
    assert out[-1].startswith(tag.encode() + b" OK"), out
    (line,) = [x for x in out if x.startswith(b"* ESEARCH")]
    return line


def test_search_partial_windows(server: Tenant):
    c = client(server)
    try:
        assert b" PARTIAL" in c.cmd("c", "CAPABILITY")[0]
        assert esearch(c, "a", "UID SEARCH RETURN (PARTIAL 1:5) ALL") == b'* ESEARCH (TAG "a") UID PARTIAL (1:5 1:5)'
        assert esearch(c, "b", "UID SEARCH RETURN (PARTIAL -1:-5) ALL") == (
            b'* ESEARCH (TAG "b") UID PARTIAL (-1:-5 21:25)')
        assert esearch(c, "c", "UID SEARCH RETURN (PARTIAL 5:1) SEEN") == (  # 5:1 is 1:5
            b'* ESEARCH (TAG "c") UID PARTIAL (1:5 1,3,5,7,9)')
        assert esearch(c, "d", "UID SEARCH RETURN (PARTIAL -2:-3 COUNT) SEEN") == (
            b'* ESEARCH (TAG "d") UID COUNT 13 PARTIAL (-2:-3 21,23)')
        # 12 unseen messages (even UIDs): a window reaching past the end is cut, one wholly past it is NIL
        assert esearch(c, "e", "UID SEARCH RETURN (PARTIAL 10:20) UNSEEN") == (
            b'* ESEARCH (TAG "e") UID PARTIAL (10:20 20,22,24)')
        assert esearch(c, "f", "UID SEARCH RETURN (PARTIAL 13:20 COUNT) UNSEEN") == (
            b'* ESEARCH (TAG "f") UID COUNT 12 PARTIAL (13:20 NIL)')
        assert esearch(c, "g", "UID SEARCH RETURN (PARTIAL -12:-40) UNSEEN") == (
            b'* ESEARCH (TAG "g") UID PARTIAL (-12:-40 2)')
        assert esearch(c, "h", "UID SEARCH RETURN (PARTIAL -13:-40) UNSEEN") == (
            b'* ESEARCH (TAG "h") UID PARTIAL (-13:-40 NIL)')
        # full-text keys go through SQL with LIMIT/OFFSET
        assert esearch(c, "i", "UID SEARCH RETURN (PARTIAL -1:-2) BODY message") == (
            b'* ESEARCH (TAG "i") UID PARTIAL (-1:-2 24:25)')
    finally:
        c.close()


def test_search_partial_message_numbers_follow_the_snapshot(server: Tenant):
    c, other = client(server), client(server)
    try:
        assert c.cmd("d", "STORE 1:3 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"d OK")
        assert c.cmd("x", "EXPUNGE")[-1].startswith(b"x OK")  # UIDs 1-3 gone; 22 messages left
        assert esearch(c, "a", "SEARCH RETURN (PARTIAL 1:3) ALL") == b'* ESEARCH (TAG "a") PARTIAL (1:3 1:3)'
        assert esearch(c, "b", "SEARCH RETURN (PARTIAL -1:-2) SEEN") == b'* ESEARCH (TAG "b") PARTIAL (-1:-2 20,22)'
        # the other session has not been told about the expunge yet: its message numbers are the old ones,
        # and the expunged messages are not matches any more (SEARCH holds EXPUNGE back)
        out = other.cmd("c", "SEARCH RETURN (PARTIAL 1:2) ALL")
        assert out[0] == b'* ESEARCH (TAG "c") PARTIAL (1:2 4:5)'
        assert not any(b"EXPUNGE" in line for line in out)
    finally:
        c.close()
        other.close()


def test_sort_partial(server: Tenant):
    c = client(server)
    try:
        # ARRIVAL order is the reverse of UID order here (each message arrived a minute before the previous one)
        assert esearch(c, "a", "UID SORT RETURN (PARTIAL 1:3) (ARRIVAL) UTF-8 ALL") == (
            b'* ESEARCH (TAG "a") UID PARTIAL (1:3 25,24,23)')
        assert esearch(c, "b", "UID SORT RETURN (PARTIAL -1:-2 COUNT) (ARRIVAL) UTF-8 SEEN") == (
            b'* ESEARCH (TAG "b") UID COUNT 13 PARTIAL (-1:-2 3,1)')
        assert esearch(c, "c", "SORT RETURN (PARTIAL 30:40) (REVERSE ARRIVAL) UTF-8 ALL") == (
            b'* ESEARCH (TAG "c") PARTIAL (30:40 NIL)')
    finally:
        c.close()


def test_fetch_partial_modifier(server: Tenant):
    c = client(server)
    try:
        out = c.cmd("a", "UID FETCH 1:* (FLAGS) (PARTIAL -1:-3)")
        assert [line.split(b" (")[0] for line in out[:-1]] == [b"* 23 FETCH", b"* 24 FETCH", b"* 25 FETCH"]
        assert out[-1].startswith(b"a OK")
        out = c.cmd("b", "UID FETCH 5:9,20:* (UID) (PARTIAL 2:4)")
        assert out[:-1] == [b"* 6 FETCH (UID 6)", b"* 7 FETCH (UID 7)", b"* 8 FETCH (UID 8)"]
        out = c.cmd("c", "FETCH 1:5 (UID) (PARTIAL 10:20)")
        assert out == [b"c OK FETCH completed"]
        top = c.cmd("t", "FETCH 25 (MODSEQ)")
        m = re.search(rb"MODSEQ \((\d+)\)", b"".join(top))
        assert m, top
        assert c.cmd("m", "STORE 22,24 +FLAGS.SILENT (\\Flagged)")[-1].startswith(b"m OK")
        # with CHANGEDSINCE the window counts the changed messages only
        out = c.cmd("d", f"UID FETCH 1:* (UID) (CHANGEDSINCE {int(m.group(1))} PARTIAL -1:-1)")
        assert len(out) == 2 and out[0].startswith(b"* 24 FETCH (UID 24 MODSEQ"), out
        out = c.cmd("e", f"UID FETCH 1:* (UID) (CHANGEDSINCE {int(m.group(1))} PARTIAL 3:4)")
        assert out == [b"e OK FETCH completed"]
    finally:
        c.close()


REFUSED = [
    "SEARCH RETURN (PARTIAL 1:5 ALL) ALL",
    "SEARCH RETURN (ALL PARTIAL 1:5) ALL",
    "SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL",
    "SEARCH RETURN (ALL ALL) ALL",
    "SEARCH RETURN (PARTIAL) ALL",
    "SEARCH RETURN (PARTIAL 0:5) ALL",
    "SEARCH RETURN (PARTIAL 1:*) ALL",
    "SEARCH RETURN (PARTIAL -1:5) ALL",
    "SEARCH RETURN (PARTIAL 5) ALL",
    'SEARCH RETURN (PARTIAL "1:5") ALL',
    "SEARCH RETURN (PARTIAL 1:4294967296) ALL",
    "SORT RETURN (PARTIAL 1:2 ALL) (DATE) UTF-8 ALL",
    "UID FETCH 1:* FLAGS (PARTIAL 1:5 PARTIAL 1:2)",
    "UID FETCH 1:* FLAGS (PARTIAL)",
]


def test_refusals(server: Tenant):
    c = client(server)
    try:
        for i, command in enumerate(REFUSED):
            out = c.cmd(f"x{i}", command)
            assert out[-1].startswith(f"x{i} BAD".encode()), (command, out)
            assert c.cmd(f"n{i}", "NOOP")[-1] == f"n{i} OK NOOP completed".encode()
    finally:
        c.close()
