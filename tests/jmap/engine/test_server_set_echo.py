"""``server_set_mismatches``: which paths of a server-set value a client changed (RFC 8620 §5.3), sans-IO."""

from __future__ import annotations

from janusmail.jmap.engine.patch import escape_token, server_set_mismatches

RIGHTS = {"mayReadItems": True, "mayDelete": True}


def test_equal_values_are_accepted() -> None:
    assert server_set_mismatches("myRights", dict(RIGHTS), RIGHTS) == []
    assert server_set_mismatches("totalEmails", 3, 3) == []
    assert server_set_mismatches("list", [1, {"a": None}], [1, {"a": None}]) == []


def test_differences_are_named_member_by_member() -> None:
    assert server_set_mismatches("myRights", {**RIGHTS, "mayDelete": False}, RIGHTS) == ["myRights/mayDelete"]
    assert server_set_mismatches("myRights", {"mayReadItems": True}, RIGHTS) == ["myRights/mayDelete"]
    assert server_set_mismatches("myRights", {**RIGHTS, "a/b~c": True}, RIGHTS) == ["myRights/a~1b~0c"]
    assert server_set_mismatches("myRights", None, RIGHTS) == ["myRights"]
    assert server_set_mismatches("totalEmails", 1, True) == ["totalEmails"]  # strict types: 1 is not true
    assert server_set_mismatches("x", True, 1) == ["x"]


def test_escape_token_round_trips_with_the_pointer_splitter() -> None:
    from janusmail.jmap.engine.pointer import split_tokens

    for token in ["plain", "a/b", "~", "~1", "/~/"]:
        assert split_tokens(escape_token(token)) == [token]
