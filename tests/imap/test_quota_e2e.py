"""RFC 9208 QUOTA through real sockets, on SQLite and PostgreSQL: imapclient's ``get_quota_root()`` and
``get_quota()`` read the limits the administrator set and the usage the store keeps (every membership counts);
APPEND and COPY over a limit answer ``NO [OVERQUOTA]`` with nothing stored, MOVE is allowed (it adds nothing);
SETQUOTA is refused with ``NO [NOPERM]``; LMTP answers ``552 5.2.2`` for the recipient over quota while the
others still get the message (issue 11 QUOTA)."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError

from tests.imap.e2e_util import Raw, Tenant, serve_shared, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread, janusmail_cmd

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url, jmap__listen=None)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    return Tenant(shared_server)


def _client(server) -> imapclient.IMAPClient:  # noqa: ANN001
    c = imapclient.IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=30)
    c.login(server.address, server.password)
    return c


def test_capabilities_and_no_quota_without_limits(server) -> None:  # noqa: ANN001
    c = _client(server)
    try:
        caps = c.capabilities()
        assert {b"QUOTA", b"QUOTA=RES-STORAGE", b"QUOTA=RES-MESSAGE"} <= set(caps)
        assert b"QUOTASET" not in caps  # limits are the administrator's
        roots = c.get_quota_root("INBOX")
        assert roots[0].quota_roots == [] and roots[1] == []
    finally:
        c.logout()


def test_getquotaroot_and_getquota_follow_usage(server) -> None:  # noqa: ANN001
    store, acct = server.store, server.account
    store.quotas.set_limits(acct.id, storage=1024 * 1024, messages=10)
    c = _client(server)
    try:
        raw = simple(1, body="x" * 3000)
        c.append("INBOX", raw)
        c.create_folder("Work")
        c.append("Work", raw)
        roots, quotas = c.get_quota_root("Work")
        assert roots.mailbox == "Work" and roots.quota_roots == [""]
        expected_kib = -(-2 * len(raw) // 1024)
        assert {(q.quota_root, q.resource, q.usage, q.limit) for q in quotas} == {
            ("", "STORAGE", expected_kib, 1024), ("", "MESSAGE", 2, 10)}
        assert {(q.resource, q.usage) for q in c.get_quota("INBOX")} == {("STORAGE", expected_kib), ("MESSAGE", 2)}
        assert {(q.quota_root, q.resource, q.limit) for q in c._get_quota("")} == {("", "STORAGE", 1024),
                                                                                    ("", "MESSAGE", 10)}
        with pytest.raises(IMAPClientError, match="NONEXISTENT"):
            c.get_quota_root("Nope")
        with pytest.raises(IMAPClientError, match="NONEXISTENT"):
            c._get_quota("other root")
    finally:
        c.logout()


def test_append_copy_over_quota_are_refused_and_store_nothing(server) -> None:  # noqa: ANN001
    store, acct = server.store, server.account
    store.quotas.set_limits(acct.id, messages=2)
    c = _client(server)
    try:
        c.append("INBOX", simple(1))
        c.append("INBOX", simple(2))
        raw = Raw(server.imap_port)
        raw.cmd("a", f'LOGIN "{server.address}" "{server.password}"')
        msg = simple(3)
        raw.send(b"b APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert raw.until("b")[-1].startswith(b"b NO [OVERQUOTA]")
        c.select_folder("INBOX")
        assert c.search() == [1, 2]
        raw.cmd("c", "SELECT INBOX")
        assert raw.cmd("d", "COPY 1:2 Archive")[-1].startswith(b"d NO [OVERQUOTA]")
        assert raw.cmd("e", "SETQUOTA \"\" (STORAGE 100)")[-1].startswith(b"e NO [NOPERM]")
        assert raw.cmd("f", "MOVE 1 Archive")[-1].startswith(b"f OK")  # adds as much as it removes
        raw.close()
        assert store.mailboxes.counts(acct.id)[store.mailboxes.by_path(acct.id, ["Archive"]).id].messages == 1
        q = store.quotas.get(acct.id)
        assert (q.messages_used, q.messages_limit) == (2, 2)
        c.select_folder("Archive")
        c.delete_messages([1])
        c.expunge()
        c.append("INBOX", simple(4))  # room again
    finally:
        c.logout()


def test_lmtp_552_for_the_recipient_over_quota_only(server) -> None:  # noqa: ANN001
    store = server.store
    bob = Tenant(server.server).account  # another account of its own
    store.quotas.set_limits(bob.id, messages=0)
    raw = simple(7)
    with smtplib.LMTP("127.0.0.1", server.lmtp_port, timeout=60) as client:
        client.ehlo_or_helo_if_needed()
        client.mail("sender@example.test")
        assert client.rcpt(server.address)[0] == 250
        assert client.rcpt(bob.address)[0] == 250
        replies = [client.data(raw), client.getreply()]
    assert replies[0][0] == 250
    assert replies[1][0] == 552 and replies[1][1].startswith(b"5.2.2")
    assert store.quotas.get(bob.id).messages_used == 0
    assert store.quotas.get(server.account.id).messages_used == 1


def test_quota_set_on_the_command_line_is_what_getquotaroot_reports(server) -> None:  # noqa: ANN001
    """``janusmail quota set ADDRESS --storage 1G --messages 100000`` (the issue's command) against the running
    server's store: imapclient's ``get_quota_root()`` reports those limits at once, STORAGE in 1024-octet units."""
    out = janusmail_cmd(Path(server.config.data_dir), "quota", "set", server.address, "--storage", "1G",
                        "--messages", "100000", db=server.config.db)
    assert "messages: 0 of 100000" in out.stdout, out.stdout
    c = _client(server)
    try:
        c.append("INBOX", simple(1, body="x" * 2000))
        roots, quotas = c.get_quota_root("INBOX")
        assert roots.quota_roots == [""]
        size_kib = -(-server.store.quotas.get(server.account.id).storage_used // 1024)
        assert {(q.quota_root, q.resource, q.usage, q.limit) for q in quotas} == {
            ("", "STORAGE", size_kib, 1024 * 1024), ("", "MESSAGE", 1, 100000)}
    finally:
        c.logout()


def test_move_frees_space_while_copy_and_append_are_refused_over_quota(server) -> None:  # noqa: ANN001
    """MOVE is never refused for quota; COPY and APPEND are, with ``NO [OVERQUOTA]``.

    Why: an account has one quota root (``""``) over all its mailboxes, and usage counts memberships. A MOVE
    takes a membership out of one mailbox and puts it in another under the same root, so it leaves STORAGE and
    MESSAGE exactly as they were (or lower, when the message was already in the target). RFC 9208 asks for
    OVERQUOTA when the *addition* of messages would put the target over a limit (§4.3.1); a MOVE adds nothing.
    Refusing it would also trap a user over a lowered limit: moving mail to Trash and emptying it is how mail
    clients free space. COPY and APPEND add memberships, so they are refused once a limit would be exceeded
    (and nothing is stored); RFC 6851's COPY + EXPUNGE fallback does not apply because MOVE is one write here.
    """
    store, acct = server.store, server.account
    c = _client(server)
    try:
        for i in range(3):
            c.append("INBOX", simple(i, body="y" * 3000))
        used = store.quotas.get(acct.id)
        store.quotas.set_limits(acct.id, storage=1024, messages=1)  # lowered below what is already stored
        raw = Raw(server.imap_port)
        raw.cmd("a", f'LOGIN "{server.address}" "{server.password}"')
        assert raw.cmd("b", "SELECT INBOX")[-1].startswith(b"b OK")
        assert raw.cmd("c", "COPY 1 Trash")[-1].startswith(b"c NO [OVERQUOTA]")
        msg = simple(9)
        raw.send(b"d APPEND Trash {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert raw.until("d")[-1].startswith(b"d NO [OVERQUOTA]")
        out = raw.cmd("e", "MOVE 1:2 Trash")
        assert out[-1].startswith(b"e OK"), out
        assert any(re.match(rb"\* OK \[COPYUID \d+ 1:2 1:2\]", line) for line in out), out
        after = store.quotas.get(acct.id)
        assert (after.messages_used, after.storage_used) == (used.messages_used, used.storage_used)
        assert raw.cmd("f", "UID MOVE 3 Trash")[-1].startswith(b"f OK")  # UID MOVE too
        # emptying Trash brings usage down; with room again, APPEND and COPY work
        assert raw.cmd("g", "SELECT Trash")[-1].startswith(b"g OK")
        assert raw.cmd("h", "STORE 1:3 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"h OK")
        assert raw.cmd("i", "EXPUNGE")[-1].startswith(b"i OK")
        assert store.quotas.get(acct.id).messages_used == 0
        raw.send(b"j APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert raw.until("j")[-1].startswith(b"j OK")
        assert raw.cmd("k", "SELECT INBOX")[-1].startswith(b"k OK")
        assert raw.cmd("m", "COPY 1 Trash")[-1].startswith(b"m NO [OVERQUOTA]")  # a second one would be 2 > 1
        raw.close()
    finally:
        c.logout()
