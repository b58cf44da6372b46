"""Contract of ``store.accounts``: creation with the default mailboxes (one transaction), lookup, the JMAP
switch, deletion; on both backends."""

from __future__ import annotations

import asyncio

import pytest

from janusmail.store import mailboxes as mailboxes_module
from janusmail.store.accounts import DEFAULT_MAILBOXES
from janusmail.store.model import AlreadyExists, NotFound, RoleTaken
from janusmail.store.writes import is_write
from tests.mailgen import simple

from .util import box, counts, ops, states


def test_writes_are_marked_and_reads_are_not(store) -> None:  # noqa: ANN001
    acc = store.accounts
    assert all(is_write(m) for m in (acc.create, acc.set_jmap_enabled, acc.delete))
    assert not any(is_write(m) for m in (acc.get, acc.by_address, acc.list))


def test_create_normalizes_the_address_and_gives_the_default_mailboxes_in_one_write(store) -> None:  # noqa: ANN001
    acct = store.accounts.create("  Bob@Example.TEST ", "hash")
    assert acct.address == "bob@example.test" and acct.jmap_enabled
    assert store.accounts.get(acct.id) == acct
    assert store.accounts.by_address("BOB@example.test ") == acct
    boxes = store.mailboxes.list(acct.id)
    assert [(b.name, b.role) for b in boxes] == list(DEFAULT_MAILBOXES)  # listed in their sort order
    assert all(b.subscribed and b.parent_id is None and b.uidnext == 1 for b in boxes)
    assert len({b.uidvalidity for b in boxes}) == len(boxes)
    # One transaction: every mailbox is logged as created under the account's first modseq.
    log = store.changes.since(acct.id, "Mailbox", 0)
    assert sorted((c.object_id, c.op) for c in log) == sorted((b.id, "c") for b in boxes)
    assert {c.modseq for c in log} == {acct.modseq} == {store.changes.highest_modseq(acct.id)}
    assert store.changes.since(acct.id, "Email", 0) == [] and store.changes.since(acct.id, "Thread", 0) == []


@pytest.mark.parametrize("address", ["", "   ", "nobody", "nobody.example.test"])
def test_create_refuses_what_is_not_an_address(store, address) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        store.accounts.create(address, "hash")
    assert store.accounts.list() == []


def test_a_taken_address_is_refused_and_the_owner_is_untouched(store, account) -> None:  # noqa: ANN001
    modseq = store.changes.highest_modseq(account.id)
    with pytest.raises(AlreadyExists):
        store.accounts.create(" ALICE@Example.Test", "other")
    assert store.accounts.list() == [store.accounts.get(account.id)]
    assert len(store.mailboxes.list(account.id)) == len(DEFAULT_MAILBOXES)
    assert store.changes.highest_modseq(account.id) == modseq
    assert store.credentials.login_account(account_id=account.id).password_hash == "x"


def test_creation_is_all_or_nothing(store, monkeypatch) -> None:  # noqa: ANN001
    """The last default mailbox fails: no account row, no mailbox of it, and the address stays free."""
    real = mailboxes_module._check_role

    def refuse_trash(conn, account_id, role, exclude=None) -> None:  # noqa: ANN001
        if role == "trash":
            raise RoleTaken(role)
        real(conn, account_id, role, exclude)

    monkeypatch.setattr(mailboxes_module, "_check_role", refuse_trash)
    with pytest.raises(RoleTaken):
        store.accounts.create("carol@example.test", "hash")
    assert store.accounts.by_address("carol@example.test") is None
    assert store.accounts.list() == []
    assert store.credentials.login_account(address="carol@example.test") is None
    monkeypatch.undo()
    acct = store.accounts.create("carol@example.test", "hash")
    assert len(store.mailboxes.list(acct.id)) == len(DEFAULT_MAILBOXES)


def test_lookups_of_unknown_accounts_answer_none(store, account) -> None:  # noqa: ANN001
    assert store.accounts.get("A-no-such-account") is None
    assert store.accounts.get(account.address) is None  # an address is not an id
    assert store.accounts.by_address("nobody@example.test") is None
    assert store.accounts.by_address(account.id) is None


def test_list_is_ordered_by_address(store) -> None:  # noqa: ANN001
    for addr in ("zed@example.test", "amy@example.test", "mia@example.test"):
        store.accounts.create(addr, None)
    assert [a.address for a in store.accounts.list()] == ["amy@example.test", "mia@example.test", "zed@example.test"]


def test_set_jmap_enabled_is_one_accounts_write_invisible_to_jmap_states(store, account) -> None:  # noqa: ANN001
    bob = store.accounts.create("bob@example.test", "x")
    jmap_states = states(store, account.id)
    before = store.changes.highest_modseq(account.id)
    store.accounts.set_jmap_enabled(account.id, False)
    assert store.accounts.get(account.id).jmap_enabled is False
    assert store.accounts.get(bob.id).jmap_enabled is True
    assert store.changes.highest_modseq(account.id) == before + 1
    assert states(store, account.id) == jmap_states
    store.accounts.set_jmap_enabled(account.id, True)
    assert store.accounts.by_address(account.address).jmap_enabled is True
    with pytest.raises(NotFound):
        store.accounts.set_jmap_enabled("A-no-such-account", False)


def test_delete_removes_every_trace_of_one_account_and_nothing_of_another(store, account) -> None:  # noqa: ANN001
    bob = store.accounts.create("bob@example.test", "x")
    mine = store.emails.ingest(account.id, simple(1), (box(store, account.id).id,))
    theirs = store.emails.ingest(bob.id, simple(1), (box(store, bob.id).id,))
    upload, _ = store.blobs.upload(account.id, b"uploaded bytes", "text/plain")
    store.subscriptions.subscribe(account.id, "Elsewhere")
    store.accounts.delete(account.id)

    assert store.accounts.get(account.id) is None and store.accounts.by_address(account.address) is None
    assert store.accounts.list() == [store.accounts.get(bob.id)]
    assert store.mailboxes.list(account.id) == []
    assert store.changes.since(account.id, "Mailbox", 0) == [] and store.changes.since(account.id, "Email", 0) == []
    assert store.changes.kind_state(account.id, "Email") == 0
    assert store.blobs.location(account.id, upload) is None and store.blobs.location(account.id, mine.blob_id) is None
    with pytest.raises(NotFound):
        store.emails.location(account.id, mine.email_id)
    assert store.subscriptions.names(account.id) == set()
    assert store.credentials.epochs(account.id) is None
    # Bob's copy of the same bytes (same digest, his own blob row) is untouched.
    assert store.emails.raw(bob.id, theirs.email_id) == simple(1)
    assert counts(store, bob.id)[box(store, bob.id).id].messages == 1
    assert ops(store, bob.id, "Email", 0) == {(theirs.email_id, "c")}


def test_delete_of_an_unknown_or_deleted_account_is_not_found(store, account) -> None:  # noqa: ANN001
    with pytest.raises(NotFound):
        store.accounts.delete("A-no-such-account")
    store.accounts.delete(account.id)
    with pytest.raises(NotFound):
        store.accounts.delete(account.id)


def test_a_deleted_address_can_be_taken_again_by_a_new_account(store, account) -> None:  # noqa: ANN001
    store.emails.ingest(account.id, simple(1), (box(store, account.id).id,))
    store.accounts.delete(account.id)
    again = store.accounts.create(account.address, "new")
    assert again.id != account.id and again.address == account.address
    assert len(store.mailboxes.list(again.id)) == len(DEFAULT_MAILBOXES)
    assert counts(store, again.id) == {}
    assert store.changes.since(again.id, "Email", 0) == []


async def test_concurrent_creations_of_one_address_make_one_account(store) -> None:  # noqa: ANN001
    async def create() -> object:
        try:
            return await store.call(store.accounts.create, "race@example.test", "x")
        except AlreadyExists as exc:
            return exc

    got = await asyncio.gather(*(create() for _ in range(4)))
    made = [g for g in got if not isinstance(g, AlreadyExists)]
    assert len(made) == 1 and store.accounts.list() == made
    assert len(store.mailboxes.list(made[0].id)) == len(DEFAULT_MAILBOXES)
