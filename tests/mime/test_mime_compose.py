"""compose_message (JMAP Email/set create) and its round trip through parse_message."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janusmail.mime.compose import ComposeError, compose_message
from janusmail.mime.content import decode_part, find_part, part_text
from janusmail.mime.headers import as_date, as_text, as_urls, header_values
from janusmail.mime.parse import parse_message
from tests.fuzzing import examples
from tests.mime.invariants import check_cache

DOMAIN = "mail.example.test"


def _roundtrip(email: dict, **kw) -> tuple[bytes, dict]:
    raw = compose_message(email, DOMAIN, **kw)
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    cache = parse_message(raw)
    check_cache(cache, raw)
    return raw, cache


def test_minimal_text_message_gets_date_and_message_id():
    raw, c = _roundtrip(
        {
            "from": [{"name": "Jörg Ü", "email": "j@x.test"}],
            "to": [{"email": "a@y.test"}],
            "subject": "Grüße",
            "textBody": [{"content": b"hello\nworld\n"}],
        },
        now=1715670750,
    )
    assert c["subject"] == "Grüße"
    assert c["from"] == [{"name": "Jörg Ü", "email": "j@x.test"}]
    assert c["to"] == [{"name": None, "email": "a@y.test"}]
    assert c["sent_at"] == 1715670750
    assert len(c["message_ids"]) == 1 and c["message_ids"][0].endswith("@" + DOMAIN)
    assert part_text(raw, c["part"]) == ("hello\nworld\n", False)
    assert c["part"]["params"] == [["charset", "us-ascii"]] and c["part"]["encoding"] == "7BIT"
    assert raw.isascii()  # non-ASCII headers were RFC 2047 encoded
    assert b"MIME-Version: 1.0\r\n" in raw


def test_full_structure_from_lists():
    email = {
        "from": [{"name": "A", "email": "a@x.test"}],
        "to": [{"name": "Doe, John", "email": "j@x.test"}, {"name": None, "email": "k@x.test"}],
        "cc": [{"email": "c@x.test"}],
        "bcc": [{"email": "hidden@x.test"}],
        "replyTo": [{"email": "r@x.test"}],
        "subject": "Report",
        "sentAt": "2024-05-14T09:12:30+02:00",
        "messageId": ["own@id.test"],
        "inReplyTo": ["parent@id.test"],
        "references": ["root@id.test", "parent@id.test"],
        "textBody": [{"content": "Grüße, see attached.\n".encode()}],
        "htmlBody": [{"content": '<p>Grüße <img src="cid:logo@x"></p>'.encode()}],
        "attachments": [
            {"type": "image/png", "cid": "logo@x", "disposition": "inline", "content": b"\x89PNG\x00\x01"},
            {"type": "application/pdf", "name": "Résumé 2024.pdf", "content": bytes(range(256)) * 4},
        ],
    }
    raw, c = _roundtrip(email)
    root = c["part"]
    assert (root["type"], root["subtype"]) == ("multipart", "mixed")
    alt = root["children"][0]
    assert alt["subtype"] == "alternative"
    rel = alt["children"][1]
    assert rel["subtype"] == "related"
    assert c["textBody"] == ["1.1"] and c["htmlBody"] == ["1.2.1"]
    assert c["attachments"] == ["1.2.2", "2"]
    assert c["hasAttachment"] is True
    assert part_text(raw, find_part(c, "1.1")) == ("Grüße, see attached.\n", False)
    assert part_text(raw, find_part(c, "1.2.1"))[0] == '<p>Grüße <img src="cid:logo@x"></p>'
    img = find_part(c, "1.2.2")
    assert img["jmap"]["cid"] == "logo@x" and img["jmap"]["disposition"] == "inline"
    assert decode_part(raw, img) == b"\x89PNG\x00\x01"
    pdf = find_part(c, "2")
    assert pdf["jmap"]["name"] == "Résumé 2024.pdf" and pdf["jmap"]["disposition"] == "attachment"
    assert decode_part(raw, pdf) == bytes(range(256)) * 4 and pdf["jmap"]["size"] == 1024
    assert pdf["encoding"] == "BASE64"
    assert c["to"] == [{"name": "Doe, John", "email": "j@x.test"}, {"name": None, "email": "k@x.test"}]
    assert c["bcc"] == [{"name": None, "email": "hidden@x.test"}]
    assert c["reply_to"] == [{"name": None, "email": "r@x.test"}]
    assert c["message_ids"] == ["own@id.test"] and c["in_reply_to"] == ["parent@id.test"]
    assert c["references"] == ["root@id.test", "parent@id.test"]
    assert as_date(header_values(c["headers"], "Date")[0]) == "2024-05-14T09:12:30+02:00"
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998


def test_body_structure_and_extra_headers():
    email = {
        "from": [{"email": "a@x.test"}],
        "header:List-Unsubscribe:asURLs": ["mailto:u@x.test", "https://x.test/u"],
        "header:X-Tag:all": [" one", "two"],
        "header:X-Text:asText": "naïve",
        "headers": [{"name": "X-Raw", "value": " kept\r\n folded"}],
        "bodyStructure": {
            "type": "multipart/mixed",
            "subParts": [
                {
                    "type": "text/plain",
                    "charset": "iso-8859-1",
                    "content": "café".encode("iso-8859-1"),
                    "language": ["fr"],
                    "location": "http://x.test/c",
                },
                {"type": "message/rfc822", "content": b"Subject: inner\r\n\r\ninner body\r\n"},
                {
                    "type": "text/csv",
                    "name": "data.csv",
                    "disposition": "attachment",
                    "content": b"a,b\n1,2\n",
                    "headers": [{"name": "X-Part", "value": "p"}],
                },
            ],
        },
    }
    raw, c = _roundtrip(email)
    assert as_urls(header_values(c["headers"], "List-Unsubscribe")[0]) == [
        "mailto:u@x.test",
        "https://x.test/u",
    ]
    assert header_values(c["headers"], "X-Tag") == [" one", " two"]
    assert header_values(c["headers"], "X-Raw") == [" kept\r\n folded"]
    assert [as_text(v) for v in header_values(c["headers"], "X-Text")] == ["naïve"]
    p1 = find_part(c, "1")
    assert p1["params"] == [["charset", "iso-8859-1"]] and p1["language"] == ["fr"]
    assert part_text(raw, p1) == ("café", False)
    msg = find_part(c, "2")
    assert msg["message"]["envelope"][1] == "inner"
    assert part_text(raw, find_part(c, "2.1"))[0] == "inner body\n"
    csv = find_part(c, "3")
    assert csv["jmap"]["name"] == "data.csv" and part_text(raw, csv)[0] == "a,b\n1,2\n"
    from janusmail.mime.content import part_headers

    assert ["X-Part", " p"] in part_headers(raw, csv)


def test_encoding_choices():
    long_line = ("x" * 1200 + "\n").encode()
    raw, c = _roundtrip({"textBody": [{"content": long_line}]})
    assert c["part"]["encoding"] == "QUOTED-PRINTABLE"
    assert part_text(raw, c["part"])[0] == long_line.decode()
    mostly_binary = "日本語のテキスト".encode() * 20
    raw, c = _roundtrip({"textBody": [{"content": mostly_binary}]})
    assert c["part"]["encoding"] == "BASE64"
    assert part_text(raw, c["part"])[0] == mostly_binary.decode()
    raw, c = _roundtrip({"textBody": [{"content": "trailing space \nnäive\n".encode()}]})
    assert c["part"]["encoding"] == "QUOTED-PRINTABLE"
    assert part_text(raw, c["part"])[0] == "trailing space \nnäive\n"


def test_long_subject_is_folded():
    subject = " ".join(["word"] * 40) + " ünïcödé " + " ".join(["more"] * 20)
    raw, c = _roundtrip({"subject": subject, "textBody": [{"content": b"x"}]})
    assert c["subject"] == subject
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))


@pytest.mark.parametrize(
    ("email", "prop"),
    [
        ({"subject": "a\r\nBcc: x@y"}, "subject"),
        ({"headers": [{"name": "X-A", "value": " a\nBcc: x@y"}]}, "headers/0"),
        ({"header:X-A": "a\r\nBcc: x@y"}, "header:X-A"),
        ({"from": [{"email": "a@b>\r\nX: y"}]}, "from"),
        ({"from": [{"name": "n\r\n", "email": "a@b"}]}, "from"),
        ({"headers": [{"name": "Bad Name", "value": "v"}]}, "headers/0"),
        ({"header:Content-Type": "text/plain"}, "headers"),
        ({"sentAt": "yesterday"}, "sentAt"),
        ({"sentAt": "2024-05-14T09:12:30"}, "sentAt"),
        ({"messageId": ["has space@x"]}, "messageId"),
        ({"textBody": [{"content": b"a"}, {"content": b"b"}]}, "textBody"),
        ({"textBody": [{"type": "text/plain"}]}, "textBody/0/content"),
        ({"bodyStructure": {"type": "multipart/mixed", "subParts": []}}, "bodyStructure/subParts"),
        ({"bodyStructure": {"type": "text/plain", "content": b"x"}, "textBody": []}, "bodyStructure"),
        ({"attachments": [{"type": "bogus", "content": b"x"}]}, "attachments/0/type"),
        (
            {
                "bodyStructure": {
                    "type": "text/plain",
                    "content": b"x",
                    "headers": [{"name": "Content-Transfer-Encoding", "value": "8bit"}],
                }
            },
            "bodyStructure/headers",
        ),
    ],
)
def test_rejects_bad_input(email: dict, prop: str):
    email = (
        {"textBody": [{"content": b"x"}], **email}
        if "bodyStructure" not in email and "textBody" not in email
        else email
    )
    with pytest.raises(ComposeError) as exc:
        compose_message(email, DOMAIN)
    assert exc.value.prop == prop


_word = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=0, max_size=12
)
_local = st.text(alphabet="abcxyz0123.-_+", min_size=1, max_size=10).filter(
    lambda s: not (s.startswith(".") or s.endswith(".") or ".." in s)
)


@pytest.mark.fuzz
@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    subject=st.lists(_word, max_size=12).map(" ".join),
    name=st.lists(_word, max_size=5).map(" ".join),
    local=_local,
    body=st.text(max_size=400),
    attachment=st.binary(max_size=300),
    filename=_word,
)
def test_compose_parse_roundtrip(subject, name, local, body, attachment, filename):
    email = {
        "from": [{"name": name, "email": f"{local}@example.test"}],
        "subject": subject,
        "textBody": [{"content": body.encode("utf-8", "surrogatepass")}],
        "attachments": [
            {"type": "application/octet-stream", "name": filename or None, "content": attachment}
        ],
    }
    try:
        raw, c = _roundtrip(email)
    except ComposeError:
        assert (
            any(ch in subject + name + filename for ch in "\r\n\x00")
            or "\ud800" <= max(body or "a") <= "\udfff"
        )
        return
    nfc = unicodedata.normalize("NFC", subject.lstrip(" "))
    assert c["subject"] == nfc
    want_name = unicodedata.normalize("NFC", name).strip() or None
    assert c["from"] == [{"name": want_name, "email": f"{local}@example.test"}]
    text = re.sub(r"\r\n?", "\n", body)
    assert part_text(raw, find_part(c, "1")) == (text, False)
    att = find_part(c, "2")
    assert decode_part(raw, att) == attachment
    assert att["jmap"]["size"] == len(attachment)
    if filename:
        assert (
            att["jmap"]["name"] == unicodedata.normalize("NFC", filename) or att["jmap"]["name"] == filename
        )


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.binary(max_size=5),
        lambda kids: (
            st.lists(kids, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "type",
                        "content",
                        "charset",
                        "name",
                        "disposition",
                        "cid",
                        "language",
                        "location",
                        "headers",
                        "subParts",
                        "subject",
                        "from",
                        "to",
                        "sentAt",
                        "messageId",
                        "header:X-A",
                        "header:X-B:asText",
                        "textBody",
                        "htmlBody",
                        "attachments",
                        "bodyStructure",
                        "name",
                        "email",
                        "value",
                    ]
                ),
                kids,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
@settings(max_examples=examples(300), deadline=None)
@pytest.mark.fuzz
def test_garbage_input_gives_compose_error_only(obj):
    try:
        raw = compose_message(obj, DOMAIN)
    except ComposeError:
        return
    check_cache(parse_message(raw), raw)
