"""Contract of ``store.app_passwords`` (the rows behind app passwords) and of the engine-only adapter, on both
backends. The secret never reaches the store: these tests hand it made-up hashes."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from janusmail.store import app_passwords as store_app_passwords
from janusmail.store.app_passwords import AppPassword, EngineAppPasswords
from janusmail.store.model import AlreadyExists, NotFound
from janusmail.store.writes import is_write


@pytest.fixture(params=["store", "engine"])
def service(request: pytest.FixtureRequest, store):  # noqa: ANN001, ANN201
    """The Store's service, and the adapter a tool holding only an engine uses: one contract for both."""
    return store.app_passwords if request.param == "store" else EngineAppPasswords(store.engine)


def test_create_list_get_candidates(service, store, account) -> None:  # noqa: ANN001
    ap = service.create(account.id, "Phone", {"smtp", "imap"}, "sha256$aa", now=1000)
    assert ap == AppPassword(ap.id, account.id, "Phone", frozenset({"imap", "smtp"}), 1000, None, None)
    assert service.get(ap.id) == ap
    assert service.list(account.id) == [ap]
    assert service.candidates(account.id) == [(ap, "sha256$aa")]
    assert service.state(ap.id) == (account.id, True)
    assert service.get("P-no-such") is None and service.state("P-no-such") is None
    later = service.create(account.id, "Laptop", ["jmap"], "sha256$bb", now=2000)
    assert [p.name for p in service.list(account.id)] == ["Phone", "Laptop"]  # oldest first
    assert {p.id for p, _ in service.candidates(account.id)} == {ap.id, later.id}


def test_names_are_unique_among_active_ones(service, account) -> None:  # noqa: ANN001
    first = service.create(account.id, "Phone", ["imap"], "sha256$aa", now=1)
    with pytest.raises(AlreadyExists):
        service.create(account.id, "Phone", ["imap"], "sha256$bb", now=2)
    assert service.revoke(account.id, "Phone", now=3) is True
    assert service.revoke(account.id, "Phone", now=4) is False
    assert service.list(account.id) == []
    assert [p.revoked_at for p in service.list(account.id, include_revoked=True)] == [3]
    assert service.candidates(account.id) == []  # a revoked one is never compared again
    second = service.create(account.id, "Phone", ["imap"], "sha256$cc", now=5)  # the revoked row makes way
    assert service.get(first.id) is None and service.state(first.id) is None
    assert service.candidates(account.id) == [(second, "sha256$cc")]


def test_unknown_account(service) -> None:  # noqa: ANN001
    with pytest.raises(NotFound):
        service.create("A-no-such-account", "Phone", ["imap"], "sha256$aa")


def test_accounts_are_isolated(service, store, account) -> None:  # noqa: ANN001
    bob = store.accounts.create("bob@example.test", "x")
    ap = service.create(account.id, "Phone", ["imap"], "sha256$aa")
    assert service.candidates(bob.id) == [] and service.list(bob.id) == []
    assert service.revoke(bob.id, ap.id) is False
    assert service.state(ap.id) == (account.id, True)


def test_touch_is_a_compare_and_set_on_the_stamp(service, account) -> None:  # noqa: ANN001
    ap = service.create(account.id, "Phone", ["imap"], "sha256$aa", now=1000)
    assert service.touch(ap.id, 5000, not_since=4941) is True
    assert service.get(ap.id).last_used_at == 5000
    assert service.touch(ap.id, 5030, not_since=4971) is False  # stamped recently enough: nothing written
    assert service.get(ap.id).last_used_at == 5000
    assert service.touch(ap.id, 5060, not_since=5001) is True
    assert service.get(ap.id).last_used_at == 5060
    assert service.touch("P-no-such", 5060, not_since=5001) is False


def test_touch_soon_is_written_by_the_writer(store, account) -> None:  # noqa: ANN001
    svc = store.app_passwords
    ap = svc.create(account.id, "Phone", ["imap"], "sha256$aa", now=1000)
    svc.touch_soon(ap.id, 5000, not_since=4941)
    svc.settle()
    assert svc.get(ap.id).last_used_at == 5000
    assert store.credentials.epochs(account.id) == (0, 0)  # a use is no credential change: sessions stay


def test_touch_soon_queues_one_stamp_per_credential(store, account, monkeypatch) -> None:  # noqa: ANN001
    """A burst of logins with one app password queues one write, not one per login."""
    svc = store.app_passwords
    ap = svc.create(account.id, "Phone", ["imap"], "sha256$aa", now=1000)
    queued: list[tuple[object, tuple]] = []
    futures: list[Future] = []

    def fake_submit(target, fn, *args, **kwargs):  # noqa: ANN001, ANN202
        queued.append((fn, args))
        fut: Future = Future()
        futures.append(fut)
        return fut

    monkeypatch.setattr(store_app_passwords.writer_calls, "submit", fake_submit)
    for _ in range(5):
        svc.touch_soon(ap.id, 5000, not_since=4941)
    assert len(queued) == 1 and queued[0][1] == (ap.id, 5000)
    svc.touch_soon(ap.id, 5070, not_since=5011)  # a newer stamp than the queued one is queued too
    assert len(queued) == 2
    for fut in futures:
        fut.set_result(True)
    svc.touch_soon(ap.id, 5200, not_since=5141)  # nothing pending any more: queued again
    assert len(queued) == 3
    futures[-1].set_result(True)


def test_writes_are_marked_and_run_on_the_writer(store, account) -> None:  # noqa: ANN001
    svc = store.app_passwords
    assert is_write(svc.create) and is_write(svc.touch) and is_write(svc.revoke)
    assert not any(is_write(f) for f in (svc.list, svc.get, svc.candidates, svc.state))
    seen: list[str] = []
    real = store.write

    def spying_write(account_id):  # noqa: ANN001, ANN202
        seen.append(threading.current_thread().name)
        return real(account_id)

    store.write = spying_write
    try:
        from janusmail.store import writer_calls

        writer_calls.run(store, svc.create, account.id, "Phone", ["imap"], "sha256$aa")
    finally:
        del store.write
    assert seen and all(name.startswith(writer_calls.WRITER_PREFIX) for name in seen)
