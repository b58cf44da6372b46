"""Contract of ``store.keywords``: the keywords a mailbox uses (IMAP FLAGS / PERMANENTFLAGS at SELECT), kept by
IMAP and JMAP writes alike, never another account's; on both backends."""

from __future__ import annotations

from janusmail.store.emails import EmailUpdate
from janusmail.store.writes import is_write
from tests.mailgen import simple

from .util import box


def test_in_mailbox_is_a_read(store) -> None:  # noqa: ANN001
    assert not is_write(store.keywords.in_mailbox)


def test_distinct_non_system_keywords_sorted_in_their_spelling(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    assert store.keywords.in_mailbox(a, inbox.id) == []
    store.emails.ingest(a, simple(1), (inbox.id,), ("$seen", "$Flagged", "Zeta", "$Junk"))
    store.emails.ingest(a, simple(2), (inbox.id,), ("alpha", "$draft", "zeta"))
    got = store.keywords.in_mailbox(a, inbox.id)
    assert [k.lower() for k in got] == ["$junk", "alpha", "zeta"]  # system flags are not keywords here
    assert "$Junk" in got and "alpha" in got  # the spelling the client used


def test_only_the_mailboxes_own_messages_count(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive, trash = box(store, a), box(store, a, "Archive"), box(store, a, "Trash")
    store.emails.ingest(a, simple(1), (inbox.id, archive.id), ("Both",))
    store.emails.ingest(a, simple(2), (archive.id,), ("ArchiveOnly",))
    assert store.keywords.in_mailbox(a, inbox.id) == ["Both"]
    assert store.keywords.in_mailbox(a, archive.id) == ["ArchiveOnly", "Both"]
    assert store.keywords.in_mailbox(a, trash.id) == []


def test_imap_and_jmap_writes_are_both_seen(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    d = store.emails.ingest(a, simple(1), (inbox.id,))
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", ["FromImap"], None)
    store.emails.update(a, {d.email_id: EmailUpdate(add_keywords=["fromjmap"])})
    assert store.keywords.in_mailbox(a, inbox.id) == ["FromImap", "fromjmap"]
    store.emails.update(a, {d.email_id: EmailUpdate(remove_keywords=["FROMIMAP"])})
    assert store.keywords.in_mailbox(a, inbox.id) == ["fromjmap"]
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "replace", ["$seen"], None)
    assert store.keywords.in_mailbox(a, inbox.id) == []


def test_one_entry_per_case_insensitive_keyword(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    store.emails.ingest(a, simple(1), (inbox.id,), ("Work",))
    store.emails.ingest(a, simple(2), (inbox.id,), ("WORK",))
    store.memberships.store_flags(a, inbox.id, [(1, 2)], "add", ["work"], None)
    got = store.keywords.in_mailbox(a, inbox.id)
    assert len(got) == 1 and got[0].lower() == "work" and got[0] in ("Work", "WORK")


def test_deleted_memberships_count_until_expunged(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    store.emails.ingest(a, simple(1), (inbox.id,), ("Doomed",))
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", [], True)
    assert store.keywords.in_mailbox(a, inbox.id) == ["Doomed"]  # IMAP still shows the message
    store.memberships.expunge(a, inbox.id)
    assert store.keywords.in_mailbox(a, inbox.id) == []


def test_moves_and_destroys_take_keywords_with_them(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, trash = box(store, a), box(store, a, "Trash")
    d1 = store.emails.ingest(a, simple(1), (inbox.id,), ("One",))
    store.emails.ingest(a, simple(2), (inbox.id,), ("Two",))
    store.memberships.copy(a, inbox.id, [(2, 2)], trash.id, move=True)
    assert store.keywords.in_mailbox(a, inbox.id) == ["One"]
    assert store.keywords.in_mailbox(a, trash.id) == ["Two"]
    store.emails.destroy(a, [d1.email_id])
    assert store.keywords.in_mailbox(a, inbox.id) == []


def test_another_accounts_mailbox_answers_nothing(store, account) -> None:  # noqa: ANN001
    a = account.id
    bob = store.accounts.create("bob@example.test", "x")
    inbox = box(store, a)
    store.emails.ingest(a, simple(1), (inbox.id,), ("Secret",))
    assert store.keywords.in_mailbox(bob.id, inbox.id) == []
    assert store.keywords.in_mailbox(a, "F-no-such") == []
    assert store.keywords.in_mailbox("A-no-such", inbox.id) == []
    assert store.keywords.in_mailbox(a, inbox.id) == ["Secret"]
