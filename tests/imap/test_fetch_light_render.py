"""The generated renderer of metadata-only FETCHes (``fetchdata._light_renderer``) against the general one.

The light renderer takes shortcuts (a table of the 16 system-flag lists for rows without keywords, \\Deleted or
\\Recent); for any rows, keywords and \\Recent set it must write the very bytes the general renderer writes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.codec import FetchAttr
from janusmail.imap.fetchdata import FetchPlan, RenderContext, render_batch

KEYWORDS = ("$Junk", "Work", "$Forwarded", "todo")


@st.composite
def _mailbox(draw: Any) -> tuple[list[tuple], dict[str, tuple[str, ...]], set[int] | None]:
    uids = sorted(draw(st.sets(st.integers(1, 500), max_size=40)))
    rows = []
    keywords: dict[str, tuple[str, ...]] = {}
    for u in uids:
        email_id = f"M{u}"
        flags = draw(st.one_of(st.integers(0, 15), st.integers(0, 63)))
        rows.append((u, draw(st.booleans()), 7 + u, email_id, flags, 1_700_000_000 + u, 100 + u, f"T{u}"))
        kws = draw(st.lists(st.sampled_from(KEYWORDS), unique=True, max_size=3))
        if kws:
            keywords[email_id] = tuple(sorted(kws))
    recent = draw(st.none() | st.sets(st.sampled_from(uids or [1])))
    return rows, keywords, recent


@settings(max_examples=200, deadline=None)
@given(box=_mailbox(), items=st.sampled_from([("UID", "FLAGS"), ("FLAGS",), ("FLAGS", "RFC822.SIZE", "MODSEQ")]))
def test_light_flags_rendering_equals_the_general_renderer(box: Any, items: tuple[str, ...]) -> None:
    rows, keywords, recent = box
    plan = FetchPlan.build([FetchAttr(name) for name in items], uid=True)
    is_recent = None if recent is None else recent.__contains__
    seqs = list(range(1, len(rows) + 1))
    light = render_batch(RenderContext(plan, False, keywords, {}, is_recent=is_recent), rows, seqs)
    # a UID no row has in ``changed`` sends every row through the general renderer, unchanged
    general = render_batch(RenderContext(plan, False, keywords, {}, is_recent=is_recent, changed={-1}), rows, seqs)
    assert light == general
    if rows:
        assert light.count(b"* ") == len(rows)
