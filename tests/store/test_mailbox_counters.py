"""The per-mailbox counters every write keeps (janusmail/store/counters.py) always equal a recount of the
memberships, whatever mix of writes made them: a seeded random walk of every kind of write the doors make
(ingest with flags and \\Deleted, STORE add/remove/replace, COPY into the same and other mailboxes, MOVE,
EXPUNGE, JMAP keyword and mailbox updates, destroys of emails and mailboxes), checked after every step, on
SQLite and PostgreSQL; once with the thread-diff path and once forced onto the recount path. And the counts
read is one indexed row read, not a count over memberships."""

from __future__ import annotations

import random
import re

import pytest
import sqlalchemy as sa

from janusmail.store import counters
from janusmail.store.emails import EmailUpdate
from janusmail.store.mailbox_rows import EMAIL_ID
from janusmail.store.model import StoreError
from tests.mailgen import simple

STEPS = 70


def _thread_mail(i: int, parent: int | None) -> bytes:
    """Messages that thread together (replies to an earlier one) so thread counts are exercised."""
    if parent is None:
        return simple(i, msgid=f"m{i}@x")
    return simple(i, subject="Re: thread", msgid=f"m{i}@x", in_reply_to=f"m{parent}@x", references=[f"m{parent}@x"])


def _walk(store, seed: int) -> None:  # noqa: ANN001
    rnd = random.Random(seed)
    acct = store.accounts.create(f"walk{seed}@example.test", None)
    other = store.accounts.create(f"other{seed}@example.test", None)
    a = acct.id
    boxes = [b.id for b in store.mailboxes.list(a)][:3]
    boxes.append(store.mailboxes.create(a, "Extra").id)
    other_inbox = store.mailboxes.by_path(other.id, ["INBOX"]).id
    store.emails.ingest(other.id, simple(999), (other_inbox,))  # another account's mail must not count
    n = 0
    for _ in range(STEPS):
        op = rnd.choice(["ingest", "ingest", "flags", "flags", "copy", "move", "expunge", "update", "destroy",
                         "dropbox"])
        live = [b for b in boxes if store.mailboxes.get(a, b) is not None]
        box = rnd.choice(live)
        uids = store.messages.mailbox_snapshot(a, box, claim_recent=False).uids
        lo_hi = [(min(uids), max(uids))] if uids else []
        pick = [(u, u) for u in rnd.sample(list(uids), min(len(uids), rnd.randint(1, 3)))] if uids else []
        try:
            if op == "ingest" or not uids:
                n += 1
                kws = tuple(k for k in ("$seen", "$draft", "$x") if rnd.random() < 0.4)
                parent = rnd.randint(1, n - 1) if n > 1 and rnd.random() < 0.5 else None
                store.emails.ingest(a, _thread_mail(n, parent), rnd.sample(live, rnd.randint(1, 2)), kws,
                                    deleted=rnd.random() < 0.2)
            elif op == "flags":
                store.memberships.store_flags(a, box, rnd.choice([pick, lo_hi]),
                                              rnd.choice(["add", "remove", "replace"]),
                                              rnd.sample(["$seen", "$draft", "$flagged", "$x"], rnd.randint(0, 2)),
                                              rnd.choice([None, True, False]))
            elif op == "copy":
                store.memberships.copy(a, box, pick, rnd.choice(live))  # the same mailbox too: two memberships
            elif op == "move":
                dst = rnd.choice([b for b in live if b != box] or live)
                if dst != box:
                    store.memberships.copy(a, box, pick, dst, move=True)
            elif op == "expunge":
                store.memberships.expunge(a, box, rnd.choice([None, pick]))
            elif op == "update":
                rows = store.messages.fetch_rows(box, pick, keywords=False).rows
                upd = rnd.choice([
                    EmailUpdate(add_keywords=["$seen"]), EmailUpdate(remove_keywords=["$seen", "$draft"]),
                    EmailUpdate(keywords=rnd.sample(["$seen", "$draft", "$y"], 1)),
                    EmailUpdate(mailbox_ids=rnd.sample(live, rnd.randint(1, 2))),
                    EmailUpdate(add_mailboxes=[rnd.choice(live)]),
                ])
                store.emails.update(a, {r[EMAIL_ID]: upd for r in rows})
            elif op == "destroy":
                rows = store.messages.fetch_rows(box, pick, keywords=False).rows
                store.emails.destroy(a, [r[EMAIL_ID] for r in rows])
            elif op == "dropbox" and box == boxes[-1] and rnd.random() < 0.3:
                store.mailboxes.destroy(a, box, remove_emails=True)
        except StoreError:
            pass  # e.g. an email must stay in one mailbox: refused writes change nothing either
        assert store.mailboxes.counts(a) == store.mailboxes.recount(a), (seed, op)
    assert store.mailboxes.counts(other.id) == store.mailboxes.recount(other.id)


@pytest.mark.parametrize("seed", [1, 2])
def test_counters_equal_a_recount_after_every_write(store, seed) -> None:  # noqa: ANN001
    _walk(store, seed)


def test_counters_on_the_recount_path(store, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(counters, "DIFF_LIMIT", 1)  # every write with two threads or more recounts instead
    _walk(store, 3)


def test_counts_read_no_membership(store) -> None:  # noqa: ANN001
    """STATUS / Mailbox/get numbers come from the mailbox rows: the statement reads no membership or email."""
    acct = store.accounts.create("plan@example.test", None)
    statements: list[str] = []

    def spy(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        statements.append(statement.lower())

    sa.event.listen(store.engine, "before_cursor_execute", spy)
    try:
        store.mailboxes.counts(acct.id)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", spy)
    tables = re.compile(r"\b(?:from|join)\s+(?:messages|emails)\b")
    assert statements and not any(tables.search(s) for s in statements), statements
