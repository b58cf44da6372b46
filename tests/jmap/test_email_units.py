"""Pure parts of the Email type without a store: header property names, filter/comparator compilation, the
create rules and the result cache. Property-based where the input is client-controlled text or JSON."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from janusmail.jmap.engine import Comparator, FilterOperator, MethodError, SetError
from janusmail.jmap.types.email.filters import compile_comparator, compile_condition, to_condition
from janusmail.jmap.types.email.props import EmailBuilder, memory_reader, parse_header_prop, read_body_options
from janusmail.jmap.types.email.set_plan import parse_update, plan_create
from janusmail.mime.parse import parse_message
from janusmail.store.search import ast as q
from janusmail.store.search.highlight import highlight_terms
from janusmail.store.search.result_patch import Ordered
from janusmail.store.search.service import QueryCache


class Ctx:
    created = {"mb": "Fcreated"}

    def resolve_creation_id(self, value: str) -> str | None:
        return self.created.get(value[1:]) if value.startswith("#") else value


# -- header property names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("prop,want", [
    ("header:Subject", ("Subject", "asRaw", False)),
    ("header:Subject:asText", ("Subject", "asText", False)),
    ("header:from:asAddresses:all", ("from", "asAddresses", True)),
    ("header:X-Any:asURLs", ("X-Any", "asURLs", False)),
    ("header:X-Any:all", ("X-Any", "asRaw", True)),
    ("header:Subject:asAddresses", None),
    ("header:Date:asText", None),
    ("header:Subject:astext", None),
    ("header:", None),
    ("header:A:B:C", None),
    ("header:Sub ject", None),
    ("subject", None),
])
def test_parse_header_prop(prop, want):
    hp = parse_header_prop(prop)
    assert (None if hp is None else (hp.name, hp.form, hp.all)) == want


@given(st.text(max_size=40))
def test_parse_header_prop_never_raises(suffix):
    hp = parse_header_prop("header:" + suffix)
    if hp is not None:
        assert hp.name and ":" not in hp.name


def test_body_options():
    assert read_body_options({}).body_properties[0] == "partId"
    o = read_body_options({"bodyProperties": ["type", "type", "header:X"], "fetchAllBodyValues": True,
                           "maxBodyValueBytes": 10})
    assert o.body_properties == ("type", "header:X") and o.fetch_all and o.max_bytes == 10


def test_builder_over_memory():
    raw = b"Subject: hi\r\nFrom: a@b.c\r\n\r\nbody text\r\n"
    b = EmailBuilder(frozenset({"subject", "from", "bodyValues", "textBody"}),
                     read_body_options({"fetchTextBodyValues": True}))
    e = b.build({"blobId": "Gx"}, parse_message(raw), memory_reader(raw))
    assert e["subject"] == "hi" and e["bodyValues"] == {"1": {"value": "body text\n", "isEncodingProblem": False,
                                                              "isTruncated": False}}
    assert e["textBody"][0]["blobId"] == "Gx_1"


# -- filters ---------------------------------------------------------------------------------------------------


def test_compile_condition_values():
    c = compile_condition({"inMailbox": "Fa", "after": "2020-01-01T00:00:00.1Z", "hasKeyword": "$Seen",
                           "text": 'one "two three"', "header": ["X-A"], "from": "Bob x@y", "maxSize": 10})
    assert isinstance(c, q.And)
    assert set(c.items) == {q.InMailbox("Fa"), q.Date("received", "ge", 1577836801), q.Keyword("$seen"),
                            q.Text("all", ("one", "two three")), q.Header("x-a", None),
                            q.Address("from", ("Bob", "x@y"), words=True), q.Size("lt", 10)}
    # canonical: the same condition spelled in another order is the same (hashable) cache key
    assert compile_condition({"maxSize": 10, "from": "Bob x@y", "header": ["X-A"], "text": 'one "two three"',
                              "hasKeyword": "$Seen", "after": "2020-01-01T00:00:00.1Z", "inMailbox": "Fa"}) == c
    assert compile_condition({"inMailbox": "Fa"}) == q.InMailbox("Fa")
    assert compile_condition({}) == q.All() and compile_condition({"text": "@@"}) == q.All()
    assert compile_condition({"hasKeyword": "$recent"}) == q.Nothing()
    assert compile_condition({"notKeyword": "$recent"}) == q.All()
    assert compile_condition({"noneInThreadHaveKeyword": "$Junk"}) == q.ThreadKeyword("$junk", "none")
    tree = FilterOperator("AND", (compile_condition({"subject": "s"}),
                                  FilterOperator("NOT", (compile_condition({"body": "b"}),))))
    cond = to_condition(tree)
    assert cond == q.And((q.Text("subject", ("s",)), q.Not(q.Or((q.Text("body", ("b",)),)))))
    assert highlight_terms(cond) == (["s"], [])
    assert to_condition(None) == q.All()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["inMailbox", "inMailboxOtherThan", "before", "after", "minSize", "maxSize", "hasKeyword",
                        "notKeyword", "allInThreadHaveKeyword", "hasAttachment", "text", "from", "header", "nope"])


@given(st.dictionaries(keys, json_values, max_size=3))
def test_compile_condition_only_raises_method_errors(cond):
    try:
        compile_condition(cond)
    except MethodError as exc:
        assert exc.type in ("invalidArguments", "unsupportedFilter")


def test_compile_comparator():
    assert compile_comparator(Comparator("hasKeyword", False, None, {"keyword": "$Flagged"})).keyword == "$flagged"
    for bad in (Comparator("nope"), Comparator("size", True, "i;nope"), Comparator("size", True, None, {"x": 1})):
        with pytest.raises(MethodError):
            compile_comparator(bad)


# -- create and update rules -----------------------------------------------------------------------------------


def base(**extra: Any) -> dict[str, Any]:
    return {"mailboxIds": {"#mb": True}, "bodyValues": {"t": {"value": "x"}}, "textBody": [{"partId": "t"}], **extra}


def test_plan_create_resolves_and_collects_blobs():
    plan = plan_create(Ctx(), base(attachments=[{"blobId": "Gb1", "type": "image/png"},
                                                {"blobId": "Gb1", "name": "again"}]))
    assert plan.mailbox_ids == ["Fcreated"] and plan.blob_ids() == ["Gb1"]
    plan.fill({"Gb1": b"PNG"})
    assert [a["content"] for a in plan.email["attachments"]] == [b"PNG", b"PNG"]
    assert plan.email["textBody"][0]["content"] == b"x"


@pytest.mark.parametrize("obj", [
    base(mailboxIds={"#nope": True}),
    base(subject="a", **{"header:subject:asText": "b"}),
    base(**{"header:Content-Language": " en"}),
    base(bodyStructure={"type": "multipart/mixed", "subParts": []}),
    {"mailboxIds": {"Fa": True}, "bodyStructure": {"type": "multipart/mixed", "partId": "t", "subParts": [{}]}},
    {"mailboxIds": {"Fa": True}, "bodyValues": {"t": {"value": "x"}},
     "bodyStructure": {"partId": "t", "type": "text/plain", "header:Content-Type": " text/plain"}},
])
def test_plan_create_refusals(obj):
    with pytest.raises(SetError) as err:
        plan_create(Ctx(), obj)
    assert err.value.type == "invalidProperties"


def test_parse_update():
    upd = parse_update(Ctx(), {"keywords/$Seen": True, "keywords/old": None, "mailboxIds/#mb": True,
                               "mailboxIds/Fx": None})
    assert upd.add_keywords == ["$Seen"] and upd.remove_keywords == ["old"]
    assert upd.add_mailboxes == ["Fcreated"] and upd.remove_mailboxes == ["Fx"]
    upd = parse_update(Ctx(), {"keywords": {"a": True}, "mailboxIds": {"Fy": True}})
    assert upd.keywords == ["a"] and upd.mailbox_ids == ["Fy"]
    assert parse_update(Ctx(), {"keywords/a~1b": True}).add_keywords == ["a/b"]  # "/" is a keyword character
    with pytest.raises(SetError):
        parse_update(Ctx(), {"keywords/a b": True})


# -- the result cache -------------------------------------------------------------------------------------------


def test_query_cache_keeps_two_states_and_evicts():
    c = QueryCache(max_entries=2, max_ids=10)
    c.put("a", 1, Ordered(["x"], None))
    c.put("a", 2, Ordered(["y"], None))
    c.put("a", 3, Ordered(["z"], None))
    assert c.get("a", 1) is None and c.get("a", 2) == ["y"] and c.get("a", 3) == ["z"]
    # the list a newer state is patched from: the newest older one
    assert c.before("a", 5) == (3, Ordered(["z"], None)) and c.before("a", 3) == (2, Ordered(["y"], None))
    assert c.before("a", 2) is None and c.before("nope", 9) is None
    c.put("b", 1, Ordered(["1"] * 5, None))
    c.put("c", 1, Ordered(["1"] * 5, None))  # over both limits: the least recently used goes
    assert c.get("a", 3) is None and c.get("c", 1) is not None
