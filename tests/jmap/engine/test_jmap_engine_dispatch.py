"""The Engine: ordering, result references, createdIds, error wrapping, capabilities, accounts."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from janusmail.jmap.engine import CORE, CallContext, Engine, MethodError, StaticAccounts
from janusmail.jmap.engine.dispatch import AccountAccess

X = "urn:example:x"


def make_engine() -> tuple[Engine, list[str]]:
    engine = Engine()
    seen: list[str] = []

    async def record(ctx: CallContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        seen.append(ctx.call_id)
        return [("X/record", {"got": args, "n": len(seen)})]

    async def fail(ctx: CallContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        raise MethodError(args.get("type", "forbidden"), description=args.get("description"))

    async def crash(ctx: CallContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        raise RuntimeError("secret database password is hunter2")

    async def two(ctx: CallContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("X/two", {"part": 1}), ("X/implicit", {"part": 2})]

    async def bad_return(ctx: CallContext, args: dict[str, Any]) -> Any:
        return {"not": "a list"}

    async def create(ctx: CallContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        ctx.record_creation(args["cid"], args["id"])
        return [("X/create", {})]

    async def resolve(ctx: CallContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("X/resolve", {"id": ctx.resolve_creation_id(args["ref"])})]

    async def account(ctx: CallContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        await ctx.check_account(args["accountId"], write=args.get("write", False))
        return [("X/account", {})]

    async def outer(ctx: CallContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("X/outer", {}), *await ctx.invoke(args["inner"], args.get("args", {}))]

    for name, fn in [
        ("X/record", record),
        ("X/fail", fail),
        ("X/crash", crash),
        ("X/two", two),
        ("X/bad", bad_return),
        ("X/create", create),
        ("X/resolve", resolve),
        ("X/account", account),
        ("X/outer", outer),
    ]:
        engine.register(name, X, fn)
    return engine, seen


async def run(engine: Engine, calls: list[list[Any]], **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"using": [CORE, X], "methodCalls": calls}
    body.update(kw)
    return await engine.run(body, lambda info: CallContext(info, accounts=ACCOUNTS), session_state="st")


ACCOUNTS = StaticAccounts(
    {
        "A": AccountAccess(),
        "R": AccountAccess(read_only=True),
        "N": AccountAccess(capabilities=frozenset({CORE})),
    }
)


async def test_calls_run_in_order_and_errors_do_not_stop_the_request() -> None:
    engine, seen = make_engine()
    out = await run(
        engine,
        [["X/record", {}, "a"], ["X/fail", {"type": "forbidden"}, "b"], ["X/record", {}, "c"]],
    )
    assert seen == ["a", "c"]
    assert out["methodResponses"] == [
        ["X/record", {"got": {}, "n": 1}, "a"],
        ["error", {"type": "forbidden"}, "b"],
        ["X/record", {"got": {}, "n": 2}, "c"],
    ]
    assert out["sessionState"] == "st"
    assert "createdIds" not in out


async def test_method_error_extra_members() -> None:
    engine, _ = make_engine()
    out = await run(engine, [["X/fail", {"type": "invalidArguments", "description": "bad"}, "a"]])
    assert out["methodResponses"][0][1] == {"type": "invalidArguments", "description": "bad"}


async def test_one_call_many_responses_share_the_call_id() -> None:
    engine, _ = make_engine()
    out = await run(engine, [["X/two", {}, "z"]])
    assert out["methodResponses"] == [["X/two", {"part": 1}, "z"], ["X/implicit", {"part": 2}, "z"]]


async def test_server_fail_hides_internals_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    engine, _ = make_engine()
    with caplog.at_level(logging.ERROR, logger="janusmail.jmap.engine"):
        out = await run(engine, [["X/crash", {}, "a"], ["X/bad", {}, "b"], ["Core/echo", {"ok": 1}, "c"]])
    assert out["methodResponses"][0] == ["error", {"type": "serverFail"}, "a"]
    assert out["methodResponses"][1] == ["error", {"type": "serverFail"}, "b"]
    assert out["methodResponses"][2] == ["Core/echo", {"ok": 1}, "c"]
    assert "hunter2" not in str(out)
    assert "hunter2" in caplog.text


async def test_unknown_method_and_capability_gating() -> None:
    engine, _ = make_engine()
    out = await run(engine, [["X/nope", {}, "a"], ["Foo/get", {}, "b"]])
    assert [r[1]["type"] for r in out["methodResponses"]] == ["unknownMethod", "unknownMethod"]
    # X/record exists, but the client did not put its capability in "using".
    out = await engine.run({"using": [CORE], "methodCalls": [["X/record", {}, "a"]]})
    assert out["methodResponses"] == [["error", {"type": "unknownMethod"}, "a"]]
    out = await engine.run({"using": [], "methodCalls": [["Core/echo", {}, "a"]]})
    assert out["methodResponses"] == [["error", {"type": "unknownMethod"}, "a"]]


async def test_core_echo() -> None:
    engine = Engine()
    args = {"hello": True, "high": 5, "nested": {"a": [1, None]}}
    out = await engine.run({"using": [CORE], "methodCalls": [["Core/echo", args, "b3ff"]]})
    assert out["methodResponses"] == [["Core/echo", args, "b3ff"]]


async def test_result_reference_resolution() -> None:
    engine, _ = make_engine()
    out = await run(
        engine,
        [
            ["Core/echo", {"list": [{"ids": ["a", "b"]}, {"ids": ["c"]}], "x": 1}, "e"],
            [
                "X/record",
                {"#ids": {"resultOf": "e", "name": "Core/echo", "path": "/list/*/ids"}, "y": 2},
                "r",
            ],
        ],
    )
    assert out["methodResponses"][1][1]["got"] == {"ids": ["a", "b", "c"], "y": 2}


async def test_resolved_values_are_copies() -> None:
    engine = Engine()

    async def mutate(ctx: CallContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        args["ids"].append("evil")
        return [("X/mutate", {})]

    engine.register("X/mutate", X, mutate)
    out = await engine.run(
        {
            "using": [CORE, X],
            "methodCalls": [
                ["Core/echo", {"ids": ["a"]}, "e"],
                ["X/mutate", {"#ids": {"resultOf": "e", "name": "Core/echo", "path": "/ids"}}, "m"],
            ],
        }
    )
    assert out["methodResponses"][0][1] == {"ids": ["a"]}


@pytest.mark.parametrize(
    "ref",
    [
        {"resultOf": "nope", "name": "Core/echo", "path": "/ids"},  # no such call id
        {"resultOf": "e", "name": "X/record", "path": "/ids"},  # name mismatch
        {"resultOf": "e", "name": "Core/echo", "path": "/missing"},  # path fails
        {"resultOf": "e", "name": "Core/echo", "path": "ids"},  # not a pointer
        {"resultOf": "e", "name": "Core/echo"},  # malformed reference
        "e",
    ],
)
async def test_invalid_result_reference(ref: Any) -> None:
    engine, seen = make_engine()
    out = await run(engine, [["Core/echo", {"ids": [1]}, "e"], ["X/record", {"#ids": ref}, "r"]])
    assert out["methodResponses"][1] == ["error", out["methodResponses"][1][1], "r"]
    assert out["methodResponses"][1][1]["type"] == "invalidResultReference"
    assert seen == []  # the handler never ran


async def test_reference_to_a_later_or_failed_call() -> None:
    engine, _ = make_engine()
    ref = {"resultOf": "f", "name": "X/fail", "path": "/x"}
    out = await run(engine, [["X/fail", {}, "f"], ["X/record", {"#x": ref}, "r"]])
    assert out["methodResponses"][1][1]["type"] == "invalidResultReference"  # first response is "error"
    out = await run(
        engine,
        [
            ["X/record", {"#x": {"resultOf": "later", "name": "Core/echo", "path": ""}}, "r"],
            ["Core/echo", {}, "later"],
        ],
    )
    assert out["methodResponses"][0][1]["type"] == "invalidResultReference"


async def test_only_the_first_response_with_a_call_id_counts() -> None:
    engine, _ = make_engine()
    out = await run(
        engine,
        [
            ["X/two", {}, "t"],
            ["X/record", {"#p": {"resultOf": "t", "name": "X/implicit", "path": "/part"}}, "r1"],
            ["X/record", {"#p": {"resultOf": "t", "name": "X/two", "path": "/part"}}, "r2"],
        ],
    )
    assert out["methodResponses"][2][1]["type"] == "invalidResultReference"
    assert out["methodResponses"][3][1]["got"] == {"p": 1}


async def test_plain_and_referenced_argument_together_is_invalid_arguments() -> None:
    engine, seen = make_engine()
    ref = {"resultOf": "e", "name": "Core/echo", "path": "/ids"}
    out = await run(engine, [["Core/echo", {"ids": []}, "e"], ["X/record", {"ids": [], "#ids": ref}, "r"]])
    assert out["methodResponses"][1][1]["type"] == "invalidArguments"
    assert seen == []


async def test_created_ids_round_trip() -> None:
    engine, _ = make_engine()
    out = await run(
        engine,
        [
            ["X/create", {"cid": "k2", "id": "M2"}, "a"],
            ["X/resolve", {"ref": "#k1"}, "b"],
            ["X/resolve", {"ref": "#k2"}, "c"],
            ["X/resolve", {"ref": "#nope"}, "d"],
            ["X/resolve", {"ref": "M9"}, "e"],
        ],
        createdIds={"k1": "M1"},
    )
    assert out["createdIds"] == {"k1": "M1", "k2": "M2"}
    assert [r[1].get("id") for r in out["methodResponses"][1:]] == ["M1", "M2", None, "M9"]
    # Without createdIds in the request, the response has none, but references still work inside it.
    out = await run(engine, [["X/create", {"cid": "k", "id": "M"}, "a"], ["X/resolve", {"ref": "#k"}, "b"]])
    assert "createdIds" not in out
    assert out["methodResponses"][1][1] == {"id": "M"}


async def test_account_checks() -> None:
    engine, _ = make_engine()
    out = await run(
        engine,
        [
            ["X/account", {"accountId": "A", "write": True}, "ok"],
            ["X/account", {"accountId": "missing"}, "nf"],
            ["X/account", {"accountId": "R", "write": True}, "ro"],
            ["X/account", {"accountId": "R"}, "ro-read"],
            ["X/account", {"accountId": "N"}, "ns"],
        ],
    )
    assert [r[1].get("type") for r in out["methodResponses"]] == [
        None,
        "accountNotFound",
        "accountReadOnly",
        None,
        "accountNotSupportedByMethod",
    ]


async def test_no_account_policy_denies() -> None:
    engine, _ = make_engine()
    out = await engine.run({"using": [CORE, X], "methodCalls": [["X/account", {"accountId": "A"}, "a"]]})
    assert out["methodResponses"][0][1]["type"] == "accountNotFound"


async def test_implicit_calls_and_their_errors() -> None:
    engine, _ = make_engine()
    out = await run(
        engine,
        [
            ["X/outer", {"inner": "Core/echo", "args": {"v": 1}}, "a"],
            ["X/outer", {"inner": "X/fail", "args": {"type": "stateMismatch"}}, "b"],
            ["X/outer", {"inner": "X/unregistered"}, "c"],
        ],
    )
    assert out["methodResponses"] == [
        ["X/outer", {}, "a"],
        ["Core/echo", {"v": 1}, "a"],
        ["X/outer", {}, "b"],
        ["error", {"type": "stateMismatch"}, "b"],
        ["X/outer", {}, "c"],
        ["error", {"type": "serverFail"}, "c"],
    ]


async def test_async_ctx_factory_and_factory_errors() -> None:
    engine, _ = make_engine()

    async def factory(info: Any) -> CallContext:
        if info.method == "X/fail":
            raise MethodError("forbidden")
        return CallContext(info, accounts=ACCOUNTS)

    out = await engine.run(
        {"using": [CORE, X], "methodCalls": [["X/account", {"accountId": "A"}, "a"], ["X/fail", {}, "b"]]},
        factory,
    )
    assert out["methodResponses"] == [["X/account", {}, "a"], ["error", {"type": "forbidden"}, "b"]]


def test_registry() -> None:
    engine, _ = make_engine()
    with pytest.raises(ValueError):
        engine.register("X/record", X, lambda c, a: None)
    assert engine.methods()["Core/echo"] == CORE
    assert {CORE, X} <= engine.capabilities
    engine.add_capability("urn:x:marker")
    assert "urn:x:marker" in engine.capabilities


async def test_unserialisable_response_costs_only_that_call() -> None:
    engine = Engine()

    async def bad(ctx: CallContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("X/bad", {"value": {1, 2}})]  # a set is not JSON

    engine.register("X/bad", X, bad)
    body = b'{"using":["urn:ietf:params:jmap:core","urn:example:x"],"methodCalls":[["X/bad",{},"a"],["Core/echo",{"k":1},"b"]]}'
    out = orjson.loads(await engine.handle(body))
    assert out["methodResponses"] == [["error", {"type": "serverFail"}, "a"], ["Core/echo", {"k": 1}, "b"]]
