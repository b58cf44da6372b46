"""Contract of ``store.visible_emails`` (emails as JMAP sees them) and the shared reads JMAP uses
(``state_snapshot``, ``unknown_mailboxes``, ``message_cache``): the same tests on SQLite and PostgreSQL.

The rule under test: an email exists for JMAP only while it has a membership that is not ``\\Deleted``; the
reads leave the others out and ``apply`` neither updates nor destroys them, deciding that inside its own
write transaction.
"""

from __future__ import annotations

from janusmail.store.emails import EmailUpdate
from janusmail.store.model import NotFound
from janusmail.store.visible_emails import EmailRow
from tests.mailgen import simple

RICH = (
    b"From: a@example.test\r\nTo: b@example.test\r\nSubject: parts\r\nMessage-ID: <parts@x>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n--BB\r\n"
    b"Content-Type: text/plain\r\n\r\nhello\r\n--BB\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAwQ=\r\n--BB--\r\n"
)


def box(store, account, name="INBOX"):  # noqa: ANN001, ANN201
    return store.mailboxes.by_path(account.id, [name])


def test_among_leaves_out_deleted_only_unknown_and_foreign(store, account):
    inbox = box(store, account)
    live = store.emails.ingest(account.id, simple(1), (inbox.id,))
    hidden = store.emails.ingest(account.id, simple(2), (inbox.id,), deleted=True)
    bob = store.accounts.create("bob@example.test", "x")
    foreign = store.emails.ingest(bob.id, simple(3), (box(store, bob).id,))
    ids = [live.email_id, hidden.email_id, foreign.email_id, "Mnope"]
    assert store.visible_emails.among(account.id, ids) == {live.email_id}
    assert store.visible_emails.among(bob.id, ids) == {foreign.email_id}
    assert store.visible_emails.among(account.id, []) == set()


def test_among_counts_one_visible_membership_among_deleted_ones(store, account):
    inbox, archive = box(store, account), box(store, account, "Archive")
    d = store.emails.ingest(account.id, simple(1), (inbox.id, archive.id))
    store.memberships.store_flags(account.id, inbox.id, [(1, 1)], "add", [], True)
    assert store.visible_emails.among(account.id, [d.email_id]) == {d.email_id}
    store.memberships.store_flags(account.id, archive.id, [(1, 1)], "add", [], True)
    assert store.visible_emails.among(account.id, [d.email_id]) == set()


def test_newest_orders_by_received_at_and_limits(store, account):
    inbox = box(store, account)
    old = store.emails.ingest(account.id, simple(1), (inbox.id,), received_at=1_000)
    new = store.emails.ingest(account.id, simple(2), (inbox.id,), received_at=3_000)
    store.emails.ingest(account.id, simple(3), (inbox.id,), received_at=5_000, deleted=True)  # the newest, but hidden
    mid = store.emails.ingest(account.id, simple(4), (inbox.id,), received_at=2_000)
    assert store.visible_emails.newest(account.id, 10) == [new.email_id, mid.email_id, old.email_id]
    assert store.visible_emails.newest(account.id, 2) == [new.email_id, mid.email_id]
    other = store.accounts.create("bob@example.test", "x")
    assert store.visible_emails.newest(other.id, 10) == []


def test_rows_in_asked_order_with_visible_mailboxes_and_keywords(store, account):
    inbox, archive = box(store, account), box(store, account, "Archive")
    a = store.emails.ingest(account.id, simple(1), (inbox.id, archive.id), ("$seen", "Zeta", "alpha"), received_at=1_000)
    b = store.emails.ingest(account.id, RICH, (inbox.id,), received_at=2_000)
    store.memberships.store_flags(account.id, archive.id, [(1, 1)], "add", [], True)  # a's Archive copy is \Deleted
    hidden = store.emails.ingest(account.id, simple(3), (inbox.id,), deleted=True)
    rows = store.visible_emails.rows(account.id, [b.email_id, "Mnope", hidden.email_id, a.email_id, b.email_id])
    assert [r.id for r in rows] == [b.email_id, a.email_id]
    rb, ra = rows
    assert isinstance(ra, EmailRow)
    assert (ra.blob_id, ra.thread_id, ra.size, ra.received_at) == (a.blob_id, a.thread_id, a.size, 1_000)
    assert ra.mailbox_ids == [inbox.id]
    assert ra.flags & 1 and ra.keywords == ["alpha", "zeta"]
    assert rb.keywords == [] and rb.flags == 0
    assert rb.has_attachment is True and ra.has_attachment is False
    assert ra.preview.startswith("Body of message 1")
    assert ra.cache is None and ra.location is None


def test_rows_cache_location_and_no_keywords(store, account):
    inbox = box(store, account)
    d = store.emails.ingest(account.id, RICH, (inbox.id,), ("work",))
    (row,) = store.visible_emails.rows(account.id, [d.email_id], keywords=False, cache=True, location=True)
    assert row.keywords == []
    assert isinstance(row.cache, dict) and row.cache.get("hasAttachment")
    assert row.location == store.emails.location(account.id, d.email_id)
    assert store.blobs.read_location(row.location) == RICH


def test_rows_of_another_account_are_absent(store, account):
    d = store.emails.ingest(account.id, simple(1), (box(store, account).id,))
    bob = store.accounts.create("bob@example.test", "x")
    assert store.visible_emails.rows(bob.id, [d.email_id], cache=True, location=True) == []


def test_thread_members_oldest_first_visible_only(store, account):
    inbox = box(store, account)
    root = store.emails.ingest(account.id, simple(1, subject="Topic", msgid="root@x"), (inbox.id,), received_at=2_000)
    reply = store.emails.ingest(account.id, simple(2, subject="Re: Topic", in_reply_to="root@x", references=["root@x"]), (inbox.id,),
                         received_at=1_000)
    gone = store.emails.ingest(account.id, simple(3, subject="Re: Topic", in_reply_to="root@x", references=["root@x"]), (inbox.id,),
                        received_at=3_000, deleted=True)
    assert root.thread_id == reply.thread_id == gone.thread_id
    lone = store.emails.ingest(account.id, simple(4), (inbox.id,), deleted=True)
    got = store.visible_emails.thread_members(account.id, [root.thread_id, lone.thread_id, "Tnope"])
    assert got == {root.thread_id: [reply.email_id, root.email_id]}
    bob = store.accounts.create("bob@example.test", "x")
    assert store.visible_emails.thread_members(bob.id, [root.thread_id]) == {}


def test_apply_updates_and_destroys_in_one_transaction(store, account):
    inbox = box(store, account)
    keep = store.emails.ingest(account.id, simple(1), (inbox.id,))
    drop = store.emails.ingest(account.id, simple(2), (inbox.id,))
    before = store.changes.highest_modseq(account.id)
    out = store.visible_emails.apply(account.id, {keep.email_id: EmailUpdate(add_keywords=["$flagged"])},
                                     [drop.email_id])
    assert out.update_errors == {} and out.not_destroyed == []
    assert store.changes.highest_modseq(account.id) == before + 1  # one transaction for both
    (row,) = store.visible_emails.rows(account.id, [keep.email_id, drop.email_id])
    assert row.id == keep.email_id and row.flags & 4
    entries = store.changes.since(account.id, "Email", before)
    assert {(e.object_id, e.op) for e in entries} == {(keep.email_id, "u"), (drop.email_id, "d")}
    assert {e.modseq for e in entries} == {before + 1}


def test_apply_refuses_invisible_emails_and_reports_store_errors(store, account):
    inbox = box(store, account)
    live = store.emails.ingest(account.id, simple(1), (inbox.id,))
    hidden = store.emails.ingest(account.id, simple(2), (inbox.id,), deleted=True)
    bob = store.accounts.create("bob@example.test", "x")
    foreign = store.emails.ingest(bob.id, simple(3), (box(store, bob).id,))
    out = store.visible_emails.apply(
        account.id,
        {
            live.email_id: EmailUpdate(mailbox_ids=["Mnope"]),
            hidden.email_id: EmailUpdate(add_keywords=["$seen"]),
            foreign.email_id: EmailUpdate(add_keywords=["$seen"]),
        },
        [hidden.email_id, foreign.email_id, "Mnope"],
    )
    assert set(out.update_errors) == {live.email_id, hidden.email_id, foreign.email_id}
    assert isinstance(out.update_errors[live.email_id], NotFound)
    assert out.update_errors[live.email_id].args[0] == "Mnope"  # the mailbox, not the email
    assert out.update_errors[hidden.email_id].args[0] == hidden.email_id
    assert out.not_destroyed == [hidden.email_id, foreign.email_id, "Mnope"]
    # the \Deleted-only email is still there for IMAP, untouched; bob's email too
    (row,) = store.visible_emails.rows(bob.id, [foreign.email_id])
    assert row.flags == 0
    assert store.emails.raw(account.id, hidden.email_id) == simple(2)


def test_apply_with_nothing_visible_writes_nothing(store, account):
    inbox = box(store, account)
    hidden = store.emails.ingest(account.id, simple(1), (inbox.id,), deleted=True)
    before = store.changes.highest_modseq(account.id)
    out = store.visible_emails.apply(account.id, {hidden.email_id: EmailUpdate(add_keywords=["$seen"])},
                                     ["Mnope"])
    assert isinstance(out.update_errors[hidden.email_id], NotFound) and out.not_destroyed == ["Mnope"]
    assert store.changes.highest_modseq(account.id) == before
    assert store.visible_emails.apply(account.id) == type(out)({}, [])


def test_apply_is_marked_as_a_write(store):
    from janusmail.store.writes import is_write

    assert is_write(store.visible_emails.apply)
    assert not is_write(store.visible_emails.rows)


def test_state_snapshot(store, account):
    assert store.changes.snapshot(account.id) == {"Mailbox": store.changes.kind_state(account.id, "Mailbox"), "Email": 0,
                                                "Thread": 0, "EmailDelivery": 0}
    inbox = box(store, account)
    d = store.emails.ingest(account.id, simple(1), (inbox.id,))
    created = store.changes.kind_state(account.id, "Email")
    store.emails.update(account.id, {d.email_id: EmailUpdate(add_keywords=["$seen"])})
    snap = store.changes.snapshot(account.id)
    assert snap["Email"] == store.changes.kind_state(account.id, "Email") > created
    assert snap["EmailDelivery"] == created  # a keyword change is no delivery
    assert snap["Thread"] == store.changes.kind_state(account.id, "Thread") > 0
    assert snap["Mailbox"] == store.changes.kind_state(account.id, "Mailbox")


def test_unknown_mailboxes(store, account):
    inbox, archive = box(store, account), box(store, account, "Archive")
    bob = store.accounts.create("bob@example.test", "x")
    theirs = box(store, bob)
    assert store.mailboxes.unknown(account.id, ["Mx", inbox.id, theirs.id, archive.id]) == ["Mx", theirs.id]
    assert store.mailboxes.unknown(account.id, []) == []


def test_message_cache_by_blob(store, account):
    d = store.emails.ingest(account.id, RICH, (box(store, account).id,))
    cache = store.emails.message_cache(account.id, d.blob_id)
    assert isinstance(cache, dict) and cache.get("hasAttachment")
    bob = store.accounts.create("bob@example.test", "x")
    assert store.emails.message_cache(bob.id, d.blob_id) is None
    assert store.emails.message_cache(account.id, "Gnope") is None
