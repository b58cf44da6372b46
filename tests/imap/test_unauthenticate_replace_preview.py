"""UNAUTHENTICATE (RFC 8437), REPLACE / UID REPLACE (RFC 8508) and FETCH PREVIEW (RFC 8970) end to end, through
real sockets on SQLite and PostgreSQL (imaplib and a raw client for exact answers). One server per backend for
the module; each test's Alice and Bob are accounts of its own (the connection cap is per account)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.imap.e2e_util import Raw, Tenant, serve, serve_shared, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

BOB_PASSWORD = "bob's own long password"


def message(subject: str, body: str = "Hello there.") -> bytes:
    return f"From: carol@example.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url, imap__max_connections_per_account=1)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    """Alice (the tenant) and Bob (``server.bob``): accounts of this test's own on the module's server."""
    srv = Tenant(shared_server)
    bob = srv.bob = Tenant(shared_server, BOB_PASSWORD)
    inbox = srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])
    bob_inbox = srv.store.mailboxes.by_path(bob.account.id, ["INBOX"])
    srv.store.emails.ingest(srv.account.id, message("alice one"), [inbox.id])
    srv.store.emails.ingest(srv.account.id, message("alice two"), [inbox.id])
    srv.store.emails.ingest(bob.account.id, message("for bob only", "Bob's secret plans."), [bob_inbox.id])
    return srv


def client(srv: Tenant, user: str | None = None, password: str | None = None) -> Raw:
    c = Raw(srv.imap_port)
    assert c.cmd("l", f'LOGIN {user or srv.address} "{password or srv.password}"')[-1].startswith(b"l OK")
    return c


def literal_cmd(c: Raw, tag: str, head: str, data: bytes) -> list[bytes]:
    c.send(f"{tag} {head} {{{len(data)}}}\r\n".encode())
    assert c.line().startswith(b"+ ")
    c.send(data + b"\r\n")
    return c.until(tag)


# -- UNAUTHENTICATE ---------------------------------------------------------------------------------------------


def test_unauthenticate_then_another_user(server: Tenant):
    c = client(server)
    try:
        caps = c.cmd("c", "CAPABILITY")[0]
        assert b" UNAUTHENTICATE" in caps
        assert c.cmd("e", "ENABLE CONDSTORE")[0] == b"* ENABLED CONDSTORE"
        assert c.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
        done = c.cmd("u", "UNAUTHENTICATE")
        assert done[-1].startswith(b"u OK [CAPABILITY ")
        assert b"AUTH=" in done[-1]
        # not authenticated any more: commands of the authenticated state are refused, CAPABILITY is the
        # pre-login one
        assert c.cmd("f", "FETCH 1 FLAGS")[-1].startswith(b"f BAD")
        assert c.cmd("x", "SELECT INBOX")[-1].startswith(b"x BAD")
        greeting = re.search(rb"\[CAPABILITY ([^\]]*)\]", c.greeting)
        assert greeting is not None
        assert c.cmd("c2", "CAPABILITY")[0] == b"* CAPABILITY " + greeting.group(1)
        # the connection slot of Alice's account was given back (the cap is 1 connection per account)
        other = client(server)
        other.cmd("o", "LOGOUT")
        other.close()
        # Bob logs in on the same connection (pipelined behind another UNAUTHENTICATE: no layer to wait for)
        # and sees only his mail; ENABLE state did not carry over
        assert c.cmd("l1", f'LOGIN {server.bob.address} "{server.bob.password}"')[-1].startswith(b"l1 OK")  # Bob's one slot...
        c.send(f'u1 UNAUTHENTICATE\r\nl2 LOGIN {server.bob.address} "{server.bob.password}"\r\n'.encode())
        assert c.until("u1")[-1].startswith(b"u1 OK")
        assert c.until("l2")[-1].startswith(b"l2 OK")  # ...given back by UNAUTHENTICATE before this LOGIN
        sel = c.cmd("s2", "SELECT INBOX")
        assert b"* 1 EXISTS" in sel
        assert c.cmd("e2", "ENABLE CONDSTORE")[0] == b"* ENABLED CONDSTORE"  # it was off again
        found = c.cmd("f2", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        text = b"\n".join(found)
        assert b"for bob only" in text and b"alice" not in text
        assert c.cmd("z", "UNAUTHENTICATE")[-1].startswith(b"z OK")
        assert c.cmd("z2", "UNAUTHENTICATE")[-1].startswith(b"z2 BAD")  # not valid before login
    finally:
        c.close()


# -- REPLACE ------------------------------------------------------------------------------------------------------


def test_replace_in_selected_mailbox(server: Tenant):
    c = client(server)
    watcher = client(server, server.bob.address, server.bob.password)  # another account: must see nothing of it
    watcher.cmd("ws", "SELECT INBOX")
    try:
        assert b" REPLACE" in c.cmd("c", "CAPABILITY")[0]
        assert c.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
        out = literal_cmd(c, "r", "REPLACE 1 INBOX (\\Seen $Edited)", message("alice one, edited"))
        assert re.match(rb"\* OK \[APPENDUID \d+ 3\]", out[0]), out
        assert b"* 1 EXPUNGE" in out
        assert b"* 2 EXISTS" in out
        assert out[-1].startswith(b"r OK")
        got = b"\n".join(c.cmd("f", "UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        assert b"alice one, edited" in got and b"Subject: alice one\r" not in got
        assert re.search(rb"UID 3 FLAGS \([^)]*\\Seen[^)]*\$Edited\)", got), got
        # UID REPLACE of a UID that does not exist: NO, nothing stored
        miss = literal_cmd(c, "r2", "UID REPLACE 99 INBOX", message("nope"))
        assert miss[-1].startswith(b"r2 NO")
        assert c.cmd("n", "NOOP") == [b"n OK NOOP completed"]
        # a sequence number past the end: BAD
        assert literal_cmd(c, "r3", "REPLACE 7 INBOX", message("nope"))[-1].startswith(b"r3 BAD")
        # the target mailbox must exist
        assert b"[TRYCREATE]" in literal_cmd(c, "r4", "REPLACE 1 Nowhere", message("nope"))[-1]
        assert watcher.cmd("wn", "NOOP") == [b"wn OK NOOP completed"]
    finally:
        c.close()
        watcher.close()


def test_uid_replace_into_another_mailbox(server: Tenant):
    c = client(server)
    try:
        c.cmd("e", "ENABLE QRESYNC")
        assert c.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
        out = literal_cmd(c, "r", "UID REPLACE 2 Drafts (\\Draft)", message("draft v2"))
        assert re.match(rb"\* OK \[APPENDUID \d+ 1\]", out[0]), out
        assert b"* VANISHED 2" in out  # QRESYNC: VANISHED instead of EXPUNGE
        assert not any(b"EXISTS" in line for line in out)  # the new message went to Drafts
        assert out[-1].startswith(b"r OK")
        status = c.cmd("st", "STATUS Drafts (MESSAGES)")
        assert b"(MESSAGES 1)" in status[0]
        assert c.cmd("ex", "EXAMINE INBOX")[-1].startswith(b"ex OK")
        assert literal_cmd(c, "ro", "REPLACE 1 INBOX", message("x"))[-1].startswith(b"ro NO")  # read-only
    finally:
        c.close()


def test_replace_seen_by_another_session(tmp_path, db_url):  # noqa: ANN001
    for srv in serve(tmp_path, db_url):
        inbox = srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])  # type: ignore[attr-defined]
        srv.store.emails.ingest(srv.account.id, message("v1"), [inbox.id])  # type: ignore[attr-defined]
        a, b = client(srv), client(srv)
        try:
            a.cmd("s", "SELECT INBOX")
            b.cmd("s", "SELECT INBOX")
            assert literal_cmd(a, "r", "REPLACE 1 INBOX", message("v2"))[-1].startswith(b"r OK")
            seen = b.cmd("n", "NOOP")
            assert b"* 1 EXPUNGE" in seen and b"* 1 EXISTS" in seen, seen
            got = b"\n".join(b.cmd("f", "FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
            assert b"UID 2 " in got and b"Subject: v2" in got
        finally:
            a.close()
            b.close()


def test_replace_with_a_spooled_literal(tmp_path, db_url):  # noqa: ANN001
    """A message above ``[spool] threshold`` reaches REPLACE as a spool file, as APPEND's does."""
    for srv in serve(tmp_path, db_url, spool__threshold=32 * 1024):
        inbox = srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])  # type: ignore[attr-defined]
        srv.store.emails.ingest(srv.account.id, message("small"), [inbox.id])  # type: ignore[attr-defined]
        big = message("big", "x" * 78 + "\r\n") + b"y" * 78 * 3000 + b"\r\n"
        c = client(srv)
        try:
            c.cmd("s", "SELECT INBOX")
            out = literal_cmd(c, "r", "UID REPLACE 1 INBOX", big)
            assert out[-1].startswith(b"r OK"), out
            size = c.cmd("f", "UID FETCH 2 (RFC822.SIZE)")[0]
            assert size == b"* 1 FETCH (UID 2 RFC822.SIZE %d)" % len(big)
        finally:
            c.close()


# -- PREVIEW ------------------------------------------------------------------------------------------------------


def test_fetch_preview(server: Tenant):
    inbox = server.store.mailboxes.by_path(server.account.id, ["INBOX"])  # type: ignore[attr-defined]
    long_body = "Über   den\r\n\r\nWolken " + "word " * 200
    raw = (b"From: carol@example.test\r\nSubject: long\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + long_body.encode() + b"\r\n")
    server.store.emails.ingest(server.account.id, raw, [inbox.id])  # type: ignore[attr-defined]
    c = client(server)
    try:
        assert b" PREVIEW" in c.cmd("c", "CAPABILITY")[0]
        c.cmd("s", "SELECT INBOX")
        first = c.cmd("p", "FETCH 1 (PREVIEW)")
        assert first[0] == b'* 1 FETCH (PREVIEW "Hello there.")'
        both = c.cmd("b", "FETCH 1:2 (PREVIEW ENVELOPE BODY.PEEK[TEXT])")  # with a body: the other renderer
        assert both[0].startswith(b'* 1 FETCH (PREVIEW "Hello there." ENVELOPE (')
        assert both[0].endswith(b"BODY[TEXT] {14}") and both[1:3] == [b"Hello there.", b")"]
        lazy = c.cmd("q", "UID FETCH 2 PREVIEW (LAZY)")
        assert lazy[0] == b'* 2 FETCH (UID 2 PREVIEW "Hello there.")'
        # non-ASCII text goes out as a literal to an IMAP4rev1 client, quoted after ENABLE UTF8=ACCEPT
        out = c.cmd("u", "FETCH 3 PREVIEW")
        m = re.match(rb"\* 3 FETCH \(PREVIEW \{(\d+)\}$", out[0])
        assert m, out
        preview = out[1][: int(m.group(1))].decode()
        assert out[1][int(m.group(1)):] == b")"
        assert preview.startswith("Über den Wolken word word")
        assert 200 < len(preview) <= 256 and "  " not in preview
        c.cmd("en", "ENABLE UTF8=ACCEPT")
        assert c.cmd("u2", "FETCH 3 PREVIEW")[0].startswith('* 3 FETCH (PREVIEW "Über den Wolken'.encode())
        assert c.cmd("bad", "FETCH 1 PREVIEW (FUZZY)")[-1].startswith(b"bad BAD")
        assert c.cmd("bad2", "FETCH 1 (PREVIEW (LAZY)")[-1].startswith(b"bad2 BAD")
    finally:
        c.close()
