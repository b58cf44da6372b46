"""Quotas in the store (janusmail/store/quotas.py), on SQLite and PostgreSQL: usage kept exact by every kind of
write (it must always equal a recount of the memberships), limits refusing only writes that grow usage, in the
write's own transaction (nothing stored, no bytes written), concurrent appends unable to slip past a limit,
Quota changes in the change log, and the migration's backfill of existing accounts."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from janusmail.store import counters, quotas
from janusmail.store.emails import EmailUpdate
from janusmail.store.mailbox_rows import EMAIL_ID
from janusmail.store.model import IngestItem, OverQuota, StoreError
from tests.mailgen import simple


def _usage(store, account_id: str) -> tuple[int, int]:  # noqa: ANN001
    q = store.quotas.get(account_id)
    return q.storage_used, q.messages_used


def _pack_bytes(store) -> int:  # noqa: ANN001
    return sum(p.stat().st_size for p in store.packs.root.rglob("*") if p.is_file())


def _inbox(store, account_id: str) -> str:  # noqa: ANN001
    return store.mailboxes.by_path(account_id, ["INBOX"]).id


def _walk(store, seed: int) -> None:  # noqa: ANN001
    """Random writes of every kind the doors make; usage equals the recount after each."""
    rnd = random.Random(seed)
    a = store.accounts.create(f"walk{seed}@example.test", None).id
    other = store.accounts.create(f"other{seed}@example.test", None).id
    store.emails.ingest(other, simple(999), (_inbox(store, other),))  # another account's mail must not count
    boxes = [b.id for b in store.mailboxes.list(a)][:3]
    boxes.append(store.mailboxes.create(a, "Extra").id)
    for n in range(60):
        op = rnd.choice(["ingest", "ingest", "flags", "copy", "move", "expunge", "update", "destroy", "dropbox"])
        live = [b for b in boxes if store.mailboxes.get(a, b) is not None]
        box = rnd.choice(live)
        uids = store.messages.mailbox_snapshot(a, box, claim_recent=False).uids
        pick = [(u, u) for u in rnd.sample(list(uids), min(len(uids), rnd.randint(1, 3)))] if uids else []
        try:
            if op == "ingest" or not uids:
                store.emails.ingest(a, simple(n, body="x" * rnd.randint(1, 3000)), rnd.sample(live, rnd.randint(1, 2)),
                                    deleted=rnd.random() < 0.2)
            elif op == "flags":
                store.memberships.store_flags(a, box, pick, "add", ["$seen"], rnd.choice([None, True, False]))
            elif op == "copy":
                store.memberships.copy(a, box, pick, rnd.choice(live))
            elif op == "move":
                dst = rnd.choice(live)
                if dst != box:
                    store.memberships.copy(a, box, pick, dst, move=True)
            elif op == "expunge":
                store.memberships.expunge(a, box, rnd.choice([None, pick]))
            elif op == "update":
                rows = store.messages.fetch_rows(box, pick, keywords=False).rows
                upd = rnd.choice([EmailUpdate(mailbox_ids=rnd.sample(live, rnd.randint(1, 2))),
                                  EmailUpdate(add_mailboxes=[rnd.choice(live)])])
                store.emails.update(a, {r[EMAIL_ID]: upd for r in rows})
            elif op == "destroy":
                rows = store.messages.fetch_rows(box, pick, keywords=False).rows
                store.emails.destroy(a, [r[EMAIL_ID] for r in rows])
            elif op == "dropbox" and box == boxes[-1]:
                store.mailboxes.destroy(a, box, remove_emails=True)
        except StoreError:
            pass
        assert _usage(store, a) == store.quotas.recount(a), (seed, n, op)
    assert _usage(store, other) == store.quotas.recount(other) != (0, 0)


@pytest.mark.parametrize("seed", [1, 2])
def test_usage_equals_a_recount_after_every_write(store, seed) -> None:  # noqa: ANN001
    _walk(store, seed)


def test_usage_on_the_counters_recount_path(store, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(counters, "DIFF_LIMIT", 1)  # writes touching two threads or more recount instead of diffing
    _walk(store, 3)


def test_every_membership_counts(store) -> None:  # noqa: ANN001
    a = store.accounts.create("count@example.test", None).id
    inbox, archive = _inbox(store, a), store.mailboxes.by_path(a, ["Archive"]).id
    raw = simple(1)
    store.emails.ingest(a, raw, (inbox,))
    assert _usage(store, a) == (len(raw), 1)
    store.memberships.copy(a, inbox, [(1, 1)], archive)  # the same email in two mailboxes: counted twice
    assert _usage(store, a) == (2 * len(raw), 2)
    store.memberships.store_flags(a, inbox, [(1, 1)], "add", [], True)  # \Deleted counts until expunged
    assert _usage(store, a) == (2 * len(raw), 2)
    store.memberships.expunge(a, inbox)
    assert _usage(store, a) == (len(raw), 1)


def test_limits_refuse_growth_and_store_nothing(store) -> None:  # noqa: ANN001
    a = store.accounts.create("limit@example.test", None).id
    inbox, archive = _inbox(store, a), store.mailboxes.by_path(a, ["Archive"]).id
    store.quotas.set_limits(a, messages=2)
    store.emails.ingest(a, simple(1), (inbox,))
    store.emails.ingest(a, simple(2), (inbox,))
    packed = _pack_bytes(store)
    with pytest.raises(OverQuota) as err:
        store.emails.ingest(a, simple(3), (inbox,))
    assert err.value.args[0] == quotas.MESSAGES
    with pytest.raises(OverQuota):  # a batch that would cross the limit is refused whole
        store.emails.ingest_many(a, [IngestItem(simple(4), (inbox,))])
    with pytest.raises(OverQuota):  # COPY adds memberships
        store.memberships.copy(a, inbox, [(1, 2)], archive)
    assert list(store.messages.mailbox_snapshot(a, inbox, claim_recent=False).uids) == [1, 2]
    assert store.mailboxes.counts(a, [archive]) == {}
    assert _pack_bytes(store) == packed  # refused before any byte was written
    assert _usage(store, a)[1] == 2
    # MOVE adds as much as it removes: allowed at the limit, as is cleaning up
    store.memberships.copy(a, inbox, [(1, 1)], archive, move=True)
    assert _usage(store, a)[1] == 2
    store.memberships.store_flags(a, inbox, [(2, 2)], "add", [], True)
    store.memberships.expunge(a, inbox)
    store.emails.ingest(a, simple(5), (inbox,))  # room again
    # storage: octets
    store.quotas.set_limits(a, messages=None, storage=_usage(store, a)[0] + len(simple(6)) - 1)
    with pytest.raises(OverQuota) as err:
        store.emails.ingest(a, simple(6), (inbox,))
    assert err.value.args[0] == quotas.STORAGE
    store.quotas.set_limits(a, storage=_usage(store, a)[0] + len(simple(6)))
    store.emails.ingest(a, simple(6), (inbox,))  # exactly at the limit is within it


def test_a_lowered_limit_keeps_mail_and_allows_shrinking(store) -> None:  # noqa: ANN001
    a = store.accounts.create("lower@example.test", None).id
    inbox = _inbox(store, a)
    for i in range(3):
        store.emails.ingest(a, simple(i), (inbox,))
    usage = store.quotas.set_limits(a, messages=1)
    assert (usage.messages_used, usage.messages_limit) == (3, 1)
    store.memberships.store_flags(a, inbox, [(1, 1)], "add", ["$seen"], None)  # no growth: allowed
    with pytest.raises(OverQuota):
        store.emails.ingest(a, simple(9), (inbox,))
    with pytest.raises(ValueError):
        store.quotas.set_limits(a, messages=-1)


def test_concurrent_appends_respect_the_limit(store) -> None:  # noqa: ANN001
    """Many writers at once: exactly ``limit`` messages get in, whatever the interleaving (the check runs under
    the account's write lock, in the write's own transaction)."""
    a = store.accounts.create("race@example.test", None).id
    inbox = _inbox(store, a)
    store.quotas.set_limits(a, messages=5)
    start = threading.Barrier(8)

    def one(i: int) -> bool:
        if i < 8:
            start.wait(timeout=60)
        try:
            store.emails.ingest(a, simple(i), (inbox,))
        except OverQuota:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(24)))
    assert sum(results) == 5
    assert _usage(store, a)[1] == 5 == len(store.messages.mailbox_snapshot(a, inbox, claim_recent=False).uids)


def test_quota_changes_are_logged(store) -> None:  # noqa: ANN001
    a = store.accounts.create("log@example.test", None).id
    inbox = _inbox(store, a)
    store.emails.ingest(a, simple(1), (inbox,))
    assert store.changes.since(a, "Quota", 0) == []  # no limit, no Quota object, nothing to log
    store.quotas.set_limits(a, storage=10**6)
    first = store.changes.since(a, "Quota", 0)
    assert [(c.object_id, c.op) for c in first] == [("storage", "c")]
    store.quotas.set_limits(a, storage=10**6)  # unchanged: no change logged
    assert store.changes.since(a, "Quota", first[-1].modseq) == []
    store.emails.ingest(a, simple(2), (inbox,))  # usage moved
    store.quotas.set_limits(a, storage=None, messages=10)
    ops = [(c.object_id, c.op) for c in store.changes.since(a, "Quota", first[-1].modseq)]
    assert ops == [("storage", "u"), ("storage", "d"), ("messages", "c")]
    usage, state = store.quotas.with_state(a)
    assert state == store.changes.kind_state(a, "Quota") and usage.limited() == ["messages"]


def test_migration_backfills_usage(db_url, tmp_path) -> None:  # noqa: ANN001
    """A store made before quotas upgrades with every existing account's usage counted."""
    from alembic import command

    from janusmail.store import db
    from janusmail.store.schema import accounts

    engine = db.make_engine(db_url or db.sqlite_url(tmp_path))
    try:
        cfg = db.alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0008")
            for aid in ("Aone", "Atwo"):
                conn.execute(sa.text("INSERT INTO accounts (id, address, created_at) VALUES (:a, :m, 0)"),
                             {"a": aid, "m": f"{aid}@example.test"})
            conn.execute(sa.text("INSERT INTO mailboxes (id, account_id, name, uidvalidity, created_modseq, modseq) "
                                 "VALUES ('F1', 'Aone', 'INBOX', 1, 1, 1), ('F2', 'Aone', 'Other', 1, 1, 1)"))
            for eid, size in (("M1", 100), ("M2", 50)):
                conn.execute(sa.text("INSERT INTO emails (id, account_id, blob_id, thread_id, size, received_at, cache, "
                                     "created_modseq, modseq) VALUES (:e, 'Aone', 'G', 'T', :s, 0, :c, 1, 1)"),
                             {"e": eid, "s": size, "c": b"{}"})
            conn.execute(sa.text("INSERT INTO messages (mailbox_id, uid, email_id, deleted, modseq) VALUES "
                                 "('F1', 1, 'M1', false, 1), ('F1', 2, 'M2', true, 1), ('F2', 1, 'M1', false, 1)"))
        db.migrate(engine)
        with engine.connect() as conn:
            rows = {r.id: (r.used_storage, r.used_messages, r.quota_storage, r.quota_messages) for r in conn.execute(
                sa.select(accounts.c.id, accounts.c.used_storage, accounts.c.used_messages, accounts.c.quota_storage,
                          accounts.c.quota_messages))}
        assert rows == {"Aone": (250, 3, None, None), "Atwo": (0, 0, None, None)}
    finally:
        engine.dispose()


def test_jmap_mailbox_additions_count_and_are_refused_alone(store) -> None:  # noqa: ANN001
    """JMAP's mailboxIds are memberships too: adding one grows usage like a COPY and is refused per email over
    the limit; replacing one (a move) is not growth."""
    a = store.accounts.create("jmapadd@example.test", None).id
    inbox, archive, trash = (store.mailboxes.by_path(a, [n]).id for n in ("INBOX", "Archive", "Trash"))
    one = store.emails.ingest(a, simple(1), (inbox,)).email_id
    two = store.emails.ingest(a, simple(2), (inbox,)).email_id
    store.quotas.set_limits(a, messages=3)
    out = store.emails.update(a, {one: EmailUpdate(add_mailboxes=[archive]), two: EmailUpdate(add_mailboxes=[archive])})
    assert out[one] is None and isinstance(out[two], OverQuota)
    assert _usage(store, a)[1] == 3 == store.quotas.recount(a)[1]
    assert store.emails.update(a, {two: EmailUpdate(mailbox_ids=[trash])}) == {two: None}  # a move: allowed
    assert _usage(store, a) == store.quotas.recount(a)


def test_usage_read_counts_nothing(store) -> None:  # noqa: ANN001
    """Reading usage (IMAP GETQUOTA, JMAP Quota/get) is one account-row read: no membership, email or mailbox."""
    import re

    a = store.accounts.create("plan@example.test", None).id
    store.emails.ingest(a, simple(1), (_inbox(store, a),))
    statements: list[str] = []

    def spy(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        statements.append(statement.lower())

    sa.event.listen(store.engine, "before_cursor_execute", spy)
    try:
        store.quotas.get(a)
        store.quotas.with_state(a)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", spy)
    tables = re.compile(r"\b(?:from|join)\s+(?:messages|emails|mailboxes)\b")
    assert statements and not any(tables.search(s) for s in statements), statements


def test_deliveries_place_bytes_early_but_never_past_the_quota(store) -> None:  # noqa: ANN001
    """``Store.deliver`` stores a message's bytes before its write (``ingest.place``, off the writer lane): the
    message comes back byte-exact, and one the quota refuses leaves no bytes behind (the pre-check), so a client
    cannot fill the disk with refused APPENDs."""
    import asyncio

    a = store.accounts.create("placed@example.test", None).id
    inbox = _inbox(store, a)
    store.quotas.set_limits(a, messages=1)
    raw = simple(1)

    async def deliver(data: bytes) -> object:
        return await store.deliver(a, data, (inbox,))

    got = asyncio.run(deliver(raw))
    loc = store.blobs.locations(a, [got.blob_id])[got.blob_id]
    assert store.blobs.read_location(loc) == raw
    packed = _pack_bytes(store)
    with pytest.raises(OverQuota):
        asyncio.run(deliver(simple(2)))
    assert _pack_bytes(store) == packed
    assert _usage(store, a)[1] == 1


def test_a_message_delivered_twice_is_stored_once(store) -> None:  # noqa: ANN001
    """The early placement (``ingest.place``) skips bytes the account holds already: a second delivery of the
    same message links the first one's blob and adds nothing to the pack."""
    import asyncio

    a = store.accounts.create("twice@example.test", None).id
    inbox = _inbox(store, a)
    raw = simple(7)

    async def deliver() -> object:
        return await store.deliver(a, raw, (inbox,))

    first = asyncio.run(deliver())
    packed = _pack_bytes(store)
    second = asyncio.run(deliver())
    assert second.blob_id == first.blob_id
    assert _pack_bytes(store) == packed
