"""``SEARCH KEYWORD $Seen`` names a keyword IMAP never stores (``$seen`` is JMAP's spelling of ``\\Seen``,
refused by STORE so that one flag never has two IMAP names), so it matches nothing, and ``UNKEYWORD $Seen``
matches everything: the search must not give ``\\Seen`` a second name that STORE refuses."""

from __future__ import annotations

import pytest

from tests.imap.msg_support import deliver, runtime_fixture, session, use_cheap_argon2
from tests.mailgen import simple

mrt = pytest.fixture(runtime_fixture)
cheap = pytest.fixture(autouse=True)(use_cheap_argon2)


async def test_keyword_dollar_seen_is_not_backslash_seen(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(1), simple(2)], keywords=("$seen",))
    h = await session(mrt)
    assert (await h.send("T1 SEARCH KEYWORD $Seen")).startswith(b"* SEARCH\r\n")
    assert (await h.send("T2 SEARCH UNKEYWORD $Seen")).startswith(b"* SEARCH 1 2\r\n")
    assert (await h.send("T3 SEARCH SEEN")).startswith(b"* SEARCH 1 2\r\n")
    await h.close()
