"""Mailbox commands over real sockets, on SQLite and PostgreSQL: CREATE (intermediates, SPECIAL-USE),
DELETE, RENAME (ids kept, INBOX special case), SUBSCRIBE/UNSUBSCRIBE/LSUB, LIST-EXTENDED, LIST-STATUS,
STATUS, NAMESPACE, and modified UTF-7 versus UTF-8 names.

One server for the module (and one per backend for the tests on both); each test uses an account of its own."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator

import imapclient
import pytest

from tests.imap.e2e_util import Raw, Tenant, login, serve_shared, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory)


@pytest.fixture(scope="module")
def shared_pg_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    return Tenant(shared_server)


@pytest.fixture
def pg_server(shared_pg_server: ServerThread) -> Tenant:
    return Tenant(shared_pg_server)


def mailboxid(m: imaplib.IMAP4, name: str) -> str:
    typ, data = m.status(name, "(MAILBOXID)")
    assert typ == "OK", data
    found = re.search(rb"MAILBOXID \(([A-Za-z0-9_-]+)\)", data[0])
    assert found, data
    return found.group(1).decode()


def names(m: imaplib.IMAP4, pattern: str = "*") -> dict[str, str]:
    typ, data = m.list('""', pattern)
    assert typ == "OK"
    out = {}
    for line in data:
        if line is None:
            continue
        match = re.match(rb'\(([^)]*)\) (?:"/"|NIL) (.*)$', line)
        assert match, line
        name = match.group(2).decode()
        out[name.strip('"')] = match.group(1).decode()
    return out


def deliver(srv: ServerThread, box: str, n: int = 1) -> list[int]:
    mb = srv.store.mailboxes.by_path(srv.account.id, box.split("/"))
    uids = []
    for i in range(n):
        d = srv.run(srv.store.deliver(srv.account.id, simple(i), (mb.id,)))
        uids.append(d.uids[mb.id])
    return uids


def test_create_intermediates_and_mailboxid(pg_server: Tenant) -> None:
    m = login(pg_server)
    typ, data = m.create("a/b/c")
    assert typ == "OK" and re.match(rb"\[MAILBOXID \([A-Za-z0-9_-]+\)\]", data[0])
    listed = names(m)
    assert listed["a"] == "\\HasChildren" and listed["a/b"] == "\\HasChildren" and listed["a/b/c"] == "\\HasNoChildren"
    typ, data = m.create("a/b")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0]
    assert m.create("INBOX")[0] == "NO"
    assert m.create("trail/")[0] == "OK" and "trail" in names(m)
    assert m.create('"bad%name"')[0] == "NO"
    # the store sees real mailboxes with parents
    boxes = {b.name: b for b in pg_server.store.mailboxes.list(pg_server.account.id)}
    assert boxes["c"].parent_id == boxes["b"].id and boxes["b"].parent_id == boxes["a"].id
    m.logout()


def test_create_special_use(server: Tenant) -> None:
    raw = Raw(server.imap_port)
    raw.cmd("a", f'LOGIN {server.address} "{server.password}"')
    out = raw.cmd("b", "CREATE Flagged (USE (\\Flagged))")
    assert out[-1].startswith(b"b OK [MAILBOXID (")
    out = raw.cmd("c", "CREATE Sent2 (USE (\\Sent))")
    assert out[-1].startswith(b"c NO [USEATTR]")
    out = raw.cmd("d", "CREATE Two (USE (\\All \\Important))")
    assert out[-1].startswith(b"d NO [USEATTR]")
    out = raw.cmd("e", 'LIST "" "*" RETURN (SPECIAL-USE)')
    assert b'* LIST (\\HasNoChildren \\Flagged) "/" Flagged' in out
    out = raw.cmd("f", 'LIST (SPECIAL-USE) "" "*"')
    listed = [line for line in out if line.startswith(b"* LIST")]
    assert len(listed) == 6  # Drafts Sent Archive Junk Trash Flagged; not INBOX
    assert not any(b" INBOX" in line for line in listed)
    raw.close()


def test_delete(pg_server: Tenant) -> None:
    m = login(pg_server)
    m.create("p/q")
    typ, data = m.delete("p")
    assert typ == "NO" and b"HASCHILDREN" in data[0]
    deliver(pg_server, "p/q", 3)
    before = mailboxid(m, "p/q")
    assert m.delete("p/q")[0] == "OK"
    assert "p/q" not in names(m)
    assert m.delete("p")[0] == "OK"
    typ, data = m.delete("p")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    typ, data = m.delete("INBOX")
    assert typ == "NO"
    # the emails only in p/q are gone; a new p/q gets a new id
    m.create("p/q")
    assert mailboxid(m, "p/q") != before
    assert m.status("p/q", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 0)")
    m.logout()


def test_rename_keeps_ids_and_children(pg_server: Tenant) -> None:
    m = login(pg_server)
    m.create("old/child")
    parent_id, child_id = mailboxid(m, "old"), mailboxid(m, "old/child")
    deliver(pg_server, "old/child", 2)
    assert m.rename("old", "new/deeper")[0] == "OK"
    listed = names(m)
    assert "old" not in listed and "old/child" not in listed
    assert "new" in listed and "new/deeper/child" in listed
    assert mailboxid(m, "new/deeper") == parent_id and mailboxid(m, "new/deeper/child") == child_id
    assert m.status("new/deeper/child", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 2)")
    assert m.rename("nosuch", "x")[0] == "NO"
    assert m.rename("new", "Sent")[0] == "NO"
    assert m.rename("new", "new/deeper/inside")[0] == "NO"
    m.logout()


def test_rename_inbox(pg_server: Tenant) -> None:
    m = login(pg_server)
    inbox_id = mailboxid(m, "INBOX")
    deliver(pg_server, "INBOX", 3)
    assert m.rename("INBOX", '"Old Mail"')[0] == "OK"
    assert mailboxid(m, "INBOX") == inbox_id
    assert mailboxid(m, '"Old Mail"') != inbox_id
    assert m.status("INBOX", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 0)")
    assert m.status('"Old Mail"', "(MESSAGES)")[1][0].endswith(b"(MESSAGES 3)")
    m.logout()


def test_subscriptions_and_lsub(server: Tenant) -> None:
    m = login(server)
    m.create("work/reports")
    assert m.unsubscribe("work")[0] == "NO"  # CREATE subscribed nothing (issue 11 #6)
    assert m.subscribe("work/reports")[0] == "OK"
    assert m.subscribe("ghost/box")[0] == "OK"  # no such mailbox: kept as an orphan subscription
    typ, data = m.lsub('""', "*")
    lsub = {line.split(b'"/" ')[1].decode(): line for line in data}
    assert "work" not in lsub and "work/reports" in lsub and "INBOX" in lsub
    assert b"\\Noselect" in lsub["ghost/box"]
    typ, data = m.lsub('""', "%")
    lsub = {line.split(b'"/" ')[1].decode(): line for line in data}
    assert b"\\Noselect" in lsub["work"] and b"\\Noselect" in lsub["ghost"]
    raw = Raw(server.imap_port)
    raw.cmd("a", f'LOGIN {server.address} "{server.password}"')
    out = raw.cmd("b", 'LIST (SUBSCRIBED) "" "*"')
    assert b'* LIST (\\NonExistent \\Subscribed) "/" ghost/box' in out
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" work/reports' in out
    assert not any(line.endswith(b'"/" work') for line in out)
    out = raw.cmd("c", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert b'* LIST (\\HasChildren) "/" work ("CHILDINFO" ("SUBSCRIBED"))' in out
    assert b'* LIST (\\NonExistent) "/" ghost ("CHILDINFO" ("SUBSCRIBED"))' in out
    out = raw.cmd("d", 'LIST "" "w*" RETURN (SUBSCRIBED CHILDREN)')
    assert b'* LIST (\\HasChildren) "/" work' in out
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" work/reports' in out
    assert m.unsubscribe("ghost/box")[0] == "OK"
    assert m.unsubscribe("ghost/box")[0] == "NO"
    # SUBSCRIBE shows in the store (JMAP isSubscribed)
    box = server.store.mailboxes.by_path(server.account.id, ["work"])
    assert box.subscribed is False
    assert m.subscribe("work")[0] == "OK"
    assert server.store.mailboxes.by_path(server.account.id, ["work"]).subscribed is True
    raw.close()
    m.logout()


def test_list_patterns_and_delimiter(server: Tenant) -> None:
    m = login(server)
    for n in ("a/b/c", "a/x", "ab"):
        m.create(n)
    typ, data = m.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""']
    assert set(names(m, "a/%")) == {"a/b", "a/x"}
    assert set(names(m, "a/*")) == {"a/b", "a/b/c", "a/x"}
    assert set(names(m, "a%")) == {"a", "ab"}
    assert set(names(m, "inbox")) == {"INBOX"}
    typ, data = m.list("a/", "%")
    assert {line.split(b'"/" ')[1] for line in data} == {b"a/b", b"a/x"}
    m.logout()


def test_list_status(pg_server: Tenant) -> None:
    deliver(pg_server, "INBOX", 4)
    raw = Raw(pg_server.imap_port)
    raw.cmd("a", f'LOGIN {pg_server.address} "{pg_server.password}"')
    out = raw.cmd("b", 'LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT SIZE MAILBOXID HIGHESTMODSEQ))')
    assert out[0].startswith(b"* LIST (\\HasNoChildren) \"/\" INBOX")
    status = out[1].decode()
    assert status.startswith("* STATUS INBOX (MESSAGES 4 UNSEEN 4 UIDNEXT 5 SIZE ")
    assert re.search(r"MAILBOXID \([A-Za-z0-9_-]+\) HIGHESTMODSEQ \d+\)$", status)
    raw.close()


def test_status_items(pg_server: Tenant) -> None:
    deliver(pg_server, "INBOX", 2)
    m = login(pg_server)
    typ, data = m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE MAILBOXID HIGHESTMODSEQ)")
    assert typ == "OK"
    text = data[0].decode()
    assert re.fullmatch(
        r"INBOX \(MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY \d+ UNSEEN 2 DELETED 0 SIZE \d+ "
        r"MAILBOXID \([A-Za-z0-9_-]+\) HIGHESTMODSEQ \d+\)", text), text
    typ, data = m.status("nosuch", "(MESSAGES)")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    m.logout()


def test_namespace_and_id(server: Tenant) -> None:
    raw = Raw(server.imap_port)
    out = raw.cmd("a", 'ID ("name" "pytest" "version" "1")')
    assert out[0].startswith(b'* ID ("name" "Janus Mail"')
    raw.cmd("b", f'LOGIN {server.address} "{server.password}"')
    out = raw.cmd("c", "NAMESPACE")
    assert out[0] == b'* NAMESPACE (("" "/")) NIL NIL'
    raw.close()


def test_utf8_and_mutf7_names(server: Tenant) -> None:
    c = imapclient.IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=30)
    c.login(server.address, server.password)
    c.create_folder("Entwürfe/台北")  # imapclient encodes modified UTF-7 itself
    raw = Raw(server.imap_port)
    raw.cmd("a", f'LOGIN {server.address} "{server.password}"')
    out = raw.cmd("b", 'LIST "" "Entw*"')
    assert b'* LIST (\\HasChildren) "/" Entw&APw-rfe' in out
    assert b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe/&U,BTFw-' in out
    assert raw.cmd("c", "ENABLE UTF8=ACCEPT")[0] == b"* ENABLED UTF8=ACCEPT"
    out = raw.cmd("d", 'LIST "" "Entw*"')
    assert '* LIST (\\HasChildren) "/" "Entwürfe"'.encode() in out
    assert '* LIST (\\HasNoChildren) "/" "Entwürfe/台北"'.encode() in out
    out = raw.cmd("e", 'STATUS "Entwürfe/台北" (MESSAGES)'.encode())
    assert out[-1].startswith(b"e OK")
    raw.close()
    # the store keeps the real Unicode components
    assert server.store.mailboxes.by_path(server.account.id, ["Entwürfe", "台北"]) is not None
    assert sorted(c.list_folders(pattern="Entw*"), key=lambda f: f[2])[1][2] == "Entwürfe/台北"
    c.logout()


@pytest.mark.parametrize("command", ["CREATE", "DELETE", "SELECT", "STATUS"])
def test_invalid_mutf7_refused(server: Tenant, command: str) -> None:
    """Issue 11 #8: an undecodable name names no mailbox (NO [NONEXISTENT]); CREATE cannot make it."""
    raw = Raw(server.imap_port)
    raw.cmd("a", f'LOGIN {server.address} "{server.password}"')
    extra = " (MESSAGES)" if command == "STATUS" else ""
    out = raw.cmd("b", f"{command} &Jjo!{extra}")
    assert out[-1].startswith(b"b NO [CANNOT]" if command == "CREATE" else b"b NO [NONEXISTENT]"), out
    raw.close()


def test_objectid_stable_across_sessions_and_rename(server: Tenant) -> None:
    m = login(server)
    m.create("Projects")
    pid = mailboxid(m, "Projects")
    raw = Raw(server.imap_port)
    raw.cmd("a", f'LOGIN {server.address} "{server.password}"')
    out = raw.cmd("b", "SELECT Projects")
    assert f"* OK [MAILBOXID ({pid})]".encode() in [line.split(b"]")[0] + b"]" for line in out]
    raw.cmd("c", "UNSELECT")
    m.rename("Projects", "Archive/Projects")
    out = raw.cmd("d", "EXAMINE Archive/Projects")
    assert any(f"[MAILBOXID ({pid})]".encode() in line for line in out)
    assert mailboxid(m, "Archive/Projects") == pid
    raw.close()
    m.logout()


def test_close_expunges_silently(server: Tenant) -> None:
    deliver(server, "INBOX", 3)
    raw = Raw(server.imap_port)
    raw.cmd("a", f'LOGIN {server.address} "{server.password}"')
    raw.cmd("b", "SELECT INBOX")
    inbox = server.store.mailboxes.by_path(server.account.id, ["INBOX"])
    server.store.memberships.store_flags(server.account.id, inbox.id, [(2, 2)], "add", [], True)
    out = raw.cmd("c", "CLOSE")
    assert out == [b"c OK CLOSE completed"] or not any(b"EXPUNGE" in line for line in out)
    assert server.store.mailboxes.counts(server.account.id, [inbox.id])[inbox.id].messages == 2
    out = raw.cmd("d", "NOOP")
    assert out == [b"d OK NOOP completed"]
    raw.close()
