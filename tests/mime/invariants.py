"""Checks every parse result must pass, shared by the example tests and the fuzz tests."""

from __future__ import annotations

import orjson

ENVELOPE_LEN = 10


def walk(part: dict):
    """Every part, pre-order, descending into encapsulated messages."""
    yield part
    for c in part.get("children") or ():
        yield from walk(c)
    if part.get("message"):
        yield from walk(part["message"]["part"])


def leaves(part: dict) -> list[dict]:
    return [p for p in walk(part) if "children" not in p and "message" not in p]


def _check_envelope(env: list) -> None:
    assert isinstance(env, list) and len(env) == ENVELOPE_LEN
    for i in (0, 1, 8, 9):
        assert env[i] is None or isinstance(env[i], str)
    for i in range(2, 8):
        if env[i] is not None:
            assert env[i], "an empty address list must be NIL"
            for a in env[i]:
                assert len(a) == 4 and all(x is None or isinstance(x, str) for x in a)


def _check_part(p: dict, raw: bytes, lo: int, hi: int, multi_sec: str, leaf_sec: str) -> None:
    hs, he, bs, be = p["header_start"], p["header_end"], p["body_start"], p["body_end"]
    assert lo <= hs <= he == bs <= be <= hi, (lo, hs, he, bs, be, hi)
    assert p["size"] == be - bs
    assert p["type"] == p["type"].lower() and p["subtype"] == p["subtype"].lower()
    assert isinstance(p["params"], list)
    j = p["jmap"]
    if "children" in p:
        assert p["type"] == "multipart" and p["children"], p
        assert p["section"] == multi_sec and j["partId"] is None
        prev = bs
        for i, c in enumerate(p["children"], 1):
            sec = f"{multi_sec}.{i}" if multi_sec else str(i)
            assert c["header_start"] >= prev
            # each child starts right after a delimiter line "--boundary..."
            line_start = raw.rfind(b"\n", 0, max(c["header_start"] - 1, 0)) + 1
            assert raw.startswith(b"--", line_start, c["header_start"])
            _check_part(c, raw, bs, be, sec, sec)
            prev = c["body_end"]
    else:
        assert p["type"] != "multipart"
        assert p["section"] == leaf_sec and j["partId"] == leaf_sec
        assert isinstance(j["size"], int) and j["size"] >= 0
        assert j["type"] == j["type"].lower() and "/" in j["type"]
        if p["type"] == "text":
            assert j["charset"]
            assert any(k.lower() == "charset" for k, _ in p["params"])
    if p["type"] == "text":
        assert isinstance(p["lines"], int)
    if "message" in p:
        assert (p["type"], p["subtype"]) in (("message", "rfc822"), ("message", "global"))
        m = p["message"]
        assert m["header_start"] == bs and m["body_end"] == be
        assert m["header_end"] == m["body_start"] == m["part"]["body_start"]
        _check_envelope(m["envelope"])
        _check_part(m["part"], raw, bs, be, leaf_sec, f"{leaf_sec}.1")
    elif p["type"] == "message" and p["subtype"] in ("rfc822", "global"):
        raise AssertionError("message/rfc822 without an encapsulated message breaks IMAP BODYSTRUCTURE")


def check_cache(cache: dict, raw: bytes) -> None:
    """Structural invariants plus JSON-ability."""
    orjson.loads(orjson.dumps(cache))
    assert cache["damaged"] is False, "parse fell back to the degraded cache"
    assert cache["size"] == len(raw)
    _check_envelope(cache["envelope"])
    _check_part(cache["part"], raw, 0, len(raw), "", "1")
    sections = {p["section"] for p in walk(cache["part"])}
    for key in ("textBody", "htmlBody", "attachments"):
        assert set(cache[key]) <= sections
    assert len(cache["preview"]) <= 256
    assert len(cache["search_text"]) <= 1_000_000
    for key in ("message_ids", "in_reply_to", "references"):
        assert all(isinstance(x, str) and x for x in cache[key])
    for key in ("from", "to", "cc", "bcc", "reply_to", "sender"):
        v = cache[key]
        assert v is None or all(isinstance(a["email"], str) for a in v)
    for n, v in cache["headers"]:
        assert "\x00" not in v and ":" not in n
    for s in (cache["preview"], cache["search_text"], cache["subject"] or ""):
        assert "\x00" not in s
