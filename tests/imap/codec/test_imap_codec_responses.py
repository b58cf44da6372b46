"""Ready-made untagged responses (janusmail.imap.codec.responses)."""

from __future__ import annotations

import pytest

from janusmail.imap.codec import NumberSet
from janusmail.imap.codec import responses as r


def test_simple_counts_and_lists() -> None:
    assert r.exists_response(172) == b"* 172 EXISTS\r\n"
    assert r.recent_response(1) == b"* 1 RECENT\r\n"
    assert r.expunge_response(3) == b"* 3 EXPUNGE\r\n"
    assert (
        r.capability_response(["IMAP4rev1", "IMAP4rev2", "OBJECTID"])
        == b"* CAPABILITY IMAP4rev1 IMAP4rev2 OBJECTID\r\n"
    )
    assert r.enabled_response(["CONDSTORE"]) == b"* ENABLED CONDSTORE\r\n"
    assert r.enabled_response([]) == b"* ENABLED\r\n"
    assert (
        r.flags_response(["\\Answered", "\\Seen", "$Forwarded"])
        == b"* FLAGS (\\Answered \\Seen $Forwarded)\r\n"
    )


def test_vanished_and_search() -> None:
    assert r.vanished_response([41, 42, 43, 50]) == b"* VANISHED 41:43,50\r\n"
    assert r.vanished_response(NumberSet([(300, 310)]), earlier=True) == b"* VANISHED (EARLIER) 300:310\r\n"
    assert r.search_response([2, 3, 6]) == b"* SEARCH 2 3 6\r\n"
    assert r.search_response([]) == b"* SEARCH\r\n"
    assert r.search_response([2, 5], modseq=917162500) == b"* SEARCH 2 5 (MODSEQ 917162500)\r\n"
    assert r.esearch_response("A283", True, [("MIN", 2), ("COUNT", 3), ("ALL", [2, 10, 11])]) == (
        b'* ESEARCH (TAG "A283") UID MIN 2 COUNT 3 ALL 2,10:11\r\n'
    )
    assert r.esearch_response("a", False, [("COUNT", 0)]) == b'* ESEARCH (TAG "a") COUNT 0\r\n'
    assert r.esearch_response(None, False, []) == b"* ESEARCH\r\n"


def test_list_and_status() -> None:
    assert r.list_response(["\\HasNoChildren"], "/", "INBOX") == b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
    assert (
        r.list_response(["\\Noselect"], None, "Entwürfe/Alt")
        == b"* LIST (\\Noselect) NIL Entw&APw-rfe/Alt\r\n"
    )
    assert r.list_response([], "/", "Entwürfe", utf8_ok=True) == b'* LIST () "/" "Entw\xc3\xbcrfe"\r\n'
    assert r.list_response(["\\Subscribed"], ".", "Foo", extended=[("CHILDINFO", ["SUBSCRIBED"])]) == (
        b'* LIST (\\Subscribed) "." Foo ("CHILDINFO" ("SUBSCRIBED"))\r\n'
    )
    assert r.list_response([], "/", "a b", command="LSUB") == b'* LSUB () "/" "a b"\r\n'
    assert r.status_response(
        "blurdybloop", [("MESSAGES", 231), ("UIDNEXT", 44292), ("MAILBOXID", "F2212ea87")]
    ) == (b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292 MAILBOXID (F2212ea87))\r\n")


def test_jmapaccess_is_always_quoted() -> None:
    assert (
        r.jmapaccess_response("https://example.com/.s/[jmap]")
        == b'* JMAPACCESS "https://example.com/.s/[jmap]"\r\n'
    )
    long_url = "https://example.com/" + "x" * 5000
    assert r.jmapaccess_response(long_url).startswith(b'* JMAPACCESS "https://')  # never a literal
    with pytest.raises(ValueError):
        r.jmapaccess_response("https://x/\r\n* OK injected")


def test_id_namespace_quota() -> None:
    assert r.id_response(None) == b"* ID NIL\r\n"
    assert (
        r.id_response([("name", "Janus Mail"), ("version", None)])
        == b'* ID ("name" "Janus Mail" "version" NIL)\r\n'
    )
    assert r.namespace_response([("", "/")]) == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    assert r.namespace_response([("", "/")], [("~", "/")], [("#shared/", "/")]) == (
        b'* NAMESPACE (("" "/")) (("~" "/")) (("#shared/" "/"))\r\n'
    )
    assert r.quota_response("", [("STORAGE", 10, 512), ("MESSAGE", 3, 1000)]) == (
        b'* QUOTA "" (STORAGE 10 512 MESSAGE 3 1000)\r\n'
    )
    assert r.quotaroot_response("INBOX", [""]) == b'* QUOTAROOT INBOX ""\r\n'
