"""Contract of ``store.identities`` (sending identities and aliases), on both backends."""

from __future__ import annotations

import pytest

from janusmail.store.identities import Identity
from janusmail.store.model import AlreadyExists, Forbidden, NotFound
from janusmail.store.writes import is_write


def test_every_account_has_its_own_identity_without_a_write(store, account) -> None:  # noqa: ANN001
    before = store.changes.highest_modseq(account.id)
    own = store.identities.list(account.id)
    assert own == [Identity(store.identities.default_id(account.id), "alice@example.test", may_delete=False)]
    assert store.identities.get(account.id, own[0].id) == own[0]
    assert store.changes.highest_modseq(account.id) == before  # derived: reading it wrote nothing
    assert store.changes.kind_state(account.id, "Identity") == 0
    bob = store.accounts.create("bob@example.test", "x")
    assert store.identities.get(account.id, store.identities.default_id(bob.id)) is None  # not alice's
    assert store.identities.list("A-no-such-account") == []


def test_create_update_destroy_are_logged(store, account) -> None:  # noqa: ANN001
    ids = store.identities
    assert all(is_write(f) for f in (ids.create, ids.update, ids.destroy, ids.add_alias, ids.remove_alias))
    assert not is_write(ids.list)
    created = ids.create(account.id, "Alice@Example.test", name="Alice",
                         reply_to=[("Desk", "desk@example.test")], bcc=[(None, "archive@example.test")],
                         text_signature="-- \nA", html_signature="<b>A</b>")
    assert created.email == "alice@example.test" and created.may_delete
    state = store.changes.kind_state(account.id, "Identity")
    logged = store.changes.since(account.id, "Identity", 0)
    assert [(c.object_id, c.op) for c in logged] == [(created.id, "c")]
    got = ids.get(account.id, created.id)
    assert got == created
    assert got.reply_to == (("Desk", "desk@example.test"),) and got.bcc == ((None, "archive@example.test"),)

    ids.update(account.id, created.id, name="Alice B.", bcc=None)
    got = ids.get(account.id, created.id)
    assert (got.name, got.bcc, got.text_signature) == ("Alice B.", None, "-- \nA")
    rows = store.changes.since(account.id, "Identity", state)
    assert [(c.object_id, c.op) for c in rows] == [(created.id, "u")]

    default = ids.default_id(account.id)
    ids.update(account.id, default, name="Alice Own", text_signature="sig")  # its first row
    own = ids.get(account.id, default)
    assert (own.name, own.text_signature, own.email) == ("Alice Own", "sig", "alice@example.test")
    assert own.may_delete is False
    assert [i.id for i in ids.list(account.id)] == [default, created.id]
    with pytest.raises(Forbidden):
        ids.destroy(account.id, default)
    ids.destroy(account.id, created.id)
    assert store.changes.since(account.id, "Identity", 0)[-1].op == "d"
    with pytest.raises(NotFound):
        ids.destroy(account.id, created.id)
    with pytest.raises(NotFound):
        ids.update(account.id, created.id, name="x")
    with pytest.raises(ValueError):
        ids.update(account.id, default, email="other@example.test")


def test_identities_only_for_owned_addresses_and_aliases_are_unique(store, account) -> None:  # noqa: ANN001
    ids = store.identities
    bob = store.accounts.create("bob@example.test", "x")
    with pytest.raises(Forbidden):
        ids.create(account.id, "sales@example.test")
    with pytest.raises(Forbidden):
        ids.create(account.id, "bob@example.test")  # another account's address
    assert ids.add_alias(account.id, " Sales@Example.test ") is True
    assert ids.add_alias(account.id, "sales@example.test") is False  # already hers: nothing written
    assert ids.aliases(account.id) == ["sales@example.test"]
    assert ids.addresses(account.id) == ["alice@example.test", "sales@example.test"]
    assert ids.alias_owner("SALES@example.test") == account.id and ids.alias_owner("nobody@x.test") is None
    sales = ids.create(account.id, "sales@example.test", name="Sales")
    with pytest.raises(AlreadyExists, match="alias of another account"):
        ids.add_alias(bob.id, "sales@example.test")
    with pytest.raises(AlreadyExists, match="another account"):
        ids.add_alias(bob.id, "alice@example.test")
    with pytest.raises(AlreadyExists, match="own address"):
        ids.add_alias(bob.id, "bob@example.test")
    for bad in ["", "no-at-sign", "two@@example.test", "a b@example.test", "x@" + "y" * 400]:
        with pytest.raises(ValueError):
            ids.add_alias(bob.id, bad)
    with pytest.raises(NotFound):
        ids.add_alias("A-no-such-account", "free@example.test")

    # Removing the alias takes its identities with it, logged as destroyed.
    state = store.changes.kind_state(account.id, "Identity")
    assert ids.remove_alias(bob.id, "sales@example.test") is False  # not bob's
    assert ids.remove_alias(account.id, "SALES@example.test") is True
    assert ids.remove_alias(account.id, "sales@example.test") is False
    assert ids.get(account.id, sales.id) is None
    logged = store.changes.since(account.id, "Identity", state)
    assert [(c.object_id, c.op) for c in logged] == [(sales.id, "d")]
    assert ids.add_alias(bob.id, "sales@example.test") is True  # free again


def test_identities_and_aliases_go_with_the_account(store, account) -> None:  # noqa: ANN001
    store.identities.add_alias(account.id, "old@example.test")
    made = store.identities.create(account.id, "old@example.test")
    store.accounts.delete(account.id)
    assert store.identities.alias_owner("old@example.test") is None
    assert store.identities.list(account.id, [made.id]) == []
    other = store.accounts.create("new@example.test", "x")
    assert store.identities.add_alias(other.id, "old@example.test") is True
