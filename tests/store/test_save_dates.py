"""SAVEDATE's store half (RFC 8514): every membership carries the time it was put in its mailbox (delivery,
APPEND, COPY, MOVE, JMAP's mailboxIds), readable per UID (``store.save_dates``) and searchable through the
one search compiler (``ast.SavedDate``), on both backends."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from janusmail.store import emails as emails_mod
from janusmail.store import ingest as ingest_mod
from janusmail.store import membership as membership_mod
from janusmail.store import schema as schema_mod
from janusmail.store.emails import EmailUpdate
from janusmail.store.search import ast as q
from tests.mailgen import simple

T_RECEIVED = 1_600_000_000  # the internal date the messages claim
T_SAVE = 1_700_000_000  # "now" when they are stored
T_COPY = 1_700_500_000  # "now" when they are copied


def clock(monkeypatch: pytest.MonkeyPatch, now: int) -> None:
    """Stamp writes at ``now`` (the modules that stamp save dates read ``time.time()``)."""
    fake = SimpleNamespace(time=lambda: float(now))
    for mod in (emails_mod, ingest_mod, membership_mod, schema_mod):
        monkeypatch.setattr(mod, "time", fake)


def _box(store, account_id: str, name: str):  # noqa: ANN001, ANN202
    return store.mailboxes.by_path(account_id, [name])


def test_delivery_copy_and_move_stamp_the_save_date(store, account, monkeypatch) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive, trash = _box(store, a, "INBOX"), _box(store, a, "Archive"), _box(store, a, "Trash")
    clock(monkeypatch, T_SAVE)
    for i in range(1, 4):
        store.emails.ingest(a, simple(i), (inbox.id,), received_at=T_RECEIVED)
    assert store.save_dates.of(inbox.id, [(1, 10)]) == {1: T_SAVE, 2: T_SAVE, 3: T_SAVE}
    clock(monkeypatch, T_COPY)
    assert store.memberships.copy(a, inbox.id, [(1, 2)], archive.id) == [(1, 1), (2, 2)]
    assert store.memberships.copy(a, inbox.id, [(3, 3)], trash.id, move=True) == [(3, 1)]
    assert store.save_dates.of(archive.id, [(1, 5)]) == {1: T_COPY, 2: T_COPY}
    assert store.save_dates.of(trash.id, [(1, 1)]) == {1: T_COPY}
    assert store.save_dates.of(inbox.id, [(1, 10)]) == {1: T_SAVE, 2: T_SAVE}  # the originals keep theirs
    assert store.save_dates.of(inbox.id, []) == {}


def test_jmap_mailbox_change_stamps_the_new_membership(store, account, monkeypatch) -> None:  # noqa: ANN001
    """JMAP's ``mailboxIds`` add stamps the membership it makes with the time it was made."""
    a = account.id
    inbox, archive = _box(store, a, "INBOX"), _box(store, a, "Archive")
    clock(monkeypatch, T_SAVE)
    d = store.emails.ingest(a, simple(1), (inbox.id,), received_at=T_RECEIVED)
    clock(monkeypatch, T_COPY)
    assert store.emails.update(a, {d.email_id: EmailUpdate(add_mailboxes=[archive.id])}) == {d.email_id: None}
    assert store.save_dates.of(archive.id, [(1, 1)]) == {1: T_COPY}


def test_saved_date_search(store, account, monkeypatch) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = _box(store, a, "INBOX"), _box(store, a, "Archive")
    clock(monkeypatch, T_SAVE)
    for i in range(1, 3):
        store.emails.ingest(a, simple(i), (inbox.id,), received_at=T_RECEIVED)
    clock(monkeypatch, T_COPY)
    store.memberships.copy(a, inbox.id, [(1, 1)], archive.id)
    store.emails.ingest(a, simple(3), (inbox.id,), received_at=T_RECEIVED)

    def uids(mailbox_id: str, cond: q.Condition) -> list[int]:
        return [u for u, _ in store.search.mailbox_search(a, mailbox_id, cond, size_hint=3)]

    assert uids(inbox.id, q.SavedDate("lt", T_COPY)) == [1, 2]
    assert uids(inbox.id, q.SavedDate("ge", T_COPY)) == [3]
    assert uids(inbox.id, q.Not(q.SavedDate("ge", T_COPY))) == [1, 2]
    assert uids(inbox.id, q.And((q.SavedDate("ge", T_SAVE), q.Date("received", "lt", T_SAVE)))) == [1, 2, 3]
    assert uids(archive.id, q.SavedDate("ge", T_COPY)) == [1]  # the copy's own date, not the original's
    assert uids(archive.id, q.Or((q.SavedDate("lt", T_SAVE), q.Deleted()))) == []


def test_saved_date_is_a_mailbox_condition_only(store, account) -> None:  # noqa: ANN001
    """An Email/query sees emails, not memberships: like \\Deleted, the compiler refuses the condition."""
    with pytest.raises(ValueError):
        store.search.email_query(account.id, q.EmailQuery(q.SavedDate("lt", 1)), 0, 10, None, 0, False)


def test_migration_backfills_received_at(store, account) -> None:  # noqa: ANN001
    """0010 on a store that has mail: existing memberships get their email's internal date (down, then up)."""
    from alembic import command

    from janusmail.store.db import alembic_config

    a = account.id
    inbox, archive = _box(store, a, "INBOX"), _box(store, a, "Archive")
    store.emails.ingest(a, simple(1), (inbox.id, archive.id), received_at=T_RECEIVED)
    store.emails.ingest(a, simple(2), (inbox.id,), received_at=T_RECEIVED + 5)
    store.metadata.set(a, inbox.id, [("/shared/comment", b"x")])
    cfg = alembic_config()
    for target in ("0009", "head"):
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.downgrade if target == "0009" else command.upgrade)(cfg, target)
    assert store.save_dates.of(inbox.id, [(1, 9)]) == {1: T_RECEIVED, 2: T_RECEIVED + 5}
    assert store.save_dates.of(archive.id, [(1, 9)]) == {1: T_RECEIVED}
    assert store.metadata.count(a) == 0  # the tables were made anew
