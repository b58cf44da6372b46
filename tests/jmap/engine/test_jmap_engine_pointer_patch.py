"""JSON Pointer with the ``*`` extension (RFC 8620 §3.7) and PatchObject semantics (§5.3)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from janusmail.jmap.engine import PointerError, SetError, apply_patch, evaluate, validate_patch
from tests.fuzzing import examples

pytestmark = pytest.mark.fuzz

DOC = {
    "list": [
        {"id": "T1", "emailIds": ["M1", "M2"], "meta": {"a/b": 1, "m~n": 2}},
        {"id": "T2", "emailIds": ["M3"], "meta": {}},
    ],
    "ids": ["x", "y"],
    "": "empty key",
}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", DOC),
        ("/ids", ["x", "y"]),
        ("/ids/1", "y"),
        ("/list/*/id", ["T1", "T2"]),
        ("/list/*/emailIds", ["M1", "M2", "M3"]),  # arrays of arrays are flattened
        ("/list/0/emailIds/*", ["M1", "M2"]),
        ("/list/0/meta/a~1b", 1),
        ("/list/0/meta/m~0n", 2),
        ("/", "empty key"),
        ("/ids/*", ["x", "y"]),
        ("/list/*/emailIds/0", ["M1", "M3"]),
    ],
)
def test_pointer_evaluation(pointer: str, expected: Any) -> None:
    assert evaluate(DOC, pointer) == expected


@pytest.mark.parametrize(
    "pointer",
    [
        "ids",
        "/nope",
        "/ids/2",
        "/ids/01",
        "/ids/-",
        "/ids/x",
        "/ids/0/deeper",
        "/list/*/nope",
        "/a~2b",
        "/a~",
    ],
)
def test_pointer_failures(pointer: str) -> None:
    with pytest.raises(PointerError):
        evaluate(DOC, pointer)


def test_star_on_object_is_a_member_name() -> None:
    assert evaluate({"*": 1}, "/*") == 1
    with pytest.raises(PointerError):
        evaluate({"a": 1}, "/*")


# -- apply_patch: examples ----------------------------------------------------------------------------

BASE = {"name": "n", "keywords": {"$seen": True, "a/b": True}, "alerts": [{"offset": 1}], "role": "inbox"}


def test_patch_sets_nested_and_top_level() -> None:
    out = apply_patch(BASE, {"keywords/$flagged": True, "name": "x", "keywords/a~1b": None})
    assert out == {
        "name": "x",
        "keywords": {"$seen": True, "$flagged": True},
        "alerts": [{"offset": 1}],
        "role": "inbox",
    }
    assert BASE["keywords"] == {"$seen": True, "a/b": True}  # input untouched


def test_null_resets_to_default_or_removes() -> None:
    assert apply_patch(BASE, {"role": None}, defaults={"role": None})["role"] is None
    assert "role" not in apply_patch(BASE, {"role": None})
    assert apply_patch(BASE, {"keywords/$nothere": None}) == BASE  # removing an absent member is a no-op
    assert apply_patch(BASE, {"name": None}, defaults={"name": "default"})["name"] == "default"


def test_whole_object_patch() -> None:
    assert apply_patch(BASE, {"keywords": {"$draft": True}})["keywords"] == {"$draft": True}


@pytest.mark.parametrize(
    "patch",
    [
        {"alerts/0/offset": 5},  # into an array
        {"alerts/0": {}},
        {"nope/x": 1},  # parent missing
        {"name/x": 1},  # parent not an object
        {"keywords": {}, "keywords/$seen": None},  # prefix conflict
        {"alerts": [], "alerts/0/offset": 1},
        {"a~2": 1},  # bad escape
        [],
        "x",
    ],
)
def test_invalid_patches(patch: Any) -> None:
    with pytest.raises(SetError) as info:
        apply_patch(BASE, patch)
    assert info.value.type == "invalidPatch"


def test_prefix_means_path_prefix_not_string_prefix() -> None:
    out = apply_patch({"a": {}, "ab": 1}, {"a/x": 1, "ab": 2})
    assert out == {"a": {"x": 1}, "ab": 2}
    validate_patch({"keywords/a": True, "keywords/ab": True})


# -- apply_patch: properties ------------------------------------------------------------------------

keys = st.text(alphabet="ab/~$", min_size=0, max_size=3)
leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=3)
values = st.recursive(
    leaves, lambda c: st.lists(c, max_size=2) | st.dictionaries(keys, c, max_size=3), max_leaves=8
)
objects = st.dictionaries(keys, values, max_size=5)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _object_paths(obj: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every path whose parent is an object: existing members plus one new member per object."""
    out = [prefix + ("$new",)]
    for k, v in obj.items():
        out.append(prefix + (k,))
        if isinstance(v, dict):
            out.extend(_object_paths(v, prefix + (k,)))
    return out


@st.composite
def object_and_patch(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    obj = draw(objects)
    paths = _object_paths(obj)
    chosen = draw(st.lists(st.sampled_from(paths), unique=True, max_size=5))
    # keep paths that are not prefixes of each other
    kept: list[tuple[str, ...]] = []
    for p in sorted(chosen, key=len):
        if not any(p[: len(q)] == q for q in kept):
            kept.append(p)
    patch = {"/".join(_escape(t) for t in p): draw(values) for p in kept}
    return obj, patch


@settings(max_examples=examples(300))
@given(object_and_patch())
def test_valid_patches_do_what_they_say(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    obj, patch = case
    before = copy.deepcopy(obj)
    out = apply_patch(obj, patch)
    assert obj == before  # never mutates its input
    for key, value in patch.items():
        pointer = "/" + key
        if value is None:
            with pytest.raises(PointerError):
                evaluate(out, pointer)
        else:
            assert evaluate(out, pointer) == value
    # Top-level members the patch never named are untouched.
    named = {key.split("/")[0].replace("~1", "/").replace("~0", "~") for key in patch}
    for k in obj:
        if k not in named:
            assert out[k] == obj[k]


@settings(max_examples=examples(300))
@given(objects, st.dictionaries(keys, values, max_size=5))
def test_any_patch_either_applies_or_is_invalid_patch(obj: dict[str, Any], patch: dict[str, Any]) -> None:
    try:
        out = apply_patch(obj, patch)
    except SetError as exc:
        assert exc.type == "invalidPatch"
    else:
        assert isinstance(out, dict)


@given(objects, st.dictionaries(st.text(alphabet="ab", min_size=1, max_size=2), values, max_size=4))
def test_top_level_patch_is_a_merge(obj: dict[str, Any], patch: dict[str, Any]) -> None:
    out = apply_patch(obj, patch)
    expected = {**obj, **{k: v for k, v in patch.items() if v is not None}}
    for k, v in patch.items():
        if v is None:
            expected.pop(k, None)
    assert out == expected


@given(objects, keys, keys)
def test_prefix_conflicts_always_rejected(obj: dict[str, Any], a: str, b: str) -> None:
    assume(a)
    patch = {_escape(a): {}, _escape(a) + "/" + _escape(b): 1}
    with pytest.raises(SetError):
        apply_patch(obj, patch)
