"""Parse and validate a JMAP Request body (RFC 8620 §3.3) into plain Python values.

I-JSON (RFC 7493) and duplicate keys: orjson rejects invalid UTF-8, lone surrogates, NaN/Infinity and a
BOM, but silently keeps the *last* of duplicate member names. We detect duplicates exactly and cheaply
instead of re-parsing with a slow hook: in valid JSON every ``:`` outside a string literal separates one
object member, so after deleting all string literals (one C-speed regex pass) the count of ``:`` must equal
the number of members in the parsed tree. Fewer members means some name repeated, and we answer notJSON.
Cost: about 5 ms per MB, far below the 10 MB request cap.

Nesting: orjson parses 1024 levels but serialises only 254, so a deeply nested request could be parsed
and then not answered (Core/echo). We refuse more than ``MAX_DEPTH`` levels as notRequest; real JMAP needs
a few dozen at most.

``using`` is not required to contain ``urn:ietf:params:jmap:core``: a request without it is accepted and
simply cannot call core methods (they answer unknownMethod), which is kinder than refusing it outright.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import LIMIT, NOT_JSON, NOT_REQUEST, ProblemDetails
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["Invocation", "ProblemDetails", "Request", "parse_request", "validate_request"]

# A JSON string literal, unrolled so it runs in linear time. Only valid JSON is ever scanned.
_STRING_LITERAL = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Invocation:
    """One ``[name, arguments, methodCallId]`` triple (§3.2)."""

    name: str
    arguments: dict[str, Any]
    call_id: str


@dataclass(slots=True)
class Request:
    using: frozenset[str]
    method_calls: list[Invocation]
    #: None when the request had no ``createdIds``: then the response has none either (§3.4).
    created_ids: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


MAX_DEPTH = 128


def _measure(value: Any) -> tuple[int, int]:
    """(object members, nesting depth) of a parsed tree; iterative because orjson allows 1024 levels."""
    count = 0
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is dict:
            count += len(item)
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif type(item) is list:
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return count, deepest


def has_duplicate_keys(body: bytes, parsed: Any) -> bool:
    """True when ``body`` (already known to be valid JSON) repeats a member name in some object."""
    return _STRING_LITERAL.sub(b"", body).count(b":") != _measure(parsed)[0]


def loads_ijson(body: bytes) -> Any:
    """Parse I-JSON or raise a notJSON problem."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProblemDetails(400, NOT_JSON, f"Body is not valid I-JSON: {exc.msg}") from None
    members, depth = _measure(parsed)
    if _STRING_LITERAL.sub(b"", body).count(b":") != members:
        raise ProblemDetails(400, NOT_JSON, "Body is not I-JSON: an object has duplicate member names")
    if depth > MAX_DEPTH:
        raise ProblemDetails(400, NOT_REQUEST, f"JSON is nested more than {MAX_DEPTH} levels deep")
    return parsed


def parse_request(body: bytes, limits: Limits = DEFAULT_LIMITS) -> Request:
    """Bytes in, validated ``Request`` out; every failure is a ``ProblemDetails`` (status 400)."""
    if len(body) > limits.max_size_request:
        raise ProblemDetails(
            400, LIMIT, f"Request is larger than {limits.max_size_request} octets", limit="maxSizeRequest"
        )
    return validate_request(loads_ijson(body), limits)


def _not_request(detail: str) -> ProblemDetails:
    return ProblemDetails(400, NOT_REQUEST, detail)


def validate_request(obj: Any, limits: Limits = DEFAULT_LIMITS) -> Request:
    """Check that parsed JSON has the Request shape. Unknown members are kept in ``extra`` and ignored."""
    if type(obj) is not dict:
        raise _not_request("Request must be a JSON object")
    using = obj.get("using")
    if type(using) is not list or not all(type(u) is str for u in using):
        raise _not_request("'using' must be an array of capability strings")
    calls = obj.get("methodCalls")
    if type(calls) is not list:
        raise _not_request("'methodCalls' must be an array")
    if len(calls) > limits.max_calls_in_request:
        raise ProblemDetails(
            400,
            LIMIT,
            f"Request has {len(calls)} method calls; at most {limits.max_calls_in_request} are allowed",
            limit="maxCallsInRequest",
        )
    invocations: list[Invocation] = []
    for i, call in enumerate(calls):
        if (
            type(call) is not list
            or len(call) != 3
            or type(call[0]) is not str
            or type(call[1]) is not dict
            or type(call[2]) is not str
        ):
            raise _not_request(f"methodCalls[{i}] must be [String name, Object arguments, String callId]")
        invocations.append(Invocation(call[0], call[1], call[2]))
    created_ids = None
    if "createdIds" in obj and obj["createdIds"] is not None:
        raw = obj["createdIds"]
        if type(raw) is not dict or not all(type(v) is str for v in raw.values()):
            raise _not_request("'createdIds' must be an object mapping creation ids to ids")
        created_ids = dict(raw)
    extra = {k: v for k, v in obj.items() if k not in ("using", "methodCalls", "createdIds")}
    return Request(frozenset(using), invocations, created_ids, extra)
