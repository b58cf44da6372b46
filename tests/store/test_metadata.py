"""``store.metadata`` (IMAP METADATA, RFC 5464) on both backends: entries of a mailbox and of the server view,
depth, all-or-nothing writes with the limits checked in the write, deletion with the mailbox, renaming with
it, and one account never seeing another's."""

from __future__ import annotations

import pytest

from janusmail.store.metadata import MetadataTooLarge, MetadataTooMany, entries_below
from janusmail.store.model import NotFound
from janusmail.store.writes import is_write


def test_set_get_remove(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = store.mailboxes.by_path(a, ["INBOX"])
    assert is_write(store.metadata.set) and not is_write(store.metadata.get)
    store.metadata.set(a, inbox.id, [("/shared/comment", b"box"), ("/private/vendor/x/a", b"\x00\xff")])
    store.metadata.set(a, None, [("/shared/comment", b"server")])
    assert store.metadata.get(a, inbox.id, ["/shared/comment"]) == [("/shared/comment", b"box")]
    assert store.metadata.get(a, None, ["/shared/comment", "/private/comment"]) == [("/shared/comment", b"server")]
    assert store.metadata.get(a, inbox.id, ["/private"], None) == [("/private/vendor/x/a", b"\x00\xff")]
    store.metadata.set(a, inbox.id, [("/shared/comment", None), ("/private/vendor/x/a", b"new")])
    assert store.metadata.get(a, inbox.id, ["/shared", "/private"], None) == [("/private/vendor/x/a", b"new")]
    store.metadata.set(a, inbox.id, [("/shared/gone", None)])  # removing what is not there is no error
    assert store.metadata.count(a) == 2


def test_depth() -> None:
    rows = [("/shared/a", b"1"), ("/shared/a/b", b"2"), ("/shared/a/b/c", b"3"), ("/shared/ab", b"4")]
    assert entries_below(rows, ["/shared/a"], 0) == [("/shared/a", b"1")]
    assert entries_below(rows, ["/shared/a"], 1) == [("/shared/a", b"1"), ("/shared/a/b", b"2")]
    assert entries_below(rows, ["/shared/a"], None) == rows[:3]
    assert entries_below(rows, ["/shared"], 1) == [("/shared/a", b"1"), ("/shared/ab", b"4")]


def test_limits_refuse_the_whole_write(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = store.mailboxes.by_path(a, ["INBOX"])
    store.metadata.max_value_size = 10
    store.metadata.max_entries = 3
    with pytest.raises(MetadataTooLarge) as info:
        store.metadata.set(a, inbox.id, [("/shared/a", b"ok"), ("/shared/b", b"x" * 11)])
    assert info.value.limit == 10
    assert store.metadata.get(a, inbox.id, ["/shared"], None) == []
    store.metadata.set(a, inbox.id, [("/shared/a", b"1"), ("/shared/b", b"2")])
    store.metadata.set(a, None, [("/shared/c", b"3")])
    with pytest.raises(MetadataTooMany):
        store.metadata.set(a, None, [("/shared/d", b"4")])
    store.metadata.set(a, None, [("/shared/c", b"changed")])  # replacing adds nothing
    store.metadata.set(a, inbox.id, [("/shared/a", None), ("/shared/e", b"5")])  # one out, one in
    assert store.metadata.count(a) == 3


def test_deleted_and_renamed_with_the_mailbox(store, account) -> None:  # noqa: ANN001
    a = account.id
    box = store.mailboxes.create(a, "Projects")
    store.metadata.set(a, box.id, [("/shared/comment", b"mine")])
    store.mailboxes.update(a, box.id, name="Renamed")
    assert store.metadata.get(a, box.id, ["/shared/comment"]) == [("/shared/comment", b"mine")]
    store.mailboxes.destroy(a, box.id, remove_emails=True)
    assert store.metadata.count(a) == 0
    again = store.mailboxes.create(a, "Projects")
    assert store.metadata.get(a, again.id, ["/shared/comment"]) == []
    with pytest.raises(NotFound):
        store.metadata.get(a, box.id, ["/shared/comment"])
    with pytest.raises(NotFound):
        store.metadata.set(a, box.id, [("/shared/comment", b"x")])


def test_accounts_are_isolated(store, account) -> None:  # noqa: ANN001
    a = account.id
    b = store.accounts.create("bob@example.test", "x").id
    a_inbox = store.mailboxes.by_path(a, ["INBOX"])
    store.metadata.set(a, a_inbox.id, [("/private/comment", b"alice's")])
    store.metadata.set(a, None, [("/private/comment", b"alice server")])
    assert store.metadata.get(b, None, ["/private/comment"]) == []
    with pytest.raises(NotFound):
        store.metadata.get(b, a_inbox.id, ["/private/comment"])
    with pytest.raises(NotFound):
        store.metadata.set(b, a_inbox.id, [("/private/comment", b"bob's")])
    assert store.metadata.get(a, a_inbox.id, ["/private/comment"]) == [("/private/comment", b"alice's")]
    store.accounts.delete(a)
    assert store.metadata.count(a) == 0
