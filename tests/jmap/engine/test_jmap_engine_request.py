"""Request parsing and every request-level problem type (RFC 8620 §3.6.1)."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.jmap.engine import CORE, Engine, Limits, ProblemDetails, parse_request
from janusmail.jmap.engine.request import has_duplicate_keys
from tests.fuzzing import examples

pytestmark = pytest.mark.fuzz

P = "urn:ietf:params:jmap:error:"


def problem(body: bytes, limits: Limits = Limits()) -> ProblemDetails:
    with pytest.raises(ProblemDetails) as info:
        parse_request(body, limits)
    return info.value


def test_valid_request_parses() -> None:
    req = parse_request(
        b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":1},"c1"]],"x":1}'
    )
    assert req.using == {CORE}
    assert req.method_calls[0].name == "Core/echo"
    assert req.method_calls[0].arguments == {"a": 1}
    assert req.method_calls[0].call_id == "c1"
    assert req.created_ids is None
    assert req.extra == {"x": 1}  # unknown members are ignored, not refused


def test_created_ids_kept() -> None:
    req = parse_request(b'{"using":[],"methodCalls":[],"createdIds":{"k1":"Mabc"}}')
    assert req.created_ids == {"k1": "Mabc"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"nope",
        b"\xff\xfe{}",
        b'"\\ud800"',  # lone surrogate: not I-JSON
        b"\xef\xbb\xbf{}",  # BOM
        b'{"using":[],"methodCalls":[],"using":[]}',  # duplicate member names
        b'{"using":[],"methodCalls":[["Core/echo",{"a":1,"a":2},"c"]]}',  # nested duplicate
        b"[NaN]",
    ],
)
def test_not_json(body: bytes) -> None:
    p = problem(body)
    assert p.type == P + "notJSON" and p.status == 400


@pytest.mark.parametrize(
    "obj",
    [
        [],
        "x",
        {},
        {"using": "urn:ietf:params:jmap:core", "methodCalls": []},
        {"using": [1], "methodCalls": []},
        {"using": []},
        {"using": [], "methodCalls": {}},
        {"using": [], "methodCalls": [["Core/echo", {}]]},
        {"using": [], "methodCalls": [["Core/echo", [], "c"]]},
        {"using": [], "methodCalls": [[1, {}, "c"]]},
        {"using": [], "methodCalls": [["Core/echo", {}, 3]]},
        {"using": [], "methodCalls": [], "createdIds": []},
        {"using": [], "methodCalls": [], "createdIds": {"k": 1}},
    ],
)
def test_not_request(obj: object) -> None:
    p = problem(orjson.dumps(obj))
    assert p.type == P + "notRequest" and p.status == 400


def test_limit_max_calls() -> None:
    body = orjson.dumps({"using": [CORE], "methodCalls": [["Core/echo", {}, str(i)] for i in range(3)]})
    p = problem(body, Limits(max_calls_in_request=2))
    assert p.type == P + "limit" and p.limit == "maxCallsInRequest"
    assert p.to_dict()["limit"] == "maxCallsInRequest"


def test_limit_max_size() -> None:
    p = problem(b'{"using":[],"methodCalls":[]}' + b" " * 100, Limits(max_size_request=50))
    assert p.type == P + "limit" and p.limit == "maxSizeRequest"


def test_problem_details_json_shape() -> None:
    p = ProblemDetails(400, P + "limit", "too many", limit="maxCallsInRequest")
    body = orjson.loads(p.to_json())
    assert body["type"] == P + "limit"
    assert body["status"] == 400
    assert body["detail"] == "too many"
    assert body["limit"] == "maxCallsInRequest"
    assert "limit" not in ProblemDetails(400, P + "notJSON", "x").to_dict()


async def test_unknown_capability_problem() -> None:
    engine = Engine()
    with pytest.raises(ProblemDetails) as info:
        await engine.handle(b'{"using":["urn:ietf:params:jmap:core","urn:x:nope"],"methodCalls":[]}')
    assert info.value.type == P + "unknownCapability"
    assert "urn:x:nope" in info.value.detail


async def test_engine_enforces_max_calls_even_for_prebuilt_requests() -> None:
    engine = Engine(Limits(max_calls_in_request=1))
    req = parse_request(b'{"using":[],"methodCalls":[["Core/echo",{},"a"],["Core/echo",{},"b"]]}', Limits())
    with pytest.raises(ProblemDetails) as info:
        await engine.run(req)
    assert info.value.limit == "maxCallsInRequest"


async def test_handle_round_trip_bytes() -> None:
    engine = Engine()
    out = orjson.loads(
        await engine.handle(
            b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"x":[1]},"e"]]}'
        )
    )
    assert out == {"methodResponses": [["Core/echo", {"x": [1]}, "e"]], "sessionState": ""}


# -- property tests -----------------------------------------------------------------------------------

json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(st.tuples(st.text(alphabet='ab:"\\/{}[],', max_size=3), children), max_size=4)
    ),
    max_leaves=25,
)


def _render(value: object) -> str:
    """JSON text where objects are lists of pairs, so duplicate names can really occur."""
    if isinstance(value, list) and all(isinstance(p, tuple) for p in value) and value:
        return "{" + ",".join(json.dumps(k) + ":" + _render(v) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render(v) for v in value) + "]"
    return json.dumps(value)


def _has_dups(text: str) -> bool:
    found = False

    def hook(pairs: list[tuple[str, object]]) -> dict:
        nonlocal found
        if len({k for k, _ in pairs}) != len(pairs):
            found = True
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return found


@settings(max_examples=examples(400))
@given(json_value)
def test_duplicate_detection_matches_a_slow_reference(value: object) -> None:
    text = _render(value)
    body = text.encode()
    assert has_duplicate_keys(body, orjson.loads(body)) == _has_dups(text)


@settings(max_examples=examples(300))
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(body: bytes) -> None:
    try:
        parse_request(body)
    except ProblemDetails as p:
        assert p.type.startswith(P)


def test_too_deep_nesting_is_refused_cleanly() -> None:
    deep = b"[" * 300 + b"]" * 300
    body = b'{"using":[],"methodCalls":[["Core/echo",{"x":' + deep + b'},"c"]]}'
    p = problem(body)
    assert p.type == P + "notRequest" and "nested" in p.detail
    ok = b"[" * 100 + b"]" * 100
    parse_request(b'{"using":[],"methodCalls":[["Core/echo",{"x":' + ok + b'},"c"]]}')
