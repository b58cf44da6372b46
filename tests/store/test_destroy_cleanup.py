"""What goes with a destroyed email, on both backends: its memberships, keywords, full-text rows (SQLite: the
FTS5 word index, ``email_text`` and the trigram index (their rows through ``search_trash``, in the background's
next batch), or its row of the search queue when it was not indexed yet; PostgreSQL: ``email_search``) and a
thread left empty, with its references. ``emails.destroy_rows`` relies on the foreign keys' ``ON DELETE CASCADE`` for most of it
(issue 10: fewer statements on the writer lane), so these tests read the tables themselves.

The three ways an email is destroyed are covered: IMAP EXPUNGE of its last copy, JMAP Email/set destroy and a
mailbox destroy; and the edges of EXPUNGE's "last copy" test (a copy elsewhere, a second copy in the same
mailbox, a \\Deleted copy elsewhere that stays)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from janusmail.store.search.queue import drain
from tests.mailgen import simple

from .contract.util import box, ops

#: (table, column naming the email) of every row an email owns besides ``emails`` itself
_OWNED = (("messages", "email_id"), ("email_keywords", "email_id"), ("email_search", "email_id"))
_SQLITE_OWNED = (("email_text", "email_id"), ("email_fts", "email_id"), ("search_queue", "email_id"))


def _rows_of(store: Any, email_id: str) -> dict[str, int]:
    """How many rows each table holds for the email (only the non-empty ones)."""
    owned = _OWNED + (_SQLITE_OWNED if store.sqlite else ())
    with store.engine.connect() as conn:
        out = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t} WHERE {c} = :e"), {"e": email_id}).scalar()
               for t, c in owned}
        out["emails"] = conn.execute(sa.text("SELECT count(*) FROM emails WHERE id = :e"), {"e": email_id}).scalar()
    return {t: n for t, n in out.items() if n}


def _trigram_rows(store: Any) -> int:
    """Rows of SQLite's trigram index (it has no email id: its rows follow ``email_text``'s by trigger)."""
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM email_trgm")).scalar() if store.sqlite else 0


def _trash_rows(store: Any) -> int:
    """SQLite: destroyed emails whose index rows wait for the background (search/queue.py)."""
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM search_trash")).scalar()


def _thread_rows(store: Any, thread_id: str) -> tuple[int, int]:
    """(threads rows, thread_refs rows) of a thread."""
    with store.engine.connect() as conn:
        return (conn.execute(sa.text("SELECT count(*) FROM threads WHERE id = :t"), {"t": thread_id}).scalar(),
                conn.execute(sa.text("SELECT count(*) FROM thread_refs WHERE thread_id = :t"),
                             {"t": thread_id}).scalar())


def test_expunge_of_the_last_copy_takes_everything_and_an_emptied_thread(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    root = store.emails.ingest(a, simple(1, msgid="root@x"), (inbox.id,))  # uid 1
    reply = store.emails.ingest(a, simple(2, subject="Re: Message number 1", in_reply_to="root@x",
                                       references=["root@x"]), (inbox.id,),
                                ("$custom",))  # uid 2, root's thread
    alone = store.emails.ingest(a, simple(3, msgid="alone@x"), (inbox.id,), ("$other",))  # uid 3, own thread
    elsewhere = store.emails.ingest(a, simple(4), (inbox.id,))  # uid 4, a live copy in Archive
    store.memberships.copy(a, inbox.id, [(4, 4)], archive.id)
    twice = store.emails.ingest(a, simple(5, msgid="twice@x"), (inbox.id,), ("$k",))  # uid 5 and uid 6
    assert store.memberships.copy(a, inbox.id, [(5, 5)], inbox.id) == [(5, 6)]
    hidden = store.emails.ingest(a, simple(7, msgid="hidden@x"), (inbox.id,))  # uid 7, \Deleted copy in Archive
    store.memberships.copy(a, inbox.id, [(7, 7)], archive.id)
    store.memberships.store_flags(a, archive.id, [(2, 2)], "add", [], True)
    assert reply.thread_id == root.thread_id and _rows_of(store, alone.email_id)["email_keywords"] == 1
    assert _thread_rows(store, alone.thread_id) == (1, 1)
    drain(store)  # (SQLite: indexed, so the expunge has index rows to take)
    trigrams = _trigram_rows(store)
    store.memberships.store_flags(a, inbox.id, [(2, 7)], "add", [], True)
    before = store.changes.highest_modseq(a)

    assert store.memberships.expunge(a, inbox.id) == [2, 3, 4, 5, 6, 7]

    if store.sqlite:  # their index rows wait in the trash for the background's next batch
        assert _trash_rows(store) == 3
        drain(store)
        assert _trash_rows(store) == 0
    for d in (reply, alone, twice):
        assert _rows_of(store, d.email_id) == {}, d
    assert _thread_rows(store, alone.thread_id) == (0, 0) and _thread_rows(store, twice.thread_id) == (0, 0)
    assert _thread_rows(store, root.thread_id)[0] == 1  # root is still in it
    assert _rows_of(store, elsewhere.email_id) == {"emails": 1, "messages": 1, **_text_rows(store)}
    assert _rows_of(store, hidden.email_id) == {"emails": 1, "messages": 1, **_text_rows(store)}
    if store.sqlite:
        assert _trigram_rows(store) == trigrams - 3
    assert ops(store, a, "Email", before) == {(reply.email_id, "d"), (alone.email_id, "d"), (twice.email_id, "d"),
                                              (elsewhere.email_id, "u"), (hidden.email_id, "u")}
    assert ops(store, a, "Thread", before) == {(root.thread_id, "u"), (alone.thread_id, "d"),
                                               (twice.thread_id, "d")}
    assert store.messages.vanished_uids(inbox.id, [(1, 10)], before) == [2, 3, 4, 5, 6, 7]
    assert store.messages.vanished_uids(archive.id, [(1, 10)], before) == []
    counts = store.mailboxes.counts(a, [inbox.id, archive.id])
    assert counts[inbox.id].messages == 1 and counts[archive.id].messages == 2 and counts[archive.id].deleted == 1


def test_expunging_one_of_two_copies_in_a_mailbox_keeps_the_email(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    d = store.emails.ingest(a, simple(1), (inbox.id,), ("$k",))
    drain(store)
    store.memberships.copy(a, inbox.id, [(1, 1)], inbox.id)
    store.memberships.store_flags(a, inbox.id, [(2, 2)], "add", [], True)
    before = store.changes.highest_modseq(a)
    assert store.memberships.expunge(a, inbox.id) == [2]
    assert _rows_of(store, d.email_id) == {"emails": 1, "messages": 1, "email_keywords": 1, **_text_rows(store)}
    assert ops(store, a, "Email", before) == {(d.email_id, "u")}
    assert ops(store, a, "Thread", before) == set()
    assert store.messages.vanished_uids(inbox.id, [(1, 10)], before) == [2]


def test_jmap_destroy_and_mailbox_destroy_take_everything(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    gone = store.emails.ingest(a, simple(1, msgid="gone@x"), (inbox.id, archive.id), ("$k",))
    drain(store)  # (SQLite: gone is indexed; only_there will still wait in the search queue when destroyed)
    only_there = store.emails.ingest(a, simple(2, msgid="there@x"), (archive.id,), ("$k",))
    if store.sqlite:
        assert _rows_of(store, only_there.email_id)["search_queue"] == 1
    before = store.changes.highest_modseq(a)
    outcome = store.visible_emails.apply(a, {}, [gone.email_id])
    assert outcome.not_destroyed == []
    # SQLite: its word-index row (found by email id) waits in the trash for the background's next batch
    assert _rows_of(store, gone.email_id) == ({"email_fts": 1} if store.sqlite else {})
    if store.sqlite:
        assert _trash_rows(store) == 1 and _thread_rows(store, gone.thread_id) == (0, 0)
    assert store.messages.vanished_uids(inbox.id, [(1, 10)], before) == [1]
    assert store.messages.vanished_uids(archive.id, [(1, 10)], before) == [1]
    assert ops(store, a, "Thread", before) == {(gone.thread_id, "d")}
    assert store.mailboxes.destroy(a, archive.id, remove_emails=True) == [only_there.email_id]
    assert _rows_of(store, only_there.email_id) == {} and _thread_rows(store, only_there.thread_id) == (0, 0)
    if store.sqlite:
        assert _trash_rows(store) == 1  # (only_there left the queue unindexed: nothing of it to unindex)
        drain(store)
        assert _rows_of(store, gone.email_id) == {} and _trash_rows(store) == 0 and _trigram_rows(store) == 0


def _text_rows(store: Any) -> dict[str, int]:
    """The full-text rows a live email has (besides ``emails`` and its memberships)."""
    return {"email_text": 1, "email_fts": 1} if store.sqlite else {"email_search": 1}
