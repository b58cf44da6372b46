"""JMAP Email/set applies a batch of updates with set-based statements (issue 10 item 2), on both backends:
the number of statements does not grow with the number of emails, whatever the updates change (keywords,
mailboxes, both), and each email still succeeds or fails alone."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from janusmail.store import keywords as kwmod
from janusmail.store.emails import EmailUpdate, update_each
from janusmail.store.model import NotFound, StoreError, TooManyKeywords
from janusmail.store.schema import messages, vanished
from tests.mailgen import simple


def _setup(store: Any, n: int) -> tuple[str, dict[str, str], list[str]]:
    acct = store.accounts.create("alice@example.test", "x")
    boxes = {b.role or b.name: b.id for b in store.mailboxes.list(acct.id)}
    ids = [store.emails.ingest(acct.id, simple(i), (boxes["inbox"],)).email_id for i in range(n)]
    return acct.id, boxes, ids


def _statements(store: Any, fn: Any) -> tuple[Any, int]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        return fn(), len(seen)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)


def _boxes_of(store: Any, email_id: str) -> dict[str, bool]:
    with store.read() as conn:
        return {r.mailbox_id: r.deleted for r in conn.execute(
            sa.select(messages.c.mailbox_id, messages.c.deleted).where(messages.c.email_id == email_id))}


def test_statements_do_not_grow_with_the_batch(store) -> None:  # noqa: ANN001
    a, boxes, ids = _setup(store, 60)
    inbox, archive = boxes["inbox"], boxes["archive"]

    def move(some: list[str]) -> Any:
        upd = {e: EmailUpdate(add_keywords=["$seen", "Done"], add_mailboxes=[archive], remove_mailboxes=[inbox])
               for e in some}
        return store.visible_emails.apply(a, upd, [])

    small, few = _statements(store, lambda: move(ids[:5]))
    large, many = _statements(store, lambda: move(ids[5:]))
    assert not small.update_errors and not large.update_errors
    assert many == few, (few, many)  # 5 or 55 emails: the same statements
    for e in ids:
        assert _boxes_of(store, e) == {archive: False}
    assert store.mailboxes.counts(a, [archive])[archive].messages == 60
    assert inbox not in store.mailboxes.counts(a, [inbox])  # absent: all zeros
    with store.read() as conn:  # IMAP sees every removal
        assert conn.execute(sa.select(sa.func.count()).select_from(vanished)
                            .where(vanished.c.mailbox_id == inbox)).scalar() == 60
        uids = sorted(r[0] for r in conn.execute(sa.select(messages.c.uid).where(messages.c.mailbox_id == archive)))
    assert uids == list(range(1, 61))  # fresh UIDs in the order of the batch, no gap


def test_each_email_succeeds_or_fails_alone(store) -> None:  # noqa: ANN001
    a, boxes, ids = _setup(store, 6)
    inbox, archive, trash = boxes["inbox"], boxes["archive"], boxes["trash"]
    store.memberships.copy(a, inbox, [(6, 6)], archive)
    store.memberships.store_flags(a, inbox, [(6, 6)], "add", [], True)  # e5: in archive, \Deleted in the inbox
    too_many = [f"k{i}" for i in range(kwmod.MAX_KEYWORDS + 1)]
    updates = {
        ids[0]: EmailUpdate(mailbox_ids=[archive, trash]),
        ids[1]: EmailUpdate(add_mailboxes=["no-such-box"]),  # NotFound for the mailbox: nothing of it
        ids[2]: EmailUpdate(remove_mailboxes=[inbox], add_keywords=["$flagged"]),  # in no mailbox: refused
        ids[3]: EmailUpdate(add_keywords=too_many, add_mailboxes=[archive]),  # too many keywords: refused whole
        ids[4]: EmailUpdate(keywords=["$seen"], add_mailboxes=[trash]),
        "Mnosuchemail": EmailUpdate(add_keywords=["$seen"]),
    }
    with store.write(a) as tx:
        results = update_each(tx, a, updates)
    assert results[ids[0]] is None and results[ids[4]] is None
    assert isinstance(results[ids[1]], NotFound) and results[ids[1]].args[0] == "no-such-box"
    assert type(results[ids[2]]) is StoreError
    assert isinstance(results[ids[3]], TooManyKeywords)
    assert isinstance(results["Mnosuchemail"], NotFound)
    assert _boxes_of(store, ids[0]) == {archive: False, trash: False}
    for e in ids[1:4]:
        assert _boxes_of(store, e) == {inbox: False}
    assert _boxes_of(store, ids[4]) == {inbox: False, trash: False}
    got = {r.id: r for r in store.visible_emails.rows(a, ids, keywords=True)}
    assert kwmod.bits_to_keywords(got[ids[4]].flags) == ["$seen"] and got[ids[4]].keywords == []
    assert got[ids[2]].flags == got[ids[3]].flags == 0 and got[ids[3]].keywords == []
    # A \Deleted membership in a target mailbox becomes visible again.
    assert _boxes_of(store, ids[5]) == {inbox: True, archive: False}
    assert not store.visible_emails.apply(a, {ids[5]: EmailUpdate(mailbox_ids=[inbox])}, []).update_errors
    assert _boxes_of(store, ids[5]) == {inbox: False}
