"""``store.replacements.replace`` (IMAP REPLACE, RFC 8508) on both backends: the new message in and the old
membership out in ONE write (one modseq, JMAP sees one Email created and one destroyed, the counters move by
the difference), and a replacement whose old message is gone stores nothing."""

from __future__ import annotations

import pytest

from janusmail.store.model import IngestItem, NotFound
from janusmail.store.store import Store
from tests.mailgen import simple


def setup(store: Store) -> tuple[str, str, str]:
    acct = store.accounts.create("replacer@example.test", "x", None)
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    drafts = store.mailboxes.by_path(acct.id, ["Drafts"])
    store.emails.ingest(acct.id, simple(1), [drafts.id], ["$draft"])
    store.emails.ingest(acct.id, simple(2), [drafts.id], ["$draft"])
    return acct.id, drafts.id, inbox.id


def test_replace_is_one_write(store: Store):
    account_id, drafts, _inbox = setup(store)
    before = store.changes.highest_modseq(account_id)
    old_email = store.messages.fetch_rows(drafts, [(1, 1)]).rows[0][3]
    delivered = store.replacements.replace(account_id, drafts, 1,
                                           IngestItem(simple(3), (drafts,), ("$draft", "$seen"), None))
    assert delivered.modseq == before + 1  # one transaction
    assert delivered.uids == {drafts: 3}
    assert [r[0] for r in store.messages.fetch_rows(drafts, [(1, 10)]).rows] == [2, 3]
    assert store.messages.vanished_uids(drafts, [(1, 10)], before) == [1]
    counts = store.mailboxes.counts(account_id, [drafts])[drafts]
    assert counts.messages == 2 and counts.total_emails == 2 and counts.unseen == 1
    changes = {(c.object_id, c.op) for c in store.changes.since(account_id, "Email", before)}
    assert (delivered.email_id, "c") in changes and (old_email, "d") in changes


def test_replace_into_another_mailbox(store: Store):
    account_id, drafts, inbox = setup(store)
    delivered = store.replacements.replace(account_id, drafts, 2, IngestItem(simple(4), (inbox,), (), None))
    assert delivered.uids == {inbox: 1}
    assert [r[0] for r in store.messages.fetch_rows(drafts, [(1, 10)]).rows] == [1]


@pytest.mark.parametrize("uid", [7, 0])
def test_nothing_stored_when_the_old_message_is_gone(store: Store, uid: int):
    account_id, drafts, inbox = setup(store)
    before = store.changes.highest_modseq(account_id)
    with pytest.raises(NotFound):
        store.replacements.replace(account_id, drafts, uid, IngestItem(simple(5), (inbox,), (), None))
    assert store.changes.highest_modseq(account_id) == before
    assert store.messages.fetch_rows(inbox, [(1, 10)]).rows == []
    assert store.mailboxes.counts(account_id, [inbox]).get(inbox) is None or \
        store.mailboxes.counts(account_id, [inbox])[inbox].total_emails == 0


def test_another_accounts_mailbox_is_not_found(store: Store):
    account_id, drafts, _inbox = setup(store)
    other = store.accounts.create("other@example.test", "x", None)
    other_inbox = store.mailboxes.by_path(other.id, ["INBOX"])
    with pytest.raises(NotFound):  # the old message must be in one of the writer's own mailboxes
        store.replacements.replace(other.id, drafts, 1, IngestItem(simple(6), (other_inbox.id,), (), None))
    assert [r[0] for r in store.messages.fetch_rows(drafts, [(1, 10)]).rows] == [1, 2]
    assert account_id
