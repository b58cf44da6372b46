"""LMTP delivery over a real socket with smtplib's LMTP client."""

from __future__ import annotations

import smtplib

import pytest

from tests.mailgen import simple
from tests.serverutil import ServerThread, make_config


@pytest.fixture
def server(tmp_path, db_url):  # noqa: ANN001, ANN201
    cfg = make_config(tmp_path / "data", db_url, imap__listen=None, imap__imaps=None, jmap__listen=None)
    cfg.lmtp.max_message_size = 200_000
    srv = ServerThread(cfg).start()
    srv.store.accounts.create("alice@example.test", "x")
    srv.store.accounts.create("bob@example.test", "x")
    yield srv
    srv.stop()


def inbox_messages(store, address):  # noqa: ANN001, ANN201
    acct = store.accounts.by_address(address)
    box = store.mailboxes.by_path(acct.id, ["INBOX"])
    return store.mailboxes.counts(acct.id, [box.id]).get(box.id)


def test_multi_recipient_with_one_unknown(server):
    raw = simple(1)
    with smtplib.LMTP("127.0.0.1", server.lmtp_port) as client:
        client.ehlo_or_helo_if_needed()
        client.mail("sender@example.test")
        assert client.rcpt("alice@example.test")[0] == 250
        code, _ = client.rcpt("nobody@example.test")
        assert code == 550
        assert client.rcpt("Bob@Example.test")[0] == 250
        code, msg = client.data(raw)  # LMTP: one reply per accepted recipient (alice, then bob)
        assert code == 250
        assert client.getreply()[0] == 250
    assert inbox_messages(server.store, "alice@example.test").messages == 1
    assert inbox_messages(server.store, "bob@example.test").messages == 1
    # Stored byte-exact after our Received line.
    acct = server.store.accounts.by_address("alice@example.test")
    email_id = server.store.changes.since(acct.id, "Email", 0)[0].object_id
    stored = server.store.emails.raw(acct.id, email_id)
    assert stored.startswith(b"Received: ") and stored.endswith(raw)


def test_per_recipient_replies_and_size_limit(server):
    with smtplib.LMTP("127.0.0.1", server.lmtp_port) as client:
        client.ehlo_or_helo_if_needed()
        refused = client.sendmail("s@example.test", ["alice@example.test"], simple(2))
        assert refused == {}
        with pytest.raises(smtplib.SMTPException):
            client.sendmail("s@example.test", ["alice@example.test"], b"Subject: big\r\n\r\n" + b"x" * 300_000)
    assert inbox_messages(server.store, "alice@example.test").messages == 1


def test_alias_and_recreated_account(server):
    """An alias reaches its account; an address whose account was deleted and made again reaches the new one
    (no memo of the old account id survives)."""
    alice = server.store.accounts.by_address("alice@example.test")
    server.store.identities.add_alias(alice.id, "postmaster@example.test")
    with smtplib.LMTP("127.0.0.1", server.lmtp_port) as client:
        client.sendmail("s@example.test", ["postmaster@example.test"], simple(2))
    assert inbox_messages(server.store, "alice@example.test").messages == 1
    bob = server.store.accounts.by_address("bob@example.test")
    server.store.accounts.delete(bob.id)
    server.store.accounts.create("bob@example.test", "x")
    with smtplib.LMTP("127.0.0.1", server.lmtp_port) as client:
        client.sendmail("s@example.test", ["bob@example.test"], simple(3))
    assert inbox_messages(server.store, "bob@example.test").messages == 1


def test_the_recipients_copies_are_stored_together(server, monkeypatch):  # noqa: ANN001
    """A message for several local recipients: their copies are delivered at once, so they share the writer's
    group commits (one after the other, each waited for a commit of its own), and the replies keep the order.
    The first copy's write waits until every copy was prepared: one after the other, the next would not be
    prepared before that write returned, and the wait runs out."""
    import threading

    from janusmail.store.writes import writes

    names = [f"list{i}@example.test" for i in range(6)]
    for name in names:
        server.store.accounts.create(name, "x")
    store = server.store
    prepared: list[str] = []
    all_prepared = threading.Event()
    real_prepare, real_ingest = store.prepare_ingest, store.emails.ingest_many

    async def prepare_ingest(account_id, items):  # noqa: ANN001, ANN202
        out = await real_prepare(account_id, items)
        prepared.append(account_id)
        if len(prepared) == len(names):
            all_prepared.set()
        return out

    @writes
    def ingest_many(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        assert all_prepared.wait(30), "the copies were stored one after the other"
        return real_ingest(*args, **kwargs)

    monkeypatch.setattr(store, "prepare_ingest", prepare_ingest)
    monkeypatch.setattr(store.emails, "ingest_many", ingest_many)
    with smtplib.LMTP("127.0.0.1", server.lmtp_port, timeout=120) as client:
        client.ehlo_or_helo_if_needed()
        client.mail("sender@example.test")
        for name in [*names[:3], "nobody@example.test", *names[3:]]:
            client.rcpt(name)
        replies = [client.data(simple(1))] + [client.getreply() for _ in names[1:]]
    assert [code for code, _ in replies] == [250] * len(names)
    for name in names:
        assert inbox_messages(store, name).messages == 1
