"""SAVEDATE (RFC 8514) end to end through real sockets, on SQLite and PostgreSQL: FETCH SAVEDATE is when the
message was put in THIS mailbox (APPEND, COPY, MOVE), not its internal date; SEARCH SAVEDBEFORE / SAVEDON /
SAVEDSINCE / SAVEDATESUPPORTED go through the store's one search compiler; malformed keys are BAD."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from janusmail.store import ingest as ingest_mod
from janusmail.store import membership as membership_mod
from janusmail.store import schema as schema_mod
from tests.imap.e2e_util import Raw, Tenant, serve_shared, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

T_SAVE = 1_700_000_000  # 14-Nov-2023 22:13:20 UTC
T_COPY = T_SAVE + 3 * 86400  # 17-Nov-2023
MESSAGE = b"From: a@x.test\r\nSubject: s\r\n\r\nbody\r\n"


def clock(monkeypatch: pytest.MonkeyPatch, now: int) -> None:
    fake = SimpleNamespace(time=lambda: float(now))
    for mod in (ingest_mod, membership_mod, schema_mod):
        monkeypatch.setattr(mod, "time", fake)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    return Tenant(shared_server)


@pytest.fixture
def client(server: ServerThread) -> Iterator[Raw]:
    c = Raw(server.imap_port)
    assert c.cmd("l", f'LOGIN {server.address} "{server.password}"')[-1].startswith(b"l OK")
    yield c
    c.close()


def append(c: Raw, mailbox: str, date: str) -> None:
    c.send(f'a APPEND {mailbox} "{date}" {{{len(MESSAGE)}+}}\r\n'.encode() + MESSAGE + b"\r\n")
    assert c.until("a")[-1].startswith(b"a OK")


def search(c: Raw, keys: str) -> list[int]:
    lines = c.cmd("s", f"UID SEARCH {keys}")
    assert lines[-1].startswith(b"s OK"), lines
    found = [ln for ln in lines if ln.startswith(b"* SEARCH")]
    return [int(x) for x in found[0].split()[2:]] if found else []


def test_capability_and_fetch(client: Raw, monkeypatch: pytest.MonkeyPatch) -> None:
    caps = b" ".join(client.cmd("c", "CAPABILITY"))
    assert b" SAVEDATE" in caps
    clock(monkeypatch, T_SAVE)
    append(client, "INBOX", "01-Jan-2001 10:00:00 +0000")
    append(client, "INBOX", "02-Jan-2001 10:00:00 +0000")
    clock(monkeypatch, T_COPY)
    assert client.cmd("x", "SELECT INBOX")[-1].startswith(b"x OK")
    assert client.cmd("c", "UID COPY 1 Archive")[-1].startswith(b"c OK")
    assert client.cmd("m", "UID MOVE 2 Trash")[-1].startswith(b"m OK")
    lines = client.cmd("f", "UID FETCH 1:* (SAVEDATE INTERNALDATE)")
    assert lines[0] == (b'* 1 FETCH (UID 1 SAVEDATE "14-Nov-2023 22:13:20 +0000" '
                        b'INTERNALDATE "01-Jan-2001 10:00:00 +0000")')
    assert lines[-1].startswith(b"f OK")
    for box in ("Archive", "Trash"):
        assert client.cmd("x", f"SELECT {box}")[-1].startswith(b"x OK")
        lines = client.cmd("f", "FETCH 1 (SAVEDATE)")  # the body-less renderer and ...
        assert lines[0] == b'* 1 FETCH (SAVEDATE "17-Nov-2023 22:13:20 +0000")'
        lines = client.cmd("f", "FETCH 1 (SAVEDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")  # ... the general one
        assert lines[0].startswith(b'* 1 FETCH (SAVEDATE "17-Nov-2023 22:13:20 +0000" BODY[HEADER.FIELDS')


def test_search_keys(client: Raw, monkeypatch: pytest.MonkeyPatch) -> None:
    clock(monkeypatch, T_SAVE)
    append(client, "INBOX", "01-Jan-2001 10:00:00 +0000")
    append(client, "INBOX", "20-Nov-2023 10:00:00 +0000")
    clock(monkeypatch, T_COPY)
    append(client, "INBOX", "01-Jan-2001 10:00:00 +0000")
    assert client.cmd("x", "SELECT INBOX")[-1].startswith(b"x OK")
    assert search(client, "SAVEDON 14-Nov-2023") == [1, 2]
    assert search(client, "SAVEDON 17-Nov-2023") == [3]
    assert search(client, "SAVEDBEFORE 17-Nov-2023") == [1, 2]
    assert search(client, "SAVEDBEFORE 14-Nov-2023") == []
    assert search(client, 'SAVEDSINCE "15-Nov-2023"') == [3]
    assert search(client, "NOT SAVEDSINCE 15-Nov-2023 SINCE 1-Nov-2023") == [2]  # save date, not internal
    assert search(client, "OR SAVEDON 17-Nov-2023 ON 20-Nov-2023") == [2, 3]
    assert search(client, "SAVEDATESUPPORTED") == [1, 2, 3]
    lines = client.cmd("e", "UID SEARCH RETURN (COUNT) SAVEDSINCE 1-Jan-2000")
    assert any(re.search(rb"COUNT 3", ln) for ln in lines)


@pytest.mark.parametrize("keys", ["SAVEDON", "SAVEDON 32-Nov-2023", "SAVEDBEFORE yesterday",
                                  "SAVEDATESUPPORTED 1-Jan-2020"])
def test_malformed_keys_are_bad(client: Raw, keys: str) -> None:
    assert client.cmd("x", "SELECT INBOX")[-1].startswith(b"x OK")
    assert client.cmd("s", f"SEARCH {keys}")[-1].startswith(b"s BAD")
    assert client.cmd("n", "NOOP")[-1].startswith(b"n OK")  # the connection goes on
