"""RFC 9208 QUOTA through real sockets, on SQLite and PostgreSQL: imapclient's ``get_quota_root()`` and
``get_quota()`` read the limits the administrator set and the usage the store keeps (every membership counts);
APPEND and COPY over a limit answer ``NO [OVERQUOTA]`` with nothing stored, MOVE is allowed (it adds nothing);
SETQUOTA is refused with ``NO [NOPERM]``; LMTP answers ``552 5.2.2`` for the recipient over quota while the
others still get the message (issue 11 QUOTA)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError

from tests.imap.e2e_util import Raw, Tenant, serve_shared, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread

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
