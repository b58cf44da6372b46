"""Resolving a mailbox name through the store's cached tree (janusmail/store/mailbox_structure.py, issue 10):
SELECT, EXAMINE, APPEND, COPY and MOVE read no tree while no mailbox changed, and what another session or
another process creates, renames or deletes is what the very next command sees. Sans-IO sessions, real store,
both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from janusmail.runtime import Runtime
from janusmail.store.store import Store
from tests.imap.e2e_util import ADDRESS, PASSWORD, Harness, use_cheap_argon2
from tests.imap.msg_support import runtime_fixture, tagged
from tests.mailgen import simple

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


rt = pytest.fixture(runtime_fixture)  # a runtime with one account (ADDRESS), both backends


async def session(rt: Runtime) -> Harness:
    h = Harness(rt, peer="127.0.0.1")
    assert (await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')).startswith(b"a OK")
    return h


async def append(h: Harness, mailbox: str) -> bytes:
    msg = simple(7)
    return tagged(await h.send(b"p APPEND %s {%d+}\r\n%s\r\n" % (mailbox.encode(), len(msg), msg)), "p")


async def test_renames_and_deletes_by_another_session_are_seen_at_the_next_command(rt: Runtime) -> None:
    a, b = await session(rt), await session(rt)
    assert tagged(await b.send("c CREATE Work"), "c").startswith(b"c OK")
    assert tagged(await a.send("s SELECT Work"), "s").startswith(b"s OK")
    assert (await append(a, "Work")).startswith(b"p OK [APPENDUID")
    assert tagged(await b.send("r RENAME Work Play"), "r").startswith(b"r OK")
    assert tagged(await a.send("s2 SELECT Work"), "s2").startswith(b"s2 NO [NONEXISTENT]")
    out = await a.send("s3 EXAMINE Play")
    assert tagged(out, "s3").startswith(b"s3 OK") and b"* 1 EXISTS" in out
    assert (await append(a, "Work")).startswith(b"p NO [TRYCREATE]")
    assert tagged(await a.send("u UNSELECT"), "u").startswith(b"u OK")
    assert tagged(await b.send("d DELETE Play"), "d").startswith(b"d OK")
    assert (await append(a, "Play")).startswith(b"p NO [TRYCREATE]")
    assert tagged(await a.send("s4 SELECT Play"), "s4").startswith(b"s4 NO [NONEXISTENT]")
    assert (await append(a, "INBOX")).startswith(b"p OK")
    assert tagged(await a.send("s5 SELECT INBOX"), "s5").startswith(b"s5 OK")
    assert tagged(await a.send("m COPY 1 Play"), "m").startswith(b"m NO [TRYCREATE]")
    await a.close()
    await b.close()


async def test_a_mailbox_another_process_made_or_renamed_is_seen_at_the_next_command(
        rt: Runtime, tmp_path: Path, db_url: str | None) -> None:
    """Another Store on the same database stands for a second worker or ``janusmail`` run from a shell."""
    a = await session(rt)
    assert tagged(await a.send("s SELECT INBOX"), "s").startswith(b"s OK")  # the tree is cached now
    other = Store.open(tmp_path / "data", db_url)
    try:
        made = other.mailboxes.create(rt.account.id, "Elsewhere")  # type: ignore[attr-defined]
        assert (await append(a, "Elsewhere")).startswith(b"p OK [APPENDUID")
        other.mailboxes.update(rt.account.id, made.id, name="Moved")  # type: ignore[attr-defined]
    finally:
        other.close()
    assert (await append(a, "Elsewhere")).startswith(b"p NO [TRYCREATE]")
    out = await a.send("s2 SELECT Moved")
    assert tagged(out, "s2").startswith(b"s2 OK") and b"* 1 EXISTS" in out
    await a.close()


async def test_selecting_and_appending_read_no_tree_while_nothing_changed(rt: Runtime,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.store.test_mailbox_structure import count_tree_reads

    a = await session(rt)
    assert tagged(await a.send("s SELECT INBOX"), "s").startswith(b"s OK")
    reads = count_tree_reads(rt.store, monkeypatch)
    for i in range(3):
        assert tagged(await a.send(f"s{i} SELECT INBOX"), f"s{i}").startswith(f"s{i} OK".encode())
        assert (await append(a, "INBOX")).startswith(b"p OK")
    assert len(reads) == (0 if rt.store.sqlite else 6)
    await a.close()
