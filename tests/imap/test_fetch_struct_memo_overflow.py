"""FETCH of more ENVELOPEs/BODYSTRUCTUREs than the store's bounded render memo holds never answers NIL: the
memo is shared by every session and evicts oldest-first, so each render batch pins what it needs
(``fetchdata.fill_structs``) instead of trusting the memo between filling and rendering."""

from __future__ import annotations

import re

import pytest

from janusmail.imap.fetchdata import _struct_cost
from tests.imap.msg_support import deliver, runtime_fixture, session, use_cheap_argon2
from tests.mailgen import simple

mrt = pytest.fixture(runtime_fixture)
cheap = pytest.fixture(autouse=True)(use_cheap_argon2)


async def test_structures_survive_memo_eviction(mrt) -> None:  # noqa: ANN001
    # the production table with a budget of ~20 envelopes (the first memo() call fixes the budget)
    mrt.store.messages.render_cache.memo("imap.structs", 20 * 400, _struct_cost)
    deliver(mrt, [simple(i, subject=f"subject number {i}") for i in range(1, 101)])
    h = await session(mrt)
    for tag, items in (("F1", "ENVELOPE"), ("F2", "(ENVELOPE BODYSTRUCTURE)"), ("F3", "(FLAGS ENVELOPE)")):
        out = await h.send(f"{tag} FETCH 1:* {items}")
        assert b"ENVELOPE NIL" not in out and b"BODYSTRUCTURE NIL" not in out, out[:300]
        subjects = re.findall(rb'"subject number (\d+)"', out)
        assert sorted(int(x) for x in subjects) == list(range(1, 101))
    await h.close()
