"""SearchSnippet/get (RFC 8621 §5) on both backends, and the highlighter on its own (incl. property tests)."""

from __future__ import annotations

import html
import re

from hypothesis import given
from hypothesis import strategies as st

from janusmail.jmap.types.email.filters import search_terms
from janusmail.store.search.highlight import PREVIEW_OCTETS, find_matches, highlight, snippet
from tests.jmap.test_email_harness import h  # noqa: F401
from tests.mailgen import simple

HTML_MAIL = (
    "From: x@example.test\r\nSubject: Café <tips> & tricks\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/html; charset=utf-8\r\n\r\n"
    "<html><body><p>Le <b>café</b> est bon &amp; chaud. Un quokka sourit.</p></body></html>\r\n"
).encode()


async def test_snippets(h):  # noqa: F811
    a = h.ingest(HTML_MAIL).email_id
    b = h.ingest(simple(1, subject="nothing here", body="plain words " * 200 + "the quokka at the end")).email_id
    c = h.ingest(simple(2, subject="unrelated", body="no match")).email_id
    res = await h.ok("SearchSnippet/get", {"filter": {"text": "cafe quokka"}, "emailIds": [a, b, c, "Mnope"]})
    assert res["notFound"] == ["Mnope"]
    snips = {s["emailId"]: s for s in res["list"]}
    assert list(snips) == [a, b, c]
    assert snips[a]["subject"] == "<mark>Café</mark> &lt;tips&gt; &amp; tricks"
    assert snips[a]["preview"] == "Le <mark>café</mark> est bon &amp; chaud. Un <mark>quokka</mark> sourit."
    assert snips[b]["subject"] is None
    assert "<mark>quokka</mark>" in snips[b]["preview"] and len(snips[b]["preview"].encode()) <= PREVIEW_OCTETS
    assert snips[c] == {"emailId": c, "subject": None, "preview": None}


async def test_snippet_fields_follow_the_filter(h):  # noqa: F811
    a = h.ingest(simple(1, subject="quokka subject", body="quokka body")).email_id
    res = await h.ok("SearchSnippet/get", {"filter": {"subject": "quokka"}, "emailIds": [a]})
    assert res["list"][0]["subject"] == "<mark>quokka</mark> subject" and res["list"][0]["preview"] is None
    res = await h.ok("SearchSnippet/get", {"filter": {"body": "quokka"}, "emailIds": [a]})
    assert res["list"][0]["subject"] is None and res["list"][0]["preview"] == "<mark>quokka</mark> body"
    # terms under NOT are never highlighted; non-text conditions give nothing to highlight
    flt = {"operator": "NOT", "conditions": [{"text": "quokka"}]}
    res = await h.ok("SearchSnippet/get", {"filter": flt, "emailIds": [a]})
    assert res["list"][0] == {"emailId": a, "subject": None, "preview": None}
    res = await h.ok("SearchSnippet/get", {"filter": {"from": "sender"}, "emailIds": [a]})
    assert res["list"][0]["preview"] is None
    flt = {"operator": "AND", "conditions": [{"inMailbox": h.inbox}, {"text": '"quokka body"'}]}
    res = await h.ok("SearchSnippet/get", {"filter": flt, "emailIds": [a]})
    assert res["list"][0]["preview"] == "<mark>quokka body</mark>"


async def test_snippet_errors_and_isolation(h):  # noqa: F811
    bob_box = next(m.id for m in h.store.mailboxes.list(h.bob.id) if m.role == "inbox")
    theirs = h.store.emails.ingest(h.bob.id, simple(1, body="quokka"), (bob_box,)).email_id
    res = await h.ok("SearchSnippet/get", {"filter": {"text": "quokka"}, "emailIds": [theirs]})
    assert res["list"] == [] and res["notFound"] == [theirs]
    assert (await h.call("SearchSnippet/get", {"filter": {"bogus": 1}, "emailIds": []}))["error"] == "unsupportedFilter"
    assert (await h.call("SearchSnippet/get", {"filter": None, "emailIds": "x"}))["error"] == "invalidArguments"
    res = await h.call("SearchSnippet/get", {"filter": None, "emailIds": [f"M{i}" for i in range(501)]})
    assert res["error"] == "requestTooLarge"


async def test_snippets_by_back_reference(h):  # noqa: F811
    ids = [h.ingest(simple(i, body=f"quokka number {i}")).email_id for i in range(3)]
    out = await h.request([
        ["Email/query", {"accountId": h.account_id, "filter": {"text": "quokka"}}, "q"],
        ["SearchSnippet/get", {"accountId": h.account_id, "filter": {"text": "quokka"},
                               "#emailIds": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "s"],
    ])
    listing = out["methodResponses"][1][1]["list"]
    assert sorted(s["emailId"] for s in listing) == sorted(ids)
    assert all(s["preview"].startswith("<mark>quokka</mark> number") for s in listing)


# -- the highlighter -----------------------------------------------------------------------------------------


def test_find_matches_rules():
    assert find_matches("Hello Wörld, the QUOKKA; quokka-like", ["quokka", "world"]) == [(6, 11), (17, 23), (25, 31)]
    assert find_matches("one two three", ["two three", "one"]) == [(0, 3), (4, 13)]
    assert find_matches("quokkas", ["quokka"]) == []  # whole words only
    assert find_matches("a quokka", []) == []
    assert highlight("x & y", ["nothing"]) is None


def test_snippet_window_and_escaping():
    text = "<" * 300 + " quokka " + "&" * 300
    out = snippet(text, ["quokka"])
    assert "<mark>quokka</mark>" in out and len(out.encode()) <= PREVIEW_OCTETS
    assert re.fullmatch(r"(&lt;)*\s*<mark>quokka</mark>\s*(&amp;)*", out)


markup = st.text(alphabet=st.sampled_from(list("ab <>&\"'é ñ\n\tquokk")), max_size=600)


@given(markup, st.lists(st.text(alphabet="abqukoé ", min_size=1, max_size=8), max_size=3))
def test_highlight_is_escaped_text_plus_marks(text, terms):
    out = highlight(text, terms)
    if out is None:
        assert find_matches(text, terms) == []
        return
    assert html.unescape(out.replace("<mark>", "").replace("</mark>", "")) == text
    assert "<" not in out.replace("<mark>", "").replace("</mark>", "")


@given(markup, st.sampled_from(["quokka", "a", "é", "ab"]))
def test_snippet_never_too_long(text, term):
    out = snippet(text, [term])
    if out is not None:
        assert len(out.encode()) <= PREVIEW_OCTETS
        assert out.count("<mark>") == out.count("</mark>") >= 1
        stripped = out.replace("<mark>", "").replace("</mark>", "")
        assert "<" not in stripped and re.search(r"&(?!amp;|lt;|gt;)", stripped) is None


@given(st.text(max_size=80))
def test_search_terms_never_fail(text):
    terms = search_terms(text)
    assert all(t and re.search(r"\w", t) for t in terms)
