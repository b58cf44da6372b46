"""CATENATE (RFC 4469) end to end through real sockets, on SQLite and PostgreSQL: messages built from TEXT
literals and IMAP URLs (RFC 5092) of messages of the same account, with MULTIAPPEND, large (spooled) TEXT
parts, and the refusals: NO [BADURL url] (other account, wrong UIDVALIDITY, no such message or part, not a
message URL), NO [TOOBIG], BAD syntax; a refused command stores nothing.

One server per backend for the module; each test works in an account of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.imap.e2e_util import Raw, Tenant, serve_shared, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

HEADER = b"From: a@x.test\r\nSubject: original\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
PART1 = b"first part text\r\n"
ORIGINAL = (HEADER + b"--b\r\nContent-Type: text/plain\r\n\r\n" + PART1 + b"--b\r\nContent-Type: text/plain\r\n\r\n"
            b"second\r\n--b--\r\n")
LIMIT = 200_000


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url, imap__max_append_size=LIMIT)


@pytest.fixture
def server(shared: ServerThread) -> Tenant:
    srv = Tenant(shared)
    inbox = srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])
    srv.store.emails.ingest(srv.account.id, ORIGINAL, [inbox.id])
    return srv


@pytest.fixture
def client(server: Tenant) -> Iterator[Raw]:
    c = Raw(server.imap_port)
    assert c.cmd("l", f'LOGIN {server.address} "{server.password}"')[-1].startswith(b"l OK")
    yield c
    c.close()


def uidvalidity(server: Tenant, name: str = "INBOX") -> int:
    return server.store.mailboxes.by_path(server.account.id, [name]).uidvalidity  # type: ignore[attr-defined]


def text(data: bytes) -> bytes:
    return b"TEXT {%d+}\r\n" % len(data) + data


def append(c: Raw, tag: str, body: bytes, mailbox: bytes = b"Drafts") -> bytes:
    c.send(tag.encode() + b" APPEND " + mailbox + b" " + body + b"\r\n")
    return c.until(tag)[-1]


def fetch_body(c: Raw, mailbox: str, uid: int) -> bytes:
    assert c.cmd("s", f"EXAMINE {mailbox}")[-1].startswith(b"s OK")
    c.send(b"f UID FETCH %d BODY.PEEK[]\r\n" % uid)
    first = c.line()
    m = re.search(rb"\{(\d+)\}$", first)
    assert m, first
    n = int(m.group(1))
    while len(c.buf) < n:
        c.buf += c.sock.recv(65536)
    data, c.buf = c.buf[:n], c.buf[n:]
    assert c.until("f")[-1].startswith(b"f OK")
    return data


def messages(c: Raw, mailbox: str = "Drafts") -> int:
    lines = c.cmd("st", f"STATUS {mailbox} (MESSAGES)")
    return int(re.search(rb"MESSAGES (\d+)", lines[0]).group(1))  # type: ignore[union-attr]


def test_capability(client: Raw) -> None:
    assert b" CATENATE" in b" ".join(client.cmd("c", "CAPABILITY"))


def test_build_from_urls_and_text(server: Tenant, client: Raw) -> None:
    v = uidvalidity(server)
    intro = b"Added text\r\n"
    body = (b"(\\Seen) CATENATE (URL \"/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=HEADER\" " % v + text(intro)
            + b" URL \"imap://%s@localhost/inbox/;UID=1/;section=1\"" % server.address.replace("@", "%40").encode()
            + b" URL /INBOX/;UID=1/;SECTION=1/;PARTIAL=0.5)")
    answer = append(client, "a", body)
    assert re.match(rb"a OK \[APPENDUID \d+ 1\]", answer), answer
    # BODY[1] of a multipart ends before the CRLF that belongs to the next boundary (RFC 2046)
    assert fetch_body(client, "Drafts", 1) == HEADER + intro + PART1[:-2] + PART1[:5]


def test_with_multiappend_and_a_large_text_part(server: Tenant, client: Raw) -> None:
    big = (b"x" * 99 + b"\n") * 1500  # 150 kB: past the spool threshold, streamed to a file
    plain = b"Subject: plain\r\n\r\nplain\r\n"
    body = (b"CATENATE (URL /INBOX/;UID=1/;SECTION=HEADER " + text(big) + b") "
            + b"{%d+}\r\n" % len(plain) + plain)
    answer = append(client, "a", body)
    assert re.match(rb"a OK \[APPENDUID \d+ 1:2\]", answer), answer
    assert fetch_body(client, "Drafts", 1) == HEADER + big
    assert fetch_body(client, "Drafts", 2) == plain


@pytest.mark.parametrize("url", [
    "/Nowhere/;UID=1",
    "/INBOX;UIDVALIDITY=1/;UID=1",
    "/INBOX/;UID=9",
    "/INBOX/;UID=1/;SECTION=7",
    "/INBOX/;UID=1/;SECTION=BOGUS",
    "/INBOX/;UID=1/;URLAUTH=anonymous",
    "/INBOX?SUBJECT%20x",
    "INBOX/;UID=1",
    "imap://bob%40example.test@localhost/INBOX/;UID=1",
    "http://localhost/INBOX/;UID=1",
])
def test_badurl(client: Raw, url: str) -> None:
    answer = append(client, "a", b"CATENATE (" + text(b"Subject: x\r\n\r\n") + b' URL "' + url.encode() + b'")')
    assert answer.startswith(b"a NO [BADURL " + url.encode() + b"]"), answer
    assert messages(client) == 0
    assert client.cmd("n", "NOOP")[-1].startswith(b"n OK")


def test_another_accounts_message_is_never_read(server: Tenant, client: Raw) -> None:
    bob = Tenant(server.server, password="pw")
    box = server.store.mailboxes.create(bob.account.id, "Secret")
    server.store.emails.ingest(bob.account.id, b"Subject: bob's secret\r\n\r\nsecret\r\n", [box.id])
    bob_url = bob.address.replace("@", "%40")
    for url in (f"/Secret;UIDVALIDITY={box.uidvalidity}/;UID=1", f"imap://{bob_url}@localhost/Secret/;UID=1"):
        answer = append(client, "a", b'CATENATE (URL "' + url.encode() + b'")')
        assert answer.startswith(b"a NO [BADURL"), answer
    assert messages(client) == 0


def test_multiappend_is_all_or_nothing(client: Raw) -> None:
    plain = b"Subject: plain\r\n\r\nplain\r\n"
    answer = append(client, "a", b"{%d+}\r\n" % len(plain) + plain + b" CATENATE (URL /INBOX/;UID=99)")
    assert answer.startswith(b"a NO [BADURL /INBOX/;UID=99]")
    assert messages(client) == 0


def test_toobig(server: Tenant, client: Raw) -> None:
    half = b"y" * (LIMIT // 2 + 10)
    answer = append(client, "a", b"CATENATE (" + text(half) + b" " + text(half) + b")")
    assert answer.startswith(b"a NO [TOOBIG]"), answer
    inbox = server.store.mailboxes.by_path(server.account.id, ["INBOX"])  # type: ignore[attr-defined]
    server.store.emails.ingest(server.account.id, b"Subject: big\r\n\r\n" + b"z" * LIMIT, [inbox.id])  # type: ignore[attr-defined]
    answer = append(client, "b", b"CATENATE (URL /INBOX/;UID=2)")
    assert answer.startswith(b"b NO [TOOBIG]"), answer
    assert messages(client) == 0
    answer = append(client, "c", b"CATENATE (URL /INBOX/;UID=2/;SECTION=HEADER)")  # a small part of it is fine
    assert answer.startswith(b"c OK"), answer
    assert fetch_body(client, "Drafts", 1) == b"Subject: big\r\n\r\n"


def test_big_url_parts_are_streamed(server: Tenant, client: Raw, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts past the inline budget are located, then copied a chunk per store read (small numbers here)."""
    from janusmail.imap.commands import catenate

    monkeypatch.setattr(catenate, "INLINE_TOTAL", 1000)
    monkeypatch.setattr(catenate, "CHUNK", 4096)
    body = b"".join(b"line %05d of a long body\r\n" % i for i in range(4000))  # ~100 kB
    big = b"Subject: long\r\n\r\n" + body
    inbox = server.store.mailboxes.by_path(server.account.id, ["INBOX"])  # type: ignore[attr-defined]
    server.store.emails.ingest(server.account.id, big, [inbox.id])  # type: ignore[attr-defined]
    answer = append(client, "a", b"CATENATE (URL /INBOX/;UID=2/;SECTION=HEADER URL /INBOX/;UID=2/;SECTION=TEXT "
                    + text(b"--\r\n") + b" URL /INBOX/;UID=2/;PARTIAL=10.20000 URL /INBOX/;UID=1/;SECTION=1)")
    assert answer.startswith(b"a OK"), answer
    assert fetch_body(client, "Drafts", 1) == big + b"--\r\n" + big[10:20010] + PART1[:-2]


@pytest.mark.parametrize("body", [b"CATENATE ()", b'CATENATE (TEXT "quoted")', b"CATENATE (FOO x)",
                                  b"CATENATE URL /INBOX/;UID=1", b"CATENATE (URL)", b"CATENATE"])
def test_syntax_errors_are_bad(client: Raw, body: bytes) -> None:
    assert append(client, "a", body).startswith(b"a BAD")
    assert client.cmd("n", "NOOP")[-1].startswith(b"n OK")


def test_empty_result_is_no(client: Raw) -> None:
    assert append(client, "a", b"CATENATE (" + text(b"") + b")").startswith(b"a NO")
