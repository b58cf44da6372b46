"""Issue 11 review findings, end to end through real sockets on SQLite and PostgreSQL (one server per backend for
the module, an account of its own per test):

* COPY and MOVE keep the source's flags, ``\\Deleted`` included (RFC 9051 §6.4.7, RFC 6851 §3.3);
* ``STATUS (DELETED-STORAGE)`` is answered (RFC 9208): what an EXPUNGE would take off STORAGE, in its 1024-octet
  unit, also through ``LIST ... RETURN (STATUS ...)``;
* a CATENATE URL whose server part names another server (host or port) is ``NO [BADURL]`` (RFC 4469), while
  this server's names (the address connected to, ``localhost`` on loopback, with or without the port) work;
* FETCH SAVEDATE reads the save dates with the rows (one read, not a second query).
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator

import pytest

from tests.imap.e2e_util import Raw, Tenant, login, serve_shared
from tests.serverutil import ServerThread


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def tenant(shared: ServerThread) -> Tenant:
    return Tenant(shared)


def message(subject: str, size: int = 0) -> bytes:
    head = f"From: a@x.test\r\nSubject: {subject}\r\n\r\n".encode()
    return head + b"x" * max(0, size - len(head) - 2) + b"\r\n"


def ok(answer: tuple[str, list]) -> list:
    typ, data = answer
    assert typ == "OK", (typ, data)
    return data


def flags_of(m: imaplib.IMAP4, seqs: str) -> dict[int, set[bytes]]:
    out = {}
    for line in ok(m.fetch(seqs, "(FLAGS)")):
        found = re.match(rb"(\d+) \(FLAGS \(([^)]*)\)\)", line)
        assert found, line
        out[int(found.group(1))] = set(found.group(2).split()) - {b"\\Recent"}  # IMAP4rev1 session
    return out


def test_copy_and_move_keep_deleted(tenant: Tenant) -> None:
    m = login(tenant)
    try:
        for box in ("Keep", "Bin"):
            ok(m.create(box))
        for i in range(3):
            ok(m.append("INBOX", None, None, message(f"m{i}")))
        ok(m.select("INBOX"))
        ok(m.store("1", "+FLAGS", "(\\Deleted \\Seen)"))
        ok(m.store("3", "+FLAGS", "(\\Deleted)"))
        ok(m.copy("1:2", "Keep"))
        ok(m._simple_command("MOVE", "3", "Bin"))
        assert ok(m.status("Keep", "(MESSAGES DELETED)")) == [b"Keep (MESSAGES 2 DELETED 1)"]
        ok(m.select("Keep", readonly=True))
        assert flags_of(m, "1:2") == {1: {b"\\Deleted", b"\\Seen"}, 2: set()}
        ok(m.select("Bin", readonly=True))
        assert flags_of(m, "1") == {1: {b"\\Deleted"}}
        # the source keeps its own flags too; an EXPUNGE there leaves the copies alone
        ok(m.select("INBOX"))
        assert flags_of(m, "1:2") == {1: {b"\\Deleted", b"\\Seen"}, 2: set()}
        ok(m.expunge())
        assert ok(m.status("Keep", "(MESSAGES DELETED)")) == [b"Keep (MESSAGES 2 DELETED 1)"]
    finally:
        m.logout()


def test_status_deleted_storage(tenant: Tenant) -> None:
    m = login(tenant)
    try:
        ok(m.create("Other"))
        ok(m.append("INBOX", None, None, message("big", 3000)))
        ok(m.append("INBOX", None, None, message("small", 100)))
        ok(m.append("INBOX", None, None, message("tiny", 60)))
        assert ok(m.status("INBOX", "(DELETED DELETED-STORAGE)")) == [b"INBOX (DELETED 0 DELETED-STORAGE 0)"]
        ok(m.select("INBOX"))
        ok(m.copy("1", "Other"))  # a copy elsewhere: counted there, not here (quota counts every membership)
        ok(m.store("1,3", "+FLAGS", "(\\Deleted)"))
        # 3000 + 60 octets -> 3 units of 1024, rounded up like GETQUOTA's STORAGE usage
        assert ok(m.status("INBOX", "(MESSAGES DELETED-STORAGE DELETED)")) == [
            b"INBOX (MESSAGES 3 DELETED-STORAGE 3 DELETED 2)"]
        assert ok(m.status("Other", "(DELETED-STORAGE)")) == [b"Other (DELETED-STORAGE 0)"]
        typ, data = m._simple_command("LIST", '""', "INBOX", "RETURN", "(STATUS (DELETED-STORAGE))")
        assert typ == "OK", data
        assert m.untagged_responses.pop("STATUS", []) == [b"INBOX (DELETED-STORAGE 3)"]
        ok(m.expunge())
        assert ok(m.status("INBOX", "(DELETED-STORAGE)")) == [b"INBOX (DELETED-STORAGE 0)"]
    finally:
        m.logout()


def catenate(raw: Raw, url: str) -> bytes:
    raw.send(b'a APPEND Built CATENATE (URL "' + url.encode() + b'")\r\n')
    return raw.until("a")[-1]


def test_catenate_url_must_name_this_server(tenant: Tenant) -> None:
    m = login(tenant)
    ok(m.append("INBOX", None, None, message("source")))
    ok(m.create("Built"))
    m.logout()
    raw = Raw(tenant.imap_port)
    assert raw.cmd("l", f'LOGIN {tenant.address} "{tenant.password}"')[-1].startswith(b"l OK")
    user = tenant.address.replace("@", "%40")
    port = tenant.imap_port
    for url in (f"imap://{user}@127.0.0.1:{port}/INBOX/;UID=1", "imap://127.0.0.1/INBOX/;UID=1",
                f"imap://localhost:{port}/INBOX/;UID=1", "imap://LOCALHOST/INBOX/;UID=1"):
        answer = catenate(raw, url)
        assert answer.startswith(b"a OK [APPENDUID"), (url, answer)
    for url in ("imap://mail.elsewhere.test/INBOX/;UID=1", f"imap://{user}@mail.elsewhere.test/INBOX/;UID=1",
                "imap://10.9.8.7/INBOX/;UID=1", "imap://[2001:db8::1]/INBOX/;UID=1",
                f"imap://127.0.0.1:{port + 1 if port < 65535 else 1}/INBOX/;UID=1"):
        answer = catenate(raw, url)
        assert answer.startswith(b"a NO [BADURL " + url.replace("]", "").encode() + b"]"), (url, answer)
    lines = raw.cmd("s", "STATUS Built (MESSAGES)")
    assert lines[0] == b"* STATUS Built (MESSAGES 4)", lines
    raw.close()


def test_fetch_savedate_is_read_with_the_rows(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    def second_read(*_args: object) -> None:
        raise AssertionError("FETCH SAVEDATE read the save dates separately")

    monkeypatch.setattr(tenant.store.save_dates, "of", second_read)
    m = login(tenant)
    try:
        for i in range(2):
            ok(m.append("INBOX", None, None, message(f"s{i}")))
        ok(m.select("INBOX"))
        for items in ("(SAVEDATE)", "(SAVEDATE FLAGS)", "(SAVEDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"):
            data = ok(m.fetch("1:2", items))
            dates = [re.search(rb'SAVEDATE "([^"]+)"', d[0] if isinstance(d, tuple) else d) for d in data
                     if d != b")"]
            assert len(dates) == 2 and all(dates), (items, data)
    finally:
        m.logout()
