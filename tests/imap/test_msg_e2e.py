"""The message commands end to end: the real server over TCP, driven by imapclient, imaplib and aioimaplib."""

from __future__ import annotations

import base64
import datetime as dt
import imaplib
from collections.abc import Iterator
from pathlib import Path

import aioimaplib
import pytest
from imapclient import IMAPClient

from tests.imap.e2e_util import ADDRESS, PASSWORD, Tenant, login, serve_shared, start_server, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread

ATTACH = bytes(range(1, 256)) * 4  # no NUL: imaplib/imapclient cannot read literal8 (~{n}); see test_literal8
MIXED = (
    b"From: Sender <sender@example.test>\r\nTo: alice@example.test\r\nSubject: with parts\r\n"
    b"Message-ID: <parts@example.test>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="B1"\r\n\r\n'
    b"--B1\r\nContent-Type: multipart/alternative; boundary=\"B2\"\r\n\r\n"
    b"--B2\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Gr\xc3\xbc\xc3\x9fe, plain\r\n"
    b"--B2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>\r\n--B2--\r\n"
    b"--B1\r\nContent-Type: application/octet-stream; name=\"blob.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(ATTACH).replace(b"\n", b"\r\n") + b"--B1--\r\n"
)


cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    return Tenant(shared_server)


@pytest.fixture(scope="module")
def shared_pg_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    """The server on SQLite and on PostgreSQL."""
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def pg_server(shared_pg_server: ServerThread) -> Tenant:
    return Tenant(shared_pg_server)


@pytest.fixture
def client(server: ServerThread) -> Iterator[IMAPClient]:
    c = IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=30)
    c.login(server.address, server.password)
    yield c
    c.logout()


def test_imapclient_fetch_items(client: IMAPClient) -> None:
    client.append("INBOX", MIXED, flags=(b"$Work",))
    client.select_folder("INBOX")
    data = client.fetch([1], ["BODY.PEEK[1.1]", "BODY.PEEK[1.2.MIME]", "BINARY.PEEK[2]", "BINARY.SIZE[2]",
                              "BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "BODY.PEEK[]<0.20>", "RFC822.SIZE",
                              "BODYSTRUCTURE", "ENVELOPE", "EMAILID", "THREADID", "FLAGS", "INTERNALDATE"])[1]
    assert data[b"BODY[1.1]"] == "Grüße, plain".encode()
    assert data[b"BODY[1.2.MIME]"] == b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    assert data[b"BINARY[2]"] == ATTACH
    assert data[b"BINARY.SIZE[2]"] == len(ATTACH)
    assert data[b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: with parts\r\n\r\n"
    assert data[b"BODY[]<0>"] == MIXED[:20]
    assert data[b"RFC822.SIZE"] == len(MIXED)
    env = data[b"ENVELOPE"]
    assert env.subject == b"with parts" and env.from_[0].mailbox == b"sender"
    bs = data[b"BODYSTRUCTURE"]
    assert bs.is_multipart
    assert data[b"EMAILID"][0].startswith(b"M") and data[b"THREADID"][0].startswith(b"T")
    assert b"$Work" in data[b"FLAGS"] and b"\\Seen" not in data[b"FLAGS"]
    assert isinstance(data[b"INTERNALDATE"], dt.datetime)
    client.fetch([1], ["BODY[TEXT]"])
    assert b"\\Seen" in client.get_flags([1])[1]


def test_imapclient_search_store_copy_move_expunge(client: IMAPClient) -> None:
    for i in range(6):
        client.append("INBOX", simple(i, subject=f"topic {i % 2}", body=f"payload number{i}"))
    client.select_folder("INBOX")
    assert client.search(["SUBJECT", "topic 1"]) == [2, 4, 6]
    assert client.search(["TEXT", "number3"]) == [4]
    client.add_flags([1, 2], [b"\\Flagged", b"$Label"])
    assert client.search(["FLAGGED", "KEYWORD", "$label"]) == [1, 2]
    client.remove_flags([2], [b"$Label"])
    assert client.search(["KEYWORD", "$Label"]) == [1]
    client.set_flags([3], [b"\\Deleted"])
    assert client.search(["DELETED"]) == [3]
    ids_before = client.fetch([4, 5], ["EMAILID"])
    client.copy([4, 5], "Archive")
    client.move([4, 5], "Trash")
    assert client.search(["ALL"]) == [1, 2, 3, 6]
    client.expunge()
    assert client.search(["ALL"]) == [1, 2, 6]
    client.select_folder("Trash")
    trash_ids = client.fetch(client.search(["ALL"]), ["EMAILID"])
    assert sorted(v[b"EMAILID"] for v in trash_ids.values()) == sorted(v[b"EMAILID"] for v in ids_before.values())
    client.select_folder("Archive")
    assert len(client.search(["ALL"])) == 2


def test_multiappend_wire(server: Tenant) -> None:
    """MULTIAPPEND over a socket with LITERAL+ (imapclient's multiappend sends two spaces between messages,
    which the strict codec refuses; reported to the codec's owner)."""
    from tests.imap.e2e_util import Raw

    a, b, c = simple(1), simple(2), simple(3)
    r = Raw(server.imap_port)
    r.cmd("a", f'LOGIN {server.address} "{server.password}"')
    r.send(b"b APPEND Archive {%d+}\r\n%b (\\Seen) \"02-Jan-2020 03:04:05 +0000\" {%d+}\r\n%b {%d+}\r\n%b\r\n"
           % (len(a), a, len(b), b, len(c), c))
    out = r.until("b")
    assert out[-1].startswith(b"b OK [APPENDUID ") and out[-1].split()[4] == b"1:3]", out
    r.cmd("c", "SELECT Archive")
    out = r.cmd("d", "FETCH 1:3 (FLAGS INTERNALDATE)")
    assert b'* 2 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "02-Jan-2020 03:04:05 +0000")' in out
    r.close()


def test_imaplib_8bit_byte_exact(server: Tenant) -> None:
    raws = [
        "From: Jörg <j@example.test>\nSubject: Grüße ☃\n\nHällo wörld\n".encode(),  # bare LF
        b"Subject: caf\xe9\r\n\r\nna\xefve \x80\xff\x00 tail\r\n",
        MIXED,
    ]
    # imaplib's APPEND rewrites bare LF to CRLF, so these arrive through the store (as LMTP would store them)
    acct = server.account  # type: ignore[attr-defined]
    inbox = server.store.mailboxes.by_path(acct.id, ["INBOX"])
    for raw in raws:
        server.store.emails.ingest(acct.id, raw, (inbox.id,))
    m = login(server)
    m.select("INBOX")
    for i, raw in enumerate(raws, 1):
        typ, data = m.fetch(str(i), "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == raw
    typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK" and len([d for d in data if d]) == 3
    m.logout()


async def test_aioimaplib_uid_fetch_and_search(server: Tenant) -> None:
    server.store.emails.ingest(server.account.id, simple(1), (server.store.mailboxes.by_path(server.account.id, ["INBOX"]).id,))  # type: ignore[attr-defined]
    c = aioimaplib.IMAP4(host="127.0.0.1", port=server.imap_port, timeout=30)
    await c.wait_hello_from_server()
    await c.login(server.address, server.password)
    await c.select("INBOX")
    res = await c.uid("fetch", "1:*", "(UID FLAGS RFC822.SIZE)")
    assert res.result == "OK" and any(b"UID 1" in ln for ln in res.lines if isinstance(ln, bytes))
    res = await c.uid_search("ALL")
    assert res.result == "OK" and res.lines[0] == b"1"
    res = await c.uid("store", "1", "+FLAGS", "(\\Answered)")
    assert res.result == "OK"
    res = await c.search("ANSWERED")
    assert res.lines[0] == b"1"
    await c.logout()


def test_backends_agree_end_to_end(pg_server: Tenant) -> None:
    c = IMAPClient("127.0.0.1", port=pg_server.imap_port, ssl=False, timeout=30)
    c.login(pg_server.address, pg_server.password)
    c.append("INBOX", MIXED)
    c.append("INBOX", simple(2, body="needle in the haystack"))
    c.select_folder("INBOX")
    assert c.search(["BODY", "needle"]) == [2]
    assert c.search(["HEADER", "Message-ID", "parts@"]) == [1]
    assert c.fetch([1], ["BINARY.PEEK[2]"])[1][b"BINARY[2]"] == ATTACH
    c.logout()


def test_literal8_for_binary_with_nul(server: Tenant) -> None:
    from tests.imap.e2e_util import Raw

    data = bytes(range(256))
    raw = (b"Subject: bin\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(data).replace(b"\n", b"\r\n"))
    acct = server.account  # type: ignore[attr-defined]
    server.store.emails.ingest(acct.id, raw, (server.store.mailboxes.by_path(acct.id, ["INBOX"]).id,))
    r = Raw(server.imap_port)
    r.cmd("a", f'LOGIN {server.address} "{server.password}"')
    r.cmd("b", "SELECT INBOX")
    r.send(b"c FETCH 1 (BINARY.PEEK[1])\r\n")
    head = r.line()
    assert head == b"* 1 FETCH (BINARY[1] ~{256}"
    while len(r.buf) < 256 + 3:
        r.buf += r.sock.recv(65536)
    assert r.buf[:256] == data and r.buf[256:259] == b")\r\n"
    r.buf = r.buf[259:]
    assert r.line().startswith(b"c OK")
    r.close()


def test_condstore_qresync_wire(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        m = imaplib.IMAP4("127.0.0.1", srv.imap_port)
        m.login(ADDRESS, PASSWORD)
        for i in range(3):
            m.append("INBOX", None, None, simple(i))
        m._simple_command("ENABLE", "QRESYNC")
        m.select("INBOX")
        typ, data = m.uid("FETCH", "1:*", "(FLAGS) (CHANGEDSINCE 1)")
        assert typ == "OK" and all(b"MODSEQ" in d for d in data)
        typ, data = m.uid("STORE", "2", "+FLAGS.SILENT", "(\\Deleted)")
        typ, data = m.uid("EXPUNGE", "2")
        assert typ == "OK"
        m.logout()
    finally:
        srv.stop()
