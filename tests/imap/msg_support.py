"""Helpers for the message-command tests (engineer B): a logged-in sans-IO session on either backend, mail
delivered straight into the store, and a parser for the FETCH lines the tests look at."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from janusmail.auth import passwords
from janusmail.runtime import Runtime
from janusmail.store.model import IngestItem
from tests.imap.e2e_util import ADDRESS, PASSWORD, Harness, make_runtime, use_cheap_argon2

__all__ = ["ADDRESS", "PASSWORD", "Harness", "deliver", "mailbox_id", "runtime_fixture", "session", "tagged", "use_cheap_argon2"]



async def runtime_fixture(tmp_path: Path, db_url: str | None) -> AsyncIterator[Runtime]:
    """Fixture body (modules declare ``mrt = pytest.fixture(runtime_fixture)``): a runtime with one account,
    on SQLite and on PostgreSQL. Every cache belongs to the runtime's Store, so nothing needs clearing."""
    runtime = make_runtime(tmp_path, db_url)
    runtime.account = runtime.store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))  # type: ignore[attr-defined]
    yield runtime
    runtime.store.close()


def mailbox_id(rt: Runtime, name: str = "INBOX") -> str:
    acct = rt.account  # type: ignore[attr-defined]
    box = rt.store.mailboxes.by_path(acct.id, name.split("/"))
    assert box is not None, name
    return box.id


def deliver(rt: Runtime, raws: Sequence[bytes], name: str = "INBOX", keywords: Sequence[str] = (),
            received_at: int | None = None) -> list:
    acct = rt.account  # type: ignore[attr-defined]
    mid = mailbox_id(rt, name)
    return rt.store.emails.ingest_many(acct.id, [IngestItem(r, (mid,), tuple(keywords), received_at) for r in raws])


async def session(rt: Runtime, mailbox: str | None = "INBOX", *, enable: str = "", examine: bool = False,
                  select_args: str = "") -> Harness:
    """A logged-in session (loopback peer), optionally with ENABLE and SELECT/EXAMINE done."""
    h = Harness(rt, peer="127.0.0.1")
    out = await h.send(f'L LOGIN {ADDRESS} "{PASSWORD}"')
    assert b"L OK" in out, out
    if enable:
        out = await h.send(f"E ENABLE {enable}")
        assert b"E OK" in out, out
    if mailbox is not None:
        verb = "EXAMINE" if examine else "SELECT"
        out = await h.send(f"S {verb} {mailbox}{' ' + select_args if select_args else ''}")
        assert b"S OK" in out, out
    return h


def tagged(out: bytes, tag: str) -> bytes:
    """The tagged completion line for ``tag``."""
    for line in out.split(b"\r\n"):
        if line.startswith(tag.encode() + b" "):
            return line
    raise AssertionError(f"no tagged line for {tag}: {out!r}")


_FETCH_RE = re.compile(rb"^\* (\d+) FETCH \(", re.M)


def fetch_lines(out: bytes, keep_recent: bool = False) -> dict[int, bytes]:
    """``{seq: body of the FETCH response}`` (text between the parentheses, literals included). ``\\Recent``
    (IMAP4rev1 sessions see it on new mail) is removed from FLAGS unless ``keep_recent``."""
    if not keep_recent:
        out = out.replace(b"\\Recent ", b"").replace(b" \\Recent", b"").replace(b"(\\Recent)", b"()")
    body = out.rstrip(b"\r\n")
    cut = body.rfind(b"\r\n")
    if cut >= 0 and not body[cut + 2 :].startswith(b"* "):
        out = out[: cut + 2]  # drop the tagged completion line
    res: dict[int, bytes] = {}
    starts = list(_FETCH_RE.finditer(out))
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(out)
        res[int(m.group(1))] = out[m.end() : end]
    return res
