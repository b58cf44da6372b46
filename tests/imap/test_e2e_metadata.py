"""METADATA and METADATA-SERVER (RFC 5464) end to end through real sockets, on SQLite and PostgreSQL: server
and mailbox entries, DEPTH and MAXSIZE ([METADATA LONGENTRIES]), the limits ([METADATA MAXSIZE],
[METADATA TOOMANY]), the computed read-only entries (/private/specialuse, /shared/admin), entries that go
with a deleted mailbox and follow a renamed one, and BAD/NO for bad input.

One server per backend for the module; each test works in an account of its own (entries are per account)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.imap.e2e_util import Raw, Tenant, serve_shared, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url, imap__metadata_admin="mailto:admin@example.test")


@pytest.fixture
def server(shared: ServerThread) -> Tenant:
    return Tenant(shared)


@pytest.fixture
def client(server: Tenant) -> Iterator[Raw]:
    c = Raw(server.imap_port)
    assert c.cmd("l", f'LOGIN {server.address} "{server.password}"')[-1].startswith(b"l OK")
    yield c
    c.close()


def ok(lines: list[bytes]) -> list[bytes]:
    assert lines[-1].split(b" ")[1] == b"OK", lines
    return lines[:-1]


def test_capabilities(client: Raw) -> None:
    caps = b" ".join(client.cmd("c", "CAPABILITY")).split()
    assert b"METADATA" in caps and b"METADATA-SERVER" in caps


def test_server_and_mailbox_entries(client: Raw) -> None:
    ok(client.cmd("a", 'SETMETADATA "" (/shared/comment "Server comment" /private/vendor/x "v")'))
    ok(client.cmd("b", 'SETMETADATA INBOX (/shared/Comment "Inbox comment")'))  # names are case-insensitive
    assert ok(client.cmd("c", 'GETMETADATA "" /shared/comment')) == [
        b'* METADATA "" (/shared/comment "Server comment")']
    assert ok(client.cmd("d", "GETMETADATA INBOX (/shared/comment /private/comment)")) == [
        b'* METADATA INBOX (/shared/comment "Inbox comment" /private/comment NIL)']
    assert ok(client.cmd("e", 'GETMETADATA (DEPTH infinity) "" /shared')) == [
        b'* METADATA "" (/shared/admin "mailto:admin@example.test" /shared/comment "Server comment")']
    assert ok(client.cmd("g", 'GETMETADATA (DEPTH 1) "" (/private)')) == []  # /private/vendor/x is 2 below
    assert ok(client.cmd("h", 'GETMETADATA (DEPTH 1) "" (/private/vendor)')) == [b'* METADATA "" (/private/vendor/x "v")']
    ok(client.cmd("i", 'SETMETADATA "" (/shared/comment NIL)'))
    assert ok(client.cmd("j", 'GETMETADATA "" /shared/comment')) == [b'* METADATA "" (/shared/comment NIL)']


def test_literal_values_and_binary(client: Raw) -> None:
    client.send(b"a SETMETADATA INBOX (/private/comment {7}\r\n")
    assert client.line().startswith(b"+")
    client.send(b"two\r\nln /private/bin ~{3+}\r\n\x00\x01\x02)\r\n")
    ok(client.until("a"))
    client.send(b"b GETMETADATA INBOX (/private/comment /private/bin)\r\n")
    lines = ok(client.until("b"))
    assert lines[0] == b"* METADATA INBOX (/private/bin ~{3}"
    assert lines[1] == b"\x00\x01\x02 /private/comment {7}"
    assert lines[2] == b"two"
    assert lines[3] == b"ln)"


def test_maxsize_and_longentries(client: Raw) -> None:
    ok(client.cmd("a", 'SETMETADATA INBOX (/shared/short "12345" /shared/long "1234567890")'))
    assert client.cmd("b", "GETMETADATA (MAXSIZE 5 DEPTH 1) INBOX /shared") == [
        b'* METADATA INBOX (/shared/short "12345")', b"b OK [METADATA LONGENTRIES 10] GETMETADATA completed"]


def test_limits(server: Tenant, client: Raw, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server.store.metadata, "max_value_size", 8)  # the shared server's: put back afterwards
    monkeypatch.setattr(server.store.metadata, "max_entries", 2)
    assert client.cmd("a", 'SETMETADATA INBOX (/shared/a "123456789")')[-1] == \
        b"a NO [METADATA MAXSIZE 8] Value too large"
    ok(client.cmd("b", 'SETMETADATA INBOX (/shared/a "1" /shared/b "2")'))
    assert client.cmd("c", 'SETMETADATA "" (/shared/c "3")')[-1].startswith(b"c NO [METADATA TOOMANY]")
    assert ok(client.cmd("d", 'GETMETADATA "" /shared/c')) == [b'* METADATA "" (/shared/c NIL)']


def test_specialuse_is_a_read_only_view_of_the_role(client: Raw) -> None:
    assert ok(client.cmd("a", "GETMETADATA Sent /private/specialuse")) == [
        b'* METADATA Sent (/private/specialuse "\\\\Sent")']
    assert ok(client.cmd("b", "GETMETADATA INBOX /private/specialuse")) == [
        b"* METADATA INBOX (/private/specialuse NIL)"]
    assert client.cmd("c", 'SETMETADATA Sent (/private/specialuse "\\\\Junk")')[-1].startswith(b"c NO [NOPERM]")
    assert client.cmd("d", 'SETMETADATA "" (/shared/admin "mailto:me@x")')[-1].startswith(b"d NO [NOPERM]")


def test_entries_follow_rename_and_go_with_delete(client: Raw) -> None:
    ok(client.cmd("a", "CREATE Projects"))
    ok(client.cmd("b", 'SETMETADATA Projects (/private/comment "p")'))
    ok(client.cmd("c", "RENAME Projects Work"))
    assert ok(client.cmd("d", "GETMETADATA Work /private/comment")) == [b'* METADATA Work (/private/comment "p")']
    ok(client.cmd("e", "DELETE Work"))
    ok(client.cmd("f", "CREATE Work"))
    assert ok(client.cmd("g", "GETMETADATA Work /private/comment")) == [b"* METADATA Work (/private/comment NIL)"]


@pytest.mark.parametrize(("command", "status"), [
    ("GETMETADATA Nowhere /shared/comment", b"NO [NONEXISTENT]"),
    ('SETMETADATA Nowhere (/shared/comment "x")', b"NO [NONEXISTENT]"),
    ("GETMETADATA INBOX /comment", b"BAD"),
    ("GETMETADATA INBOX /shared/a//b", b"BAD"),
    ("GETMETADATA INBOX /shared/a/", b"BAD"),
    ('GETMETADATA INBOX "/shared/a*"', b"BAD"),
    ("GETMETADATA (DEPTH 2) INBOX /shared", b"BAD"),
    ("GETMETADATA (MAXSIZE -1) INBOX /shared", b"BAD"),
    ("GETMETADATA (COLOUR 1) INBOX /shared", b"BAD"),
    ("GETMETADATA INBOX", b"BAD"),
    ('SETMETADATA INBOX (/shared "x")', b"BAD"),
    ("SETMETADATA INBOX (/shared/a)", b"BAD"),
    ("SETMETADATA INBOX /shared/a x", b"BAD"),
    ("SETMETADATA INBOX (/shared/a x)", b"BAD"),
    ("SETMETADATA INBOX ()", b"BAD"),
])
def test_refusals(client: Raw, command: str, status: bytes) -> None:
    assert client.cmd("t", command)[-1].startswith(b"t " + status)
    ok(client.cmd("n", "NOOP"))


def test_needs_login(server: Tenant) -> None:
    c = Raw(server.imap_port)
    try:
        assert c.cmd("a", 'GETMETADATA "" /shared/comment')[-1].startswith(b"a BAD")
    finally:
        c.close()
