"""The cached mailbox tree without counters (janusmail/store/mailbox_structure.py): resolving a mailbox name costs
no statement while no mailbox was created, renamed or deleted in any process (issue 10: reading the tree was about
10% of the event loop under the logged-in stress profile). Both backends; PostgreSQL has no cache (several hosts,
no shared memory), so there every call reads and every answer is fresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from janusmail.store.mailbox_structure import SHAPES, MailboxShape, StructureCache
from janusmail.store.schema import mailboxes
from janusmail.store.shared_counter import SharedCounter
from janusmail.store.store import Store
from tests.mailgen import simple


def count_tree_reads(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    real = store.sql.run

    def run(conn: Any, stmt: Any, params: Any = None) -> list[tuple]:
        if stmt is SHAPES:
            reads.append(1)
        return real(conn, stmt, params)

    monkeypatch.setattr(store.sql, "run", run)
    return reads


def names(shapes: tuple[MailboxShape, ...]) -> set[str]:
    return {s.name for s in shapes}


def test_the_tree_is_read_again_only_after_a_structural_change(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    acct = store.accounts.create("tree@example.test", "x")
    reads = count_tree_reads(store, monkeypatch)
    first = store.mailboxes.shapes(acct.id)
    assert "Work" not in names(first) and "inbox" in {s.role for s in first}
    assert store.mailboxes.shapes(acct.id) == first
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    store.emails.ingest(acct.id, simple(1), [inbox.id])  # counters move, the tree does not
    store.memberships.store_flags(acct.id, inbox.id, [(1, 1)], "add", ["$seen"], None)
    assert store.mailboxes.shapes(acct.id) == first
    expected_reads = 1 if store.sqlite else 3
    assert len(reads) == expected_reads

    work = store.mailboxes.create(acct.id, "Work")
    assert "Work" in names(store.mailboxes.shapes(acct.id))
    store.mailboxes.update(acct.id, work.id, name="Play")
    assert {"Play"} <= names(store.mailboxes.shapes(acct.id)) and "Work" not in names(store.mailboxes.shapes(acct.id))
    child = store.mailboxes.create(acct.id, "Child", work.id)
    shaped = {s.id: s for s in store.mailboxes.shapes(acct.id)}
    assert shaped[child.id].parent_id == work.id and shaped[child.id].uidvalidity == child.uidvalidity
    store.mailboxes.update(acct.id, child.id, parent_id=None)
    assert {s.id: s for s in store.mailboxes.shapes(acct.id)}[child.id].parent_id is None
    store.mailboxes.destroy(acct.id, work.id, remove_emails=True)
    assert work.id not in {s.id for s in store.mailboxes.shapes(acct.id)}
    reads_before = len(reads)
    store.mailboxes.shapes(acct.id)
    assert len(reads) == reads_before + (0 if store.sqlite else 1)


def test_another_process_s_change_is_seen_at_the_next_lookup(store: Any, db_url: str | None, tmp_path: Path) -> None:
    """A second Store on the same database (a worker, ``janusmail`` run from a shell): its rename moves the
    shared counter after its commit, so this store's cached tree is not used again."""
    acct = store.accounts.create("other@example.test", "x")
    box = store.mailboxes.create(acct.id, "Before")
    assert "Before" in names(store.mailboxes.shapes(acct.id))
    other = Store.open(tmp_path / "data", db_url)
    try:
        other.mailboxes.update(acct.id, box.id, name="After")
    finally:
        other.close()
    now = names(store.mailboxes.shapes(acct.id))
    assert "After" in now and "Before" not in now


def test_a_tree_read_in_an_older_snapshot_is_not_kept_as_the_newest(store: Any, tmp_path: Path,
                                                                    db_url: str | None) -> None:
    """A shared read block (a command's credential check and its reads) may have begun its snapshot before
    another process renamed a mailbox and moved the counter. The tree it reads is the old one: it must not be
    cached under the counter's new value, or every later lookup would find the old name."""
    acct = store.accounts.create("snap@example.test", "x")
    box = store.mailboxes.create(acct.id, "Old")
    store.mailboxes.shapes(acct.id)
    other = Store.open(tmp_path / "data", db_url)
    try:
        with store.shared_read():
            with store.read() as conn:  # the block's transaction and snapshot begin here (SQLAlchemy's autobegin)
                conn.execute(sa.select(mailboxes.c.name).where(mailboxes.c.id == box.id)).all()
            other.mailboxes.update(acct.id, box.id, name="New")
            inside = names(store.mailboxes.shapes(acct.id))
            if store.sqlite:
                assert "Old" in inside  # (that snapshot's tree: what the block's other reads see too)
    finally:
        other.close()
    after = names(store.mailboxes.shapes(acct.id))
    assert "New" in after and "Old" not in after


def test_a_write_transaction_neither_uses_nor_fills_the_cache(store: Any) -> None:
    """Inside a group commit the tree read is the group's own, uncommitted one: a mailbox made by a call that
    is then rolled back must not stay in the cache."""
    from janusmail.store.groupcommit import Group
    from janusmail.store.groupcommit import _local as lane_state
    from janusmail.store.mailboxes import insert_mailbox

    acct = store.accounts.create("group@example.test", "x")
    store.mailboxes.shapes(acct.id)
    group = Group(store, None)
    lane_state.group = group
    try:
        with pytest.raises(RuntimeError), store.write(acct.id) as tx:
            insert_mailbox(tx, "Uncommitted", None, role=None, sort_order=0, subscribed=True)
            assert "Uncommitted" in names(store.mailboxes.shapes(acct.id))
            raise RuntimeError("roll back")
    finally:
        lane_state.group = None
        group.close()
    assert "Uncommitted" not in names(store.mailboxes.shapes(acct.id))


def test_the_cache_is_bounded_and_off_without_a_shared_counter(tmp_path: Path) -> None:
    cache = StructureCache(SharedCounter(str(tmp_path / "db-mailboxes")), max_accounts=2)
    shape = (MailboxShape("F1", "INBOX", None, "inbox", 0, True, 1),)
    try:
        for account in ("A1", "A2", "A3"):
            cache.keep(account, cache.stamp() or 0, shape)
        assert cache.lookup("A1") is None and cache.lookup("A3") == shape
        cache.signal.bump()
        assert cache.lookup("A3") is None
    finally:
        cache.close()
    off = StructureCache(SharedCounter(None))
    assert not off.enabled and off.stamp() is None and off.lookup("A1") is None


def test_deleting_an_account_moves_the_counter(store: Any) -> None:
    """A deleted account's trees go from every process's cache (its change log is forgotten, its event is not)."""
    acct = store.accounts.create("gone@example.test", "x")
    store.mailboxes.shapes(acct.id)
    before = store.mailbox_structure.stamp()
    store.accounts.delete(acct.id)
    if store.sqlite:
        assert store.mailbox_structure.stamp() > before
        assert store.mailbox_structure.lookup(acct.id) is None
    assert store.mailboxes.shapes(acct.id) == ()


def test_a_delivery_s_recipient_reads_no_tree(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """LMTP resolves each recipient twice per message (RCPT, DATA): the INBOX comes from the cached shapes, and
    an address whose account was deleted and made again reaches the new account's INBOX."""
    acct = store.accounts.create("rcpt@example.test", "x")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    assert store.accounts.recipient("RCPT@example.test") == (acct.id, inbox.id)
    reads = count_tree_reads(store, monkeypatch)
    for _ in range(3):
        assert store.accounts.recipient("rcpt@example.test") == (acct.id, inbox.id)
    assert len(reads) == (0 if store.sqlite else 3)
    assert store.accounts.recipient("nobody@example.test") is None
    store.accounts.delete(acct.id)
    assert store.accounts.recipient("rcpt@example.test") is None
    again = store.accounts.create("rcpt@example.test", "x")
    assert store.accounts.recipient("rcpt@example.test") == (again.id, store.mailboxes.by_path(again.id, ["INBOX"]).id)
    assert store.mailboxes.inbox_id(again.id) != inbox.id
