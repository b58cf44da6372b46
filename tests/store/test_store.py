"""The store on both backends: ids, ingest, threads, change log, memberships, keywords, isolation."""

from __future__ import annotations

import base64
import os
import re
import time

import pytest

from janusmail.store import ids
from janusmail.store.emails import EmailUpdate
from janusmail.store.model import AlreadyExists, HasChildren, HasEmails, InvalidName, NotFound, RoleTaken
from tests.mailgen import corpus, simple


def inbox(store, account):  # noqa: ANN001, ANN201
    return store.mailboxes.by_path(account.id, ["INBOX"])


def test_new_account_has_special_use_mailboxes(store, account):
    boxes = store.mailboxes.list(account.id)
    assert {b.role: b.name for b in boxes} == {
        "inbox": "INBOX", "drafts": "Drafts", "sent": "Sent", "archive": "Archive", "junk": "Junk", "trash": "Trash"}
    assert all(ids.looks_like(ids.MAILBOX, b.id) for b in boxes)
    assert len({b.uidvalidity for b in boxes}) == len(boxes)
    with pytest.raises(AlreadyExists):
        store.accounts.create("ALICE@example.test", "y")


def test_ids_are_unique_typed_and_safe():
    minted = [ids.mint(p) for p in (ids.EMAIL, ids.THREAD, ids.MAILBOX) for _ in range(3000)]
    assert len(set(minted)) == len(minted)
    shape = re.compile(r"^[MTF][a-z2-7]{8,40}$")  # one type letter, lowercase base32: RFC 8474 §8.1 advice
    for value in minted:
        assert shape.match(value), value
        assert ids.looks_like(value[0], value)
        assert value.upper() != "NIL"
    assert not ids.looks_like(ids.EMAIL, minted[3000]) and not ids.looks_like(ids.EMAIL, "Mabc def")


def test_an_id_is_base32_of_its_milliseconds_and_random_bits():
    """The body is RFC 4648 base32 of 6 bytes of milliseconds and 5 random ones (ids sort roughly by creation
    time): decoded, it gives back the clock at minting, for ids of every type."""
    for prefix in (ids.EMAIL, ids.THREAD, ids.BLOB, ids.MAILBOX):
        before = int(time.time() * 1000)
        value = ids.mint(prefix)
        after = int(time.time() * 1000)
        raw = base64.b32decode(value[1:].upper() + "======")
        assert len(raw) == 11 and value[0] == prefix and len(value) == 19
        assert before <= int.from_bytes(raw[:6], "big") <= after
        assert base64.b32encode(raw).decode().rstrip("=").lower() == value[1:]  # (the last two bits are zero)


def test_ids_minted_in_a_forked_child_and_in_threads_never_repeat_the_parents():
    """The random part is drawn from the OS generator in batches (one system call per 256 ids, not per id):
    a forked child (a worker process) draws afresh instead of minting what its parent mints next, and each
    thread has its own batch."""
    import threading

    ids.mint(ids.EMAIL)  # the parent holds an unused batch when it forks
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(w, ",".join(ids.mint(ids.EMAIL) for _ in range(500)).encode())
        finally:
            os._exit(0)
    os.close(w)
    mine = [ids.mint(ids.EMAIL) for _ in range(500)]
    os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as f:
        child = f.read().decode().split(",")
    assert len(child) == 500 and not set(child) & set(mine)
    minted: list[str] = []
    threads = [threading.Thread(target=lambda: minted.extend(ids.mint(ids.EMAIL) for _ in range(2000)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(minted)) == len(minted) == 8000


def test_ingest_stores_bytes_exactly_and_assigns_uids(store, account):
    box = inbox(store, account)
    raws = corpus(30)
    got = [store.emails.ingest(account.id, raw, (box.id,)) for raw in raws]
    assert [d.uids[box.id] for d in got] == list(range(1, 31))
    for raw, d in zip(raws, got, strict=True):
        assert store.blobs.read(account.id, d.blob_id) == raw
        assert ids.looks_like(ids.EMAIL, d.email_id) and ids.looks_like(ids.THREAD, d.thread_id)
    counts = store.mailboxes.counts(account.id, [box.id])[box.id]
    assert counts.messages == 30 and counts.total_emails == 30 and counts.unseen == 30
    assert store.mailboxes.get(account.id, box.id).uidnext == 31


def test_identical_content_shares_one_blob_but_not_one_email(store, account):
    box = inbox(store, account)
    a = store.emails.ingest(account.id, simple(1), (box.id,))
    b = store.emails.ingest(account.id, simple(1), (box.id,))
    assert a.blob_id == b.blob_id and a.email_id != b.email_id


def test_threads_join_through_missing_parent_and_respect_subject(store, account):
    box = inbox(store, account)
    r1 = store.emails.ingest(account.id, simple(1, subject="Re: plans", msgid="r1@x", in_reply_to="p@x",
                                         references=["p@x"]), (box.id,))
    r2 = store.emails.ingest(account.id, simple(2, subject="Re: plans", msgid="r2@x", in_reply_to="p@x",
                                         references=["p@x"]), (box.id,))
    parent = store.emails.ingest(account.id, simple(3, subject="plans", msgid="p@x"), (box.id,))
    assert r1.thread_id == r2.thread_id == parent.thread_id
    other = store.emails.ingest(account.id, simple(4, subject="something unrelated", msgid="o@x", references=["p@x"]),
                         (box.id,))
    assert other.thread_id != parent.thread_id
    lone = store.emails.ingest(account.id, simple(5, subject="plans", msgid="lone@x"), (box.id,))
    assert lone.thread_id != parent.thread_id


def test_change_log_is_ordered_and_typed(store, account):
    box = inbox(store, account)
    start = store.changes.highest_modseq(account.id)
    d1 = store.emails.ingest(account.id, simple(1), (box.id,))
    d2 = store.emails.ingest(account.id, simple(2), (box.id,))
    store.memberships.store_flags(account.id, box.id, [(1, 1)], "add", ["$seen"], None)
    emails = store.changes.since(account.id, "Email", start)
    assert [(c.object_id, c.op) for c in emails] == [(d1.email_id, "c"), (d2.email_id, "c"), (d1.email_id, "u")]
    assert emails[0].modseq < emails[1].modseq < emails[2].modseq == store.changes.highest_modseq(account.id)
    assert [c.op for c in store.changes.since(account.id, "Mailbox", start)] == ["k", "k", "k"]


@pytest.mark.parametrize("n", [1, 5, 40])
def test_a_write_logs_every_changed_object(store, account, n):
    """A small write logs its rows in one multi-row INSERT, a bigger one by executemany: none lost either way."""
    from janusmail.store.transaction import LOG_ROWS_PER_INSERT

    box = inbox(store, account)
    assert 2 * 5 + 1 <= LOG_ROWS_PER_INSERT < 2 * 40 + 1  # (an Email and a Thread row each, and the Mailbox)
    for i in range(n):
        store.emails.ingest(account.id, simple(100 + i), (box.id,))
    start = store.changes.highest_modseq(account.id)
    store.memberships.store_flags(account.id, box.id, [(1, n)], "add", ["$seen"], None)
    emails = store.changes.since(account.id, "Email", start)
    assert len(emails) == len({c.object_id for c in emails}) == n
    assert {(c.modseq, c.op) for c in emails} == {(start + 1, "u")}
    assert [c.op for c in store.changes.since(account.id, "Mailbox", start)] == ["k"]


def test_mailbox_tree_rules(store, account):
    a = store.mailboxes.create(account.id, "A")
    b = store.mailboxes.create(account.id, "B", a.id)
    with pytest.raises(AlreadyExists):
        store.mailboxes.create(account.id, "A")
    with pytest.raises(AlreadyExists):
        store.mailboxes.create(account.id, "inbox")
    with pytest.raises(InvalidName):
        store.mailboxes.create(account.id, "x/y")
    with pytest.raises(RoleTaken):
        store.mailboxes.create(account.id, "Sent2", role="sent")
    with pytest.raises(InvalidName):
        store.mailboxes.update(account.id, a.id, parent_id=b.id)
    renamed = store.mailboxes.update(account.id, a.id, name="Renamed")
    assert renamed.id == a.id and store.mailboxes.by_path(account.id, ["Renamed", "B"]).id == b.id
    with pytest.raises(HasChildren):
        store.mailboxes.destroy(account.id, a.id, remove_emails=True)
    store.emails.ingest(account.id, simple(1), (b.id,))
    with pytest.raises(HasEmails):
        store.mailboxes.destroy(account.id, b.id, remove_emails=False)
    assert len(store.mailboxes.destroy(account.id, b.id, remove_emails=True)) == 1


def test_copy_move_keep_email_id_and_flags_are_shared(store, account):
    box = inbox(store, account)
    arch = store.mailboxes.by_path(account.id, ["Archive"])
    d = store.emails.ingest(account.id, simple(1), (box.id,))
    pairs = store.memberships.copy(account.id, box.id, [(1, 1)], arch.id)
    assert pairs == [(1, 1)]
    store.memberships.store_flags(account.id, arch.id, [(1, 1)], "add", ["$seen", "$Forwarded"], None)
    counts = store.mailboxes.counts(account.id)
    assert counts[box.id].unseen == 0 and counts[arch.id].unseen == 0
    trash = store.mailboxes.by_path(account.id, ["Trash"])
    moved = store.memberships.copy(account.id, box.id, [(1, 1)], trash.id, move=True)
    assert moved == [(1, 1)]
    counts = store.mailboxes.counts(account.id)
    assert box.id not in counts and counts[trash.id].messages == 1
    assert store.emails.raw(account.id, d.email_id)


def test_deleted_is_per_membership_and_expunge_destroys_orphans(store, account):
    box = inbox(store, account)
    arch = store.mailboxes.by_path(account.id, ["Archive"])
    d = store.emails.ingest(account.id, simple(1), (box.id, arch.id))
    store.memberships.store_flags(account.id, box.id, [(1, 1)], "add", [], True)
    counts = store.mailboxes.counts(account.id)
    assert counts[box.id].deleted == 1 and counts[box.id].total_emails == 0 and counts[arch.id].deleted == 0
    assert store.memberships.expunge(account.id, box.id) == [1]
    store.memberships.store_flags(account.id, arch.id, [(1, 1)], "add", [], True)
    assert store.memberships.expunge(account.id, arch.id) == [1]
    assert store.changes.since(account.id, "Email", 0)[-1].op == "d"
    with pytest.raises(NotFound):
        store.emails.raw(account.id, d.email_id)


def test_unchanged_since_reports_modified(store, account):
    box = inbox(store, account)
    store.emails.ingest(account.id, simple(1), (box.id,))
    store.emails.ingest(account.id, simple(2), (box.id,))
    before = store.changes.highest_modseq(account.id)
    store.memberships.store_flags(account.id, box.id, [(2, 2)], "add", ["$flagged"], None)
    res = store.memberships.store_flags(account.id, box.id, [(1, 2)], "add", ["$seen"], None, unchanged_since=before)
    assert res.updated == [1] and res.modified == [2]


def test_jmap_updates_and_isolation(store, account):
    box = inbox(store, account)
    arch = store.mailboxes.by_path(account.id, ["Archive"])
    d = store.emails.ingest(account.id, simple(1), (box.id,))
    res = store.emails.update(account.id, {d.email_id: EmailUpdate(add_keywords=["$Seen", "Work"],
                                                                   mailbox_ids=[arch.id])})
    assert res == {d.email_id: None}
    counts = store.mailboxes.counts(account.id)
    assert box.id not in counts and counts[arch.id].total_emails == 1 and counts[arch.id].unread_emails == 0
    bob = store.accounts.create("bob@example.test", "x")
    bob_inbox = store.mailboxes.by_path(bob.id, ["INBOX"])
    res = store.emails.update(bob.id, {d.email_id: EmailUpdate(add_keywords=["$flagged"])})
    assert isinstance(res[d.email_id], NotFound)
    res = store.emails.update(account.id, {d.email_id: EmailUpdate(mailbox_ids=[bob_inbox.id])})
    assert isinstance(res[d.email_id], NotFound)
    with pytest.raises(NotFound):
        store.blobs.read(bob.id, d.blob_id)
    assert store.emails.destroy(bob.id, [d.email_id]) == ([], [d.email_id])
    with pytest.raises(NotFound):
        store.emails.ingest(bob.id, simple(2), (box.id,))


def test_reserved_and_invalid_keywords_are_refused(store, account):
    from janusmail.store.model import InvalidKeyword

    box = inbox(store, account)
    store.emails.ingest(account.id, simple(1), (box.id,))
    for bad in ("$recent", "has space", "par(en", ""):
        with pytest.raises(InvalidKeyword):
            store.memberships.store_flags(account.id, box.id, [(1, 1)], "add", [bad], None)


async def test_notifier_publishes_after_commit(store, account):
    box = inbox(store, account)
    sub = store.notifier.subscribe(account.id)
    try:
        d = await store.call(store.emails.ingest, account.id, simple(1), (box.id,))
        events = await sub.wait(timeout=30)
        assert events and events[-1].modseq == d.modseq
        assert {"Email", "Thread", "Mailbox", "EmailDelivery"} <= events[-1].kinds
        assert box.id in events[-1].mailbox_ids
    finally:
        sub.close()


async def test_an_expunge_that_finds_nothing_deleted_writes_nothing(store, account):
    """Alone (its own transaction) or on the writer lane (a savepoint of a shared group), an EXPUNGE with nothing
    \\Deleted (and a STORE of UIDs that are gone) is rolled back: the modseq stays, no change is logged, no
    session is woken; the next write gets the next modseq (no gap) and is announced as usual."""
    box = inbox(store, account)
    d = store.emails.ingest(account.id, simple(1), (box.id,))
    sub = store.notifier.subscribe(account.id)
    try:
        assert store.memberships.expunge(account.id, box.id) == []
        assert await store.call(store.memberships.expunge, account.id, box.id) == []
        assert await store.call(store.memberships.expunge, account.id, box.id, [(1, 9)]) == []
        gone = await store.call(store.memberships.store_flags, account.id, box.id, [(5, 9)], "add", ["$seen"], None)
        assert (gone.updated, gone.modseq) == ([], d.modseq)  # a STORE of messages no longer there: the same
        assert store.changes.highest_modseq(account.id) == d.modseq
        assert sub.drain() == []
        assert store.changes.since(account.id, "Mailbox", d.modseq) == []
        r = await store.call(store.memberships.store_flags, account.id, box.id, [(1, 1)], "add", [], True)
        assert r.modseq == d.modseq + 1
        events = await sub.wait(timeout=30)
        assert [e.modseq for e in events] == [d.modseq + 1]
        assert await store.call(store.memberships.expunge, account.id, box.id) == [1]
        assert store.changes.highest_modseq(account.id) == d.modseq + 2
    finally:
        sub.close()


async def test_anything_deleted_follows_the_counter_and_never_says_no_for_another_account(store, account):
    """``memberships.anything_deleted``, EXPUNGE's check before it queues a write: False while nothing is
    \\Deleted, True once something is (by STORE or by an APPEND with \\Deleted), False again after the expunge; True
    for another account's mailbox or none at all, so that the write itself says ``NotFound`` there."""
    box = inbox(store, account)
    store.emails.ingest(account.id, simple(1), (box.id,))
    assert store.memberships.anything_deleted(account.id, box.id) is False
    store.memberships.store_flags(account.id, box.id, [(1, 1)], "add", [], True)
    assert store.memberships.anything_deleted(account.id, box.id) is True
    assert await store.call(store.memberships.expunge, account.id, box.id) == [1]
    assert store.memberships.anything_deleted(account.id, box.id) is False
    await store.deliver(account.id, simple(2), (box.id,), deleted=True)
    assert store.memberships.anything_deleted(account.id, box.id) is True
    bob = store.accounts.create("bob@example.test", "x")
    assert store.memberships.anything_deleted(bob.id, box.id) is True
    assert store.memberships.anything_deleted(account.id, "Fnosuchbox") is True
    with pytest.raises(NotFound):
        await store.call(store.memberships.expunge, bob.id, box.id)


async def test_changes_reach_other_nodes_through_postgresql(pg_url, tmp_path):
    """Two stores on one PostgreSQL database stand for two server nodes: a write on one wakes the other."""
    import asyncio

    from janusmail.store.store import Store

    node_a = Store.open(tmp_path / "a", pg_url)
    node_b = Store.open(tmp_path / "b", pg_url)
    try:
        node_b.start_listener()
        acct = node_a.accounts.create("multi@example.test", "x")
        box = node_a.mailboxes.by_path(acct.id, ["INBOX"])
        sub = node_b.notifier.subscribe(acct.id)
        # node_b's listener connects in the background and says nothing when it is ready, and a NOTIFY sent
        # before its LISTEN is not delivered; so write until node_b hears one of the writes (deadline 30 s).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        written: set[int] = set()
        match: list = []
        i = 0
        while not match:
            assert loop.time() < deadline, "node_b never heard node_a's writes"
            d = await node_a.call(node_a.emails.ingest, acct.id, simple(i), (box.id,))
            written.add(d.modseq)
            i += 1
            match = [e for e in await sub.wait(timeout=30) if e.modseq in written]
        assert "Email" in match[0].kinds and box.id in match[0].mailbox_ids
        sub.close()
    finally:
        node_a.close()
        node_b.close()
