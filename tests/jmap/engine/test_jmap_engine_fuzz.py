"""Property: whatever a client sends, the engine answers with a JMAP error it names, never a crash.

The requests are JSON the parser accepts often enough to reach the methods: real method names with argument
objects built from the names the standard methods read, filled with arbitrary JSON, plus result references
with arbitrary paths. A handler that raises anything but a MethodError comes back as ``serverFail``, which the
property forbids: bad input is the client's error, and it must be told which.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janusmail.jmap.engine import CORE, ProblemDetails
from tests.fuzzing import examples

pytestmark = pytest.mark.fuzz

NOTES = "urn:example:notes"  # the toy types of tests/jmap/engine/conftest.py (the make_harness fixture)
MAIL = "urn:ietf:params:jmap:mail"

PREFIX = "urn:ietf:params:jmap:error:"
METHOD_ERRORS = {
    "accountNotFound", "accountNotSupportedByMethod", "accountReadOnly", "anchorNotFound",
    "cannotCalculateChanges", "fromAccountNotFound", "fromAccountNotSupportedByMethod", "invalidArguments",
    "invalidResultReference", "requestTooLarge", "stateMismatch", "tooManyChanges", "unknownMethod",
    "unsupportedFilter", "unsupportedSort", "forbidden",
}
METHODS = [f"Note/{m}" for m in ("get", "changes", "set", "copy", "query", "queryChanges")] * 3 + [
    "Prefs/get", "Prefs/set", "Email/get", "Email/query", "Thread/get", "Core/echo", "Nope/get", "note/get", "",
]
ARG_NAMES = ["accountId", "fromAccountId", "ids", "properties", "sinceState", "maxChanges", "create", "update",
             "destroy", "ifInState", "filter", "sort", "position", "anchor", "anchorOffset", "limit",
             "calculateTotal", "sinceQueryState", "upToId", "collapseThreads", "onSuccessDestroyOriginal",
             "destroyFromIfInState", "ifFromInState", "title", "tags", "operator", "conditions", "property",
             "isAscending", "collation", "text"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
                    st.sampled_from(["A1", "A2", "RO", "NS", "nope", "0", "k1", "#k1", "title", "ta"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(ARG_NAMES), st.text(max_size=6)), inner,
                                            max_size=4)),
    max_leaves=12,
)

# Plausible values per argument, so that most calls get past the first check and into the method; each
# argument is still arbitrary JSON some of the time.
ids = st.sampled_from(["n1", "n2", "n3", "Mf1", "Mf2", "Ta", "#k0", "#k1", "", "x" * 300])
states = st.sampled_from(["0", "1", "2", "5", "-1", "99999999999999999999", "", "abc"])
small_ints = st.integers(-3, 12)
condition = st.dictionaries(st.sampled_from(["text", "hasTag", "pinned", "after", "title", "inMailbox"]),
                            st.one_of(st.text(max_size=5), st.booleans(), st.just("2020-01-01T00:00:00Z")),
                            max_size=2)
filters = st.recursive(condition, lambda inner: st.fixed_dictionaries(
    {"operator": st.sampled_from(["AND", "OR", "NOT", "XOR"]), "conditions": st.lists(inner, max_size=3)}),
    max_leaves=5)
comparators = st.fixed_dictionaries(
    {"property": st.sampled_from(["title", "created", "size", "body", "receivedAt"])},
    optional={"isAscending": st.booleans(), "collation": st.sampled_from(["i;ascii-casemap", "i;octet", "x"])})
notes = st.dictionaries(st.sampled_from(["title", "body", "tags", "pinned", "parentId", "id", "size", "tags/a"]),
                        st.one_of(st.text(max_size=5), st.booleans(), st.just({"a": True}), ids), max_size=4)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "ids": st.one_of(st.none(), st.lists(ids, max_size=4)),
    "properties": st.one_of(st.none(), st.lists(st.sampled_from(["id", "title", "tags", "body", "subject",
                                                                 "nope", ""]), max_size=4)),
    "sinceState": states, "ifInState": states, "sinceQueryState": states, "ifFromInState": states,
    "maxChanges": small_ints, "position": small_ints, "limit": small_ints, "anchorOffset": small_ints,
    "anchor": ids, "upToId": ids,
    "create": st.dictionaries(st.sampled_from(["k0", "k1", "k2", ""]), notes, max_size=3),
    "update": st.dictionaries(ids, notes, max_size=3),
    "destroy": st.lists(ids, max_size=3),
    "filter": st.one_of(st.none(), filters),
    "sort": st.one_of(st.none(), st.lists(comparators, max_size=3)),
    "calculateTotal": st.booleans(), "collapseThreads": st.booleans(),
    "fromAccountId": st.sampled_from(["A1", "A2", "RO", "NS", "nope"]),
    "onSuccessDestroyOriginal": st.booleans(),
}


def arg_value(name: str) -> st.SearchStrategy[Any]:
    plausible = PLAUSIBLE.get(name)
    return json_values if plausible is None else st.one_of(plausible, plausible, plausible, json_values)


STANDARD_ARGS = {
    "get": ["ids", "properties"],
    "changes": ["sinceState", "maxChanges"],
    "set": ["ifInState", "create", "update", "destroy"],
    "copy": ["fromAccountId", "ifFromInState", "ifInState", "create", "onSuccessDestroyOriginal",
             "destroyFromIfInState"],
    "query": ["filter", "sort", "position", "anchor", "anchorOffset", "limit", "calculateTotal", "collapseThreads"],
    "queryChanges": ["filter", "sort", "sinceQueryState", "maxChanges", "upToId", "calculateTotal"],
}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 5))
    calls = []
    for i in range(n):
        method = draw(st.sampled_from(METHODS))
        own = STANDARD_ARGS.get(method.rpartition("/")[2], ARG_NAMES)
        args: dict[str, Any] = {}
        if draw(st.integers(0, 9)):
            args["accountId"] = draw(st.sampled_from(["A1", "A1", "A1", "A2", "RO", "NS", "nope", 1, None]))
        for name in draw(st.lists(st.sampled_from(own), max_size=len(own), unique=True)):
            args[name] = draw(arg_value(name))
        if draw(st.integers(0, 7)) == 0:  # an argument the method does not define
            args[draw(st.sampled_from(ARG_NAMES))] = draw(json_values)
        if i and draw(st.integers(0, 5)) == 0:  # a result reference to an earlier call, any path
            args["#ids"] = {"resultOf": f"c{draw(st.integers(0, i))}", "name": draw(st.sampled_from(METHODS)),
                            "path": draw(st.one_of(st.sampled_from(["/ids", "/list/*/id", "/created", "/*"]),
                                                   st.text(max_size=10)))}
        calls.append([method, args, f"c{i}"])
    using = draw(st.one_of(st.just([CORE, NOTES, MAIL]),
                           st.lists(st.sampled_from([CORE, NOTES, MAIL]), unique=True)))
    body: dict[str, Any] = {"using": using, "methodCalls": calls}
    if draw(st.booleans()):
        body["createdIds"] = draw(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2))
    return body


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(requests())
def test_any_request_gets_a_named_error_never_a_crash(make_harness: Any, body: dict[str, Any]) -> None:
    h = make_harness()
    try:
        out = asyncio.run(h.engine.handle(orjson.dumps(body), h.ctx_factory, session_state="S"))
    except ProblemDetails as p:
        assert p.type.startswith(PREFIX) and 400 <= p.status < 500, p
        return
    response = orjson.loads(out)
    call_ids = [c[2] for c in body["methodCalls"]]
    answered = [r[2] for r in response["methodResponses"]]
    assert [c for c in answered if c in call_ids] == answered  # every response belongs to a call, in order
    assert set(answered) == set(call_ids)
    for name, args, _ in response["methodResponses"]:
        if name == "error":
            assert args["type"] in METHOD_ERRORS, (body, args)


@settings(max_examples=examples(300), deadline=None)
@given(st.one_of(json_values, st.dictionaries(st.sampled_from(["using", "methodCalls", "createdIds"]),
                                               json_values, max_size=3)))
def test_any_json_document_is_a_request_or_a_problem(value: Any) -> None:
    """Structural validation (RFC 8620 §3.6.1 notRequest) for JSON of every shape, not only of the right one."""
    from janusmail.jmap.engine import Engine, parse_request

    try:
        req = parse_request(orjson.dumps(value))
    except ProblemDetails as p:
        assert p.type.startswith(PREFIX) and p.status == 400
        return
    assert isinstance(value, dict) and isinstance(value["using"], list)
    try:
        asyncio.run(Engine().run(req))
    except ProblemDetails as p:
        assert p.type.startswith(PREFIX)
