"""A NUL inside a JMAP filter string is a clean ``invalidArguments``, not ``serverFail``: no indexed text
holds a NUL (PostgreSQL text cannot, SQLite FTS5 rejects the query), so the filter is refused up front for
Email/query and SearchSnippet/get alike. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.jmap.test_email_harness import h  # noqa: F401
from tests.mailgen import simple


@pytest.mark.parametrize("flt", [
    {"text": "a\x00b"},
    {"subject": "a\x00b"},
    {"body": "a\x00b"},
    {"from": "a\x00b"},
    {"header": ["X-Priority", "a\x00b"]},
])
async def test_nul_in_email_query_filter(h, flt):  # noqa: ANN001, F811
    h.ingest(simple(1, subject="hello", body="world"))
    r = await h.call("Email/query", {"filter": flt})
    assert r.get("type") == "invalidArguments", r


async def test_nul_in_snippet_filter(h):  # noqa: ANN001, F811
    e = h.ingest(simple(1, subject="hello", body="world")).email_id
    r = await h.call("SearchSnippet/get", {"filter": {"text": "hel\x00lo"}, "emailIds": [e]})
    assert r.get("type") == "invalidArguments", r
