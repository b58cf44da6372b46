"""Issue 10 item 0, the fixed cost of a command: one store thread hop per command, the credential rule intact.

The per-command credential check rides on the command's first store call (janusmail.imap.store_access), and
STATUS / SELECT / LIST / LSUB read the mailbox tree in the same hop as the rest of their reads, so each of these
commands makes exactly one trip to the store. On SQLite the small ones make it on the event loop's own thread
(``Store.read_inline``: no thread hop at all); IMAP4rev1's SELECT, which must claim \\Recent (a write), starts
there and finishes on a reader thread. The rule "a session whose credential died is told ``* BYE [EXPIRED]``
at its next command" still holds exactly: the check runs before the command's store method (a write never
happens), and nothing the command wrote before its check reaches the client. Sans-IO harness, real store, both
backends. (Timings are in bench/command_cost.py, not here.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from janusmail.auth import passwords
from janusmail.runtime import Runtime
from tests.imap.e2e_util import ADDRESS, PASSWORD, Harness, make_runtime, use_cheap_argon2
from tests.imap.msg_support import deliver, mailbox_id, tagged
from tests.mailgen import simple

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)
CHANGED = b"* BYE [EXPIRED] Your password was changed; log in again with the new one\r\n"


@pytest.fixture
async def rt(tmp_path: Path, db_url: str | None) -> AsyncIterator[Runtime]:
    runtime = make_runtime(tmp_path, db_url)
    runtime.account = runtime.store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))  # type: ignore[attr-defined]
    runtime.store.mailboxes.create(runtime.account.id, "Empty")  # type: ignore[attr-defined]
    yield runtime
    runtime.store.close()


def count_hops(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record every trip to the store from now on: ``("call", name)`` for a thread hop, ``("inline", name)`` for
    a ``read_inline`` (which may go on with a ``call`` of the same function: a read that found it must write)."""
    calls: list[tuple[str, str]] = []
    real_call, real_inline = rt.store.call, rt.store.read_inline

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(("call", getattr(fn, "__name__", repr(fn))))
        return await real_call(fn, *args, **kwargs)

    async def read_inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(("inline", getattr(fn, "__name__", repr(fn))))
        return await real_inline(fn, *args, **kwargs)

    monkeypatch.setattr(rt.store, "call", call)
    monkeypatch.setattr(rt.store, "read_inline", read_inline)
    return calls


def trips(hops: list[tuple[str, str]]) -> int:
    """Trips to the store: an inline read that went on as a hop is one trip."""
    return sum(1 for i, (kind, name) in enumerate(hops) if not (kind == "call" and i and hops[i - 1] == ("inline", name)))


async def logged_in(rt: Runtime, select: str | None = None) -> Harness:
    h = Harness(rt, peer="127.0.0.1")
    assert (await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')).startswith(b"a OK")
    if select:
        assert tagged(await h.send(f"s SELECT {select}"), "s").startswith(b"s OK")
    return h


def change_password(rt: Runtime) -> None:
    rt.store.credentials.set_password(rt.account.id, *passwords.make_credentials("something else"))  # type: ignore[attr-defined]


@pytest.mark.parametrize(("command", "select"), [
    ("NOOP", None),
    ("NOOP", "INBOX"),
    ("STATUS Empty (MESSAGES UNSEEN UIDNEXT)", None),
    ("STATUS INBOX (MESSAGES UNSEEN UIDNEXT RECENT SIZE DELETED HIGHESTMODSEQ)", "INBOX"),
    ("SELECT Empty", None),
    ("SELECT INBOX", None),  # IMAP4rev1: claims \Recent and finds [UNSEEN n], still in the one hop
    ("EXAMINE INBOX", "Empty"),
    ('LIST "" "*"', None),
    ('LIST "" "*" RETURN (SUBSCRIBED STATUS (MESSAGES RECENT))', None),
    ('LSUB "" "*"', None),
    ("FETCH 1:* (FLAGS)", "INBOX"),
    ("UID SEARCH UNSEEN", "INBOX"),
])
@pytest.mark.parametrize("signal_moved", [False, True], ids=["nothing-changed", "a-credential-changed"])
async def test_one_store_hop_per_command(rt: Runtime, monkeypatch: pytest.MonkeyPatch, command: str,
                                         select: str | None, db_url: str | None, signal_moved: bool) -> None:
    """At most one trip to the store per command. When a credential changed somewhere since the session's last
    check (the store's credential signal moved; always on PostgreSQL, which has none) the check rides on the
    command's own first store call (``_checked_read``); on SQLite with nothing changed there is no check at all
    (janusmail.store.credential_signal), and a NOOP makes no trip."""
    deliver(rt, [simple(i) for i in range(3)])
    h = await logged_in(rt, select)
    if signal_moved:
        rt.store.credential_signal.bump()  # another account's password changed, say
    checked = signal_moved or db_url is not None
    hops = count_hops(rt, monkeypatch)
    out = await h.send(f"c {command}")
    assert tagged(out, "c").startswith(b"c OK"), out
    assert trips(hops) == (0 if command == "NOOP" and select is None and not checked else 1), hops
    thread_hops = [name for kind, name in hops if kind == "call"]
    assert all((name.startswith("_checked") or name == "check") == checked for _, name in hops), hops
    if db_url is not None:  # PostgreSQL: every read is a round trip, on a reader thread
        assert len(thread_hops) == 1, hops
    elif command == "SELECT INBOX":  # the \Recent claim is a write: the read finishes on a reader thread
        name = "_checked_read" if checked else "_read_selection"
        assert hops == [("inline", name), ("call", name)], hops
    elif command.startswith("UID SEARCH"):  # a search's cost is the mailbox's size: never on the loop
        assert hops == [("call", "_checked_read" if checked else "mailbox_search_known")], hops
    else:  # a small read: on the loop's thread, no hop
        assert not thread_hops, hops
    await h.close()


async def test_a_credential_changed_by_another_process_ends_the_next_command(rt: Runtime) -> None:
    """The skipped check loses nothing: a password changed through another Store on the same database (what
    ``janusmail user passwd`` is: another process) ends the session at its very next command, without waiting
    for any poll; so does an app-password revocation by a tool holding only an engine."""
    from janusmail.auth import app_passwords
    from janusmail.store.store import Store

    h = await logged_in(rt, "INBOX")
    assert tagged(await h.send("n NOOP"), "n").startswith(b"n OK")  # checked once: skipping from now on
    assert tagged(await h.send("m NOOP"), "m").startswith(b"m OK")
    other = Store.open(rt.config.data_dir, rt.config.db)  # (its own notifier, pool and signal mapping)
    try:
        other.credentials.set_password(rt.account.id, *passwords.make_credentials("from elsewhere"))  # type: ignore[attr-defined]
    finally:
        other.close()
    assert await h.send("c NOOP") == CHANGED
    await h.close()

    rt.store.credentials.set_password(rt.account.id, *passwords.make_credentials(PASSWORD))  # type: ignore[attr-defined]
    _, secret = app_passwords.create(rt.store, rt.account.id, "phone", ["imap"])  # type: ignore[attr-defined]
    h = Harness(rt, peer="127.0.0.1")
    assert (await h.send(f'a LOGIN {ADDRESS} "{secret}"')).startswith(b"a OK")
    assert tagged(await h.send("n NOOP"), "n").startswith(b"n OK")
    app_passwords.revoke(rt.store.engine, rt.account.id, "phone")  # type: ignore[attr-defined]
    assert await h.send("c NOOP") == b"* BYE [EXPIRED] This app password was revoked\r\n"
    await h.close()


async def test_status_and_select_answers_are_unchanged(rt: Runtime) -> None:
    deliver(rt, [simple(i) for i in range(3)])
    rt.store.memberships.store_flags(rt.account.id, mailbox_id(rt), [(1, 1)], "add", ["$seen"], None)  # type: ignore[attr-defined]
    h = await logged_in(rt)
    out = await h.send("c STATUS INBOX (MESSAGES UNSEEN RECENT DELETED)")
    assert b"* STATUS INBOX (MESSAGES 3 UNSEEN 2 RECENT 3 DELETED 0)\r\n" in out
    out = await h.send("s SELECT INBOX")
    assert b"* 3 EXISTS\r\n" in out and b"* 3 RECENT\r\n" in out and b"[UNSEEN 2]" in out
    out = await h.send("e EXAMINE INBOX")  # the \Recent messages are this session's now: none left to show
    assert b"* 0 RECENT\r\n" in out and b"[UNSEEN 2]" in out
    out = await h.send("c STATUS Empty (MESSAGES UNSEEN SIZE)")
    assert b"* STATUS Empty (MESSAGES 0 UNSEEN 0 SIZE 0)\r\n" in out
    await h.close()


@pytest.mark.parametrize("command", [
    "STATUS INBOX (MESSAGES)",
    'LIST "" "*"',
    "SELECT Empty",  # would write "* OK [CLOSED]" before its first store call
    "CAPABILITY",  # asks the JMAPACCESS predicate, which meets the dead credential first
    "ENABLE CONDSTORE",  # no store call at all
    "FETCH 1 (FLAGS)",
])
async def test_dead_credential_sees_nothing_but_bye(rt: Runtime, command: str) -> None:
    deliver(rt, [simple(1)])
    h = await logged_in(rt, "INBOX")
    change_password(rt)
    assert await h.send(f"c {command}") == CHANGED
    assert h.session.closed
    await h.close()


async def test_dead_credential_writes_nothing(rt: Runtime) -> None:
    deliver(rt, [simple(1)])
    box = mailbox_id(rt)
    h = await logged_in(rt, "INBOX")
    change_password(rt)
    assert await h.send("c STORE 1 +FLAGS (\\Flagged)") == CHANGED
    rows = rt.store.messages.fetch_rows(box, [(1, 1)], keywords=True)
    assert rows.rows and not rows.keywords and not rows.rows[0][4]  # no flag bits, no keywords
    h = await logged_in_new(rt)
    change_password(rt)
    msg = simple(2)
    assert await h.send(b"d APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n") == CHANGED
    assert rt.store.mailboxes.counts(rt.account.id, [box])[box].messages == 1  # type: ignore[attr-defined]
    await h.close()


async def logged_in_new(rt: Runtime) -> Harness:
    h = Harness(rt, peer="127.0.0.1")
    assert (await h.send(f'a LOGIN {ADDRESS} "something else"')).startswith(b"a OK")
    return h


async def test_a_store_that_cannot_check_is_no_revocation(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    h = await logged_in(rt)

    def broken(account_id: str) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(rt.store.credentials, "epochs", broken)
    out = await h.send("c STATUS INBOX (MESSAGES)")
    assert b"* STATUS INBOX (MESSAGES 0)\r\n" in out and tagged(out, "c").startswith(b"c OK")
    assert tagged(await h.send("n NOOP"), "n").startswith(b"n OK")
    await h.close()


async def test_fetch_renderer_code_is_compiled_once_per_item_list(rt: Runtime) -> None:
    from janusmail.imap.fetchdata import RenderCaches

    deliver(rt, [simple(i) for i in range(3)])
    code = RenderCaches.of(rt.store).code
    h = await logged_in(rt, "INBOX")
    for tag in ("f1", "f2"):
        assert tagged(await h.send(f"{tag} FETCH 1:* (FLAGS UID)"), tag).startswith(tag.encode() + b" OK")
    assert len(code) == 1  # the second FETCH reused the first one's compiled renderer
    out = await h.send("f3 FETCH 1:* (UID FLAGS RFC822.SIZE)")
    assert b"* 3 FETCH (UID 3 FLAGS (\\Recent) RFC822.SIZE " in out and len(code) == 2
    await h.close()


def count_methods(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The store methods commands call from now on, by name, whether or not a credential check rides on them
    (``_checked_read``/``_checked_write`` carry the method), each named once however it reached the store."""
    names: list[str] = []
    real_call, real_inline = rt.store.call, rt.store.read_inline

    def record(fn: Any, args: tuple) -> None:
        name = getattr(fn, "__name__", repr(fn))
        names.append(getattr(args[1], "__name__", repr(args[1])) if name.startswith("_checked") else name)

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not (names and names[-1] == "inline-left"):
            record(fn, args)
        else:  # (an inline read that went on as a hop: the same call)
            names.pop()
        return await real_call(fn, *args, **kwargs)

    async def read_inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
        record(fn, args)
        names.append("inline-left")
        try:
            return await real_inline(fn, *args, **kwargs)
        finally:
            if names and names[-1] == "inline-left":
                names.pop()

    monkeypatch.setattr(rt.store, "call", call)
    monkeypatch.setattr(rt.store, "read_inline", read_inline)
    return names


@pytest.mark.parametrize("command", ["EXPUNGE", "UID EXPUNGE 1:*", "CLOSE"])
async def test_an_expunge_with_nothing_deleted_never_queues_a_write(rt: Runtime, monkeypatch: pytest.MonkeyPatch,
                                                                    command: str) -> None:
    """EXPUNGE, UID EXPUNGE and CLOSE with no \\Deleted message in the mailbox answer from its counter (one small
    read on the loop's thread on SQLite) and never reach the writer lane; with one \\Deleted they expunge it, and
    another session of the mailbox is told at its next command, as before."""
    deliver(rt, [simple(i) for i in range(3)])
    h = await logged_in(rt, "INBOX")
    names = count_methods(rt, monkeypatch)
    assert tagged(await h.send(f"c {command}"), "c").startswith(b"c OK")
    assert names == ["anything_deleted"], names
    assert rt.store.mailboxes.counts(rt.account.id, [mailbox_id(rt)])[mailbox_id(rt)].messages == 3  # type: ignore[attr-defined]

    if command == "CLOSE":
        assert tagged(await h.send("s SELECT INBOX"), "s").startswith(b"s OK")
    watcher = await logged_in(rt, "INBOX")
    assert tagged(await h.send("f STORE 2 +FLAGS.SILENT (\\Deleted)"), "f").startswith(b"f OK")
    del names[:]
    out = await h.send(f"d {command}")
    assert tagged(out, "d").startswith(b"d OK"), out
    assert names[:2] == ["anything_deleted", "expunge"], names  # (then, for EXPUNGE, the mailbox's sync)
    assert (b"* 2 EXPUNGE\r\n" in out) == (command != "CLOSE"), out  # (CLOSE expunges silently)
    assert rt.store.mailboxes.counts(rt.account.id, [mailbox_id(rt)])[mailbox_id(rt)].messages == 2  # type: ignore[attr-defined]
    assert b"* 2 EXPUNGE\r\n" in await watcher.send("n NOOP")
    await watcher.close()
    await h.close()


async def test_a_dead_credential_expunges_nothing(rt: Runtime) -> None:
    """The counter's read carries the command's credential check: a revoked session's EXPUNGE gets BYE and the
    \\Deleted message stays."""
    deliver(rt, [simple(1)])
    h = await logged_in(rt, "INBOX")
    assert tagged(await h.send("f STORE 1 +FLAGS.SILENT (\\Deleted)"), "f").startswith(b"f OK")
    change_password(rt)
    assert await h.send("c EXPUNGE") == CHANGED
    assert rt.store.mailboxes.counts(rt.account.id, [mailbox_id(rt)])[mailbox_id(rt)].messages == 1  # type: ignore[attr-defined]
    await h.close()
