"""NOTIFY (RFC 5465) through real sockets: STATUS for other mailboxes while idle and at command ends,
LIST for mailbox names and subscriptions, MessageNew fetch attributes for the selected mailbox, the rules
(BAD) and unsupported events (NO [BADEVENT]), NOTIFY NONE; on SQLite and PostgreSQL.

One server per backend for the module; each test logs in to an account of its own."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from tests.imap.e2e_util import Raw, Tenant, serve_shared, use_cheap_argon2
from tests.imap.test_e2e_idle import read_until
from tests.mailgen import simple
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def server(shared: ServerThread) -> Tenant:
    return Tenant(shared)


def logged_in(srv: Tenant, select: str | None = "INBOX") -> Raw:
    raw = Raw(srv.imap_port)
    assert raw.cmd("a", f'LOGIN {srv.address} "{srv.password}"')[-1].startswith(b"a OK")
    if select:
        assert raw.cmd("s", f"SELECT {select}")[-1].startswith(b"s OK")
    return raw


def append(raw: Raw, mailbox: str, i: int) -> None:
    msg = simple(i)
    raw.send(b"p APPEND %s {%d+}\r\n" % (mailbox.encode(), len(msg)) + msg + b"\r\n")
    assert raw.until("p")[-1].startswith(b"p OK")


def idle(raw: Raw) -> None:
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"


def done(raw: Raw) -> list[bytes]:
    raw.send(b"DONE\r\n")
    out = raw.until("i")
    assert out[-1] == b"i OK IDLE terminated"
    return out


def test_capability_lists_notify(server: Tenant) -> None:
    raw = logged_in(server, select=None)
    caps = b" ".join(raw.cmd("c", "CAPABILITY"))
    assert b" NOTIFY" in caps
    raw.close()


def test_append_into_another_mailbox_is_announced_to_the_idler(server: Tenant) -> None:
    watcher = logged_in(server)
    assert watcher.cmd("c", "CREATE Lists")[-1].startswith(b"c OK")
    out = watcher.cmd("n", "NOTIFY SET (selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))")
    assert out[-1].startswith(b"n OK"), out
    idle(watcher)
    other = logged_in(server, select=None)
    append(other, "Lists", 1)
    lines = read_until(watcher, rb"^\* STATUS Lists \(")
    status = lines[-1]
    assert b"MESSAGES 1" in status and b"UIDNEXT 2" in status and b"UIDVALIDITY" in status, status
    done(watcher)
    # outside IDLE, the next command's end tells it
    append(other, "Lists", 2)
    out = watcher.cmd("x", "NOOP")
    assert any(line.startswith(b"* STATUS Lists (MESSAGES 2 ") for line in out), out
    # an append into the selected mailbox is the base protocol's EXISTS, not a STATUS
    append(other, "INBOX", 3)
    out = watcher.cmd("y", "NOOP")
    assert b"* 1 EXISTS" in out and not any(b"STATUS INBOX" in line for line in out), out
    other.close()
    watcher.close()


def test_expunge_in_another_mailbox_is_announced_to_the_idler(server: Tenant) -> None:
    """MessageExpunge for a mailbox other than the selected one: a STATUS with the lower MESSAGES (RFC 5465 §5.2)."""
    watcher = logged_in(server)
    other = logged_in(server, select=None)
    assert other.cmd("c", "CREATE Lists")[-1].startswith(b"c OK")
    append(other, "Lists", 1)
    append(other, "Lists", 2)
    out = watcher.cmd("n", "NOTIFY SET (selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))")
    assert out[-1].startswith(b"n OK"), out
    assert other.cmd("s", "SELECT Lists")[-1].startswith(b"s OK")
    assert other.cmd("d", "STORE 1 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"d OK")
    out = watcher.cmd("x", "NOOP")  # a flag change alone is not announced without FlagChange
    assert not any(b"STATUS Lists" in line for line in out), out
    idle(watcher)
    assert other.cmd("e", "EXPUNGE")[-1].startswith(b"e OK")
    lines = read_until(watcher, rb"^\* STATUS Lists \(")
    assert lines[-1].startswith(b"* STATUS Lists (MESSAGES 1 "), lines
    done(watcher)
    other.close()
    watcher.close()


def test_lmtp_delivery_to_inbox_seen_through_inboxes_filter(server: Tenant) -> None:
    watcher = logged_in(server, select=None)
    assert watcher.cmd("n", "NOTIFY SET STATUS (inboxes (MessageNew MessageExpunge FlagChange))")[-1].startswith(
        b"n OK"
    )
    idle(watcher)
    with smtplib.LMTP("127.0.0.1", server.lmtp_port) as lmtp:
        lmtp.sendmail("sender@example.test", [server.address], simple(5))
    read_until(watcher, rb"^\* STATUS INBOX \(MESSAGES 1 .*UNSEEN 1")
    done(watcher)
    # FlagChange: reading the message elsewhere changes UNSEEN
    other = logged_in(server)
    assert other.cmd("s", "STORE 1 +FLAGS (\\Seen)")[-1].startswith(b"s OK")
    out = watcher.cmd("x", "NOOP")
    assert any(line.startswith(b"* STATUS INBOX (") and b"UNSEEN 0" in line for line in out), out
    other.close()
    watcher.close()


def test_flag_changes_are_quiet_without_flagchange(server: Tenant) -> None:
    watcher = logged_in(server, select=None)
    other = logged_in(server)
    append(other, "INBOX", 1)
    assert watcher.cmd("n", "NOTIFY SET (inboxes (MessageNew MessageExpunge))")[-1].startswith(b"n OK")
    assert other.cmd("s", "STORE 1 +FLAGS (\\Seen)")[-1].startswith(b"s OK")
    out = watcher.cmd("x", "NOOP")
    assert not any(b"STATUS" in line for line in out), out
    append(other, "INBOX", 2)  # but a new message is reported
    out = watcher.cmd("y", "NOOP")
    assert any(line.startswith(b"* STATUS INBOX (MESSAGES 2 ") for line in out), out
    other.close()
    watcher.close()


def test_set_status_sends_the_baseline(server: Tenant) -> None:
    raw = logged_in(server, select=None)
    append(raw, "INBOX", 1)
    out = raw.cmd("n", "NOTIFY SET STATUS (mailboxes (INBOX Trash) (MessageNew MessageExpunge))")
    assert out[-1].startswith(b"n OK"), out
    assert any(line.startswith(b"* STATUS INBOX (MESSAGES 1 ") for line in out), out
    assert any(line.startswith(b"* STATUS Trash (MESSAGES 0 ") for line in out), out
    assert not any(b"STATUS Drafts" in line for line in out), out
    raw.close()


def test_mailbox_names_and_subscriptions(server: Tenant) -> None:
    watcher = logged_in(server, select=None)
    out = watcher.cmd("n", "NOTIFY SET (personal (MailboxName SubscriptionChange))")
    assert out[-1].startswith(b"n OK"), out
    other = logged_in(server, select=None)
    assert other.cmd("c", "CREATE Projects")[-1].startswith(b"c OK")
    out = watcher.cmd("x", "NOOP")
    assert b'* LIST (\\HasNoChildren) "/" Projects' in out, out
    assert other.cmd("r", "RENAME Projects Work")[-1].startswith(b"r OK")
    out = watcher.cmd("y", "NOOP")
    assert b'* LIST (\\HasNoChildren) "/" Work ("OLDNAME" ("Projects"))' in out, out
    assert other.cmd("s", "SUBSCRIBE Work")[-1].startswith(b"s OK")
    out = watcher.cmd("z", "NOOP")
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" Work' in out, out
    assert other.cmd("d", "DELETE Work")[-1].startswith(b"d OK")
    idle(watcher)
    read_until(watcher, rb'^\* LIST \(\\NonExistent\) "/" Work$')
    done(watcher)
    other.close()
    watcher.close()


def test_selected_message_new_fetch_attributes(server: Tenant) -> None:
    watcher = logged_in(server)
    out = watcher.cmd("n", "NOTIFY SET (selected (MessageNew (UID BODY[HEADER.FIELDS (SUBJECT)]) MessageExpunge))")
    assert out[-1].startswith(b"n OK"), out
    idle(watcher)
    other = logged_in(server, select=None)
    append(other, "INBOX", 7)
    lines = read_until(watcher, rb"^\* 1 FETCH \(")
    assert b"* 1 EXISTS" in lines
    assert b"UID 1" in lines[-1] and b"BODY[HEADER.FIELDS (SUBJECT)]" in lines[-1], lines
    done(watcher)
    # the peek left the message unread
    out = watcher.cmd("f", "FETCH 1 FLAGS")
    assert out[-1].startswith(b"f OK") and not any(b"\\Seen" in line for line in out), out
    other.close()
    watcher.close()


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("NOTIFY SET (selected (MessageNew))", b"n BAD"),
        ("NOTIFY SET (selected (MessageExpunge))", b"n BAD"),
        ("NOTIFY SET (personal (FlagChange))", b"n BAD"),
        ("NOTIFY SET (selected (MailboxName))", b"n BAD"),
        ("NOTIFY SET (personal (MessageNew (UID) MessageExpunge))", b"n BAD"),
        ("NOTIFY SET (nosuchfilter (MessageNew MessageExpunge))", b"n BAD"),
        ("NOTIFY SET", b"n BAD"),
        ("NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange))", b"n NO [BADEVENT ("),
        ("NOTIFY SET (personal (MailboxMetadataChange))", b"n NO [BADEVENT ("),
        ("NOTIFY SET (personal (Bogus))", b"n NO [BADEVENT ("),
        ("NOTIFY SET (mailboxes (NoSuchBox) (MessageNew MessageExpunge))", b"n OK"),
        ("NOTIFY SET (subtree INBOX NONE)", b"n OK"),
        ("NOTIFY NONE", b"n OK"),
    ],
)
def test_rules(server: Tenant, command: str, answer: bytes) -> None:
    raw = logged_in(server)
    out = raw.cmd("n", command)
    assert out[-1].startswith(answer), out
    if answer.startswith(b"n NO [BADEVENT"):
        assert b"MessageNew" in out[-1] and b"MailboxName" in out[-1]
    assert raw.cmd("x", "NOOP")[-1].startswith(b"x OK")  # the session goes on
    raw.close()


def test_notify_none_stops_notifications(server: Tenant) -> None:
    watcher = logged_in(server, select=None)
    assert watcher.cmd("n", "NOTIFY SET (personal (MessageNew MessageExpunge))")[-1].startswith(b"n OK")
    assert watcher.cmd("m", "NOTIFY NONE")[-1].startswith(b"m OK")
    other = logged_in(server, select=None)
    append(other, "INBOX", 1)
    out = watcher.cmd("x", "NOOP")
    assert not any(b"STATUS" in line for line in out), out
    other.close()
    watcher.close()
