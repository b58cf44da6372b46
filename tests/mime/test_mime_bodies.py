"""RFC 8621 §4.1.4 body split, hasAttachment and preview."""

from __future__ import annotations

from janusmail.mime.content import find_part, part_bytes
from janusmail.mime.parse import parse_message
from tests.mime.mime_samples import RFC8621_EXAMPLE, crlf


def _letters(cache: dict, raw: bytes, sections: list[str]) -> list[str]:
    out = []
    for s in sections:
        p = find_part(cache, s)
        assert p is not None, s
        out.append(part_bytes(raw, p).decode())
    return out


def test_rfc8621_worked_example():
    c = parse_message(RFC8621_EXAMPLE)
    assert _letters(c, RFC8621_EXAMPLE, c["textBody"]) == ["A", "B", "C", "D", "K"]
    assert _letters(c, RFC8621_EXAMPLE, c["htmlBody"]) == ["A", "E", "K"]
    # J is a message/rfc822 part: its body is the message "J" (an empty header, body "J")
    assert _letters(c, RFC8621_EXAMPLE, c["attachments"]) == ["C", "F", "G", "H", "J"]
    assert c["hasAttachment"] is True
    assert c["textBody"] == ["1", "2.1.1.1", "2.1.1.2", "2.1.1.3", "3"]
    assert c["htmlBody"] == ["1", "2.1.2.1", "3"]
    assert c["attachments"] == ["2.1.1.2", "2.1.2.2", "2.2", "2.3", "2.4"]


def _msg(body: str, ctype: str) -> bytes:
    return crlf(f"From: a@b\nContent-Type: {ctype}\n\n{body}")


def test_html_only_alternative_backfills_text_body():
    raw = _msg(
        "--x\nContent-Type: text/html\n\n<p>Only <b>html</b></p>\n--x--\n",
        "multipart/alternative; boundary=x",
    )
    c = parse_message(raw)
    assert c["textBody"] == ["1"] and c["htmlBody"] == ["1"] and c["attachments"] == []
    assert c["preview"] == "Only html"
    assert c["hasAttachment"] is False


def test_text_and_html_alternative():
    raw = _msg(
        "--x\nContent-Type: text/plain\n\nplain words\n--x\nContent-Type: text/html\n\n<i>html words</i>\n--x--\n",
        "multipart/alternative; boundary=x",
    )
    c = parse_message(raw)
    assert c["textBody"] == ["1"] and c["htmlBody"] == ["2"]
    assert c["preview"] == "plain words"
    assert "plain words" in c["search_text"]


def test_related_keeps_only_first_inline_and_named_text_is_attachment():
    raw = _msg(
        "--x\nContent-Type: text/plain\n\nbody\n"
        "--x\nContent-Type: text/plain; name=notes.txt\n\nnotes\n"
        "--x\nContent-Type: image/png\nContent-Disposition: inline\nContent-ID: <img1@x>\n\nPNG\n--x--\n",
        "multipart/mixed; boundary=x",
    )
    c = parse_message(raw)
    assert c["textBody"] == ["1", "3"]
    assert c["attachments"] == ["2"]  # named text part that is not first
    assert c["hasAttachment"] is True
    img = find_part(c, "3")
    assert img["jmap"]["cid"] == "img1@x" and img["jmap"]["disposition"] == "inline"

    only_inline = _msg(
        "--x\nContent-Type: text/html\n\n<img src=cid:i>\n"
        "--x\nContent-Type: image/png\nContent-Disposition: inline\nContent-ID: <i>\n\nPNG\n--x--\n",
        "multipart/related; boundary=x",
    )
    c = parse_message(only_inline)
    assert c["attachments"] == ["2"]
    assert c["hasAttachment"] is False  # the only attachment is inline


def test_preview_is_capped_and_collapsed():
    raw = crlf("Subject: long\n\n" + "word  \t\n " * 200)
    c = parse_message(raw)
    assert len(c["preview"]) <= 256
    assert "  " not in c["preview"] and "\n" not in c["preview"]


def test_nested_message_text_is_searchable_but_not_body():
    raw = _msg(
        "--x\nContent-Type: text/plain\n\nouter\n--x\nContent-Type: message/rfc822\n\n"
        "Subject: inner subject\nFrom: i@x\n\ninner words\n--x--\n",
        "multipart/mixed; boundary=x",
    )
    c = parse_message(raw)
    assert c["textBody"] == ["1"] and c["attachments"] == ["2"]
    assert "inner words" in c["search_text"] and "inner subject" in c["search_text"]
    assert "inner" not in c["preview"]


def test_alternative_nested_in_chosen_branch_does_not_crash():
    # alternative > mixed > [text/plain, alternative > [text/html]]: the RFC's reference code
    # dereferences a null htmlBody here; the orphaned HTML part becomes an attachment.
    raw = _msg(
        "--a\nContent-Type: multipart/mixed; boundary=m\n\n"
        "--m\nContent-Type: text/plain\n\nplain\n"
        "--m\nContent-Type: multipart/alternative; boundary=n\n\n--n\nContent-Type: text/html\n\n<b>h</b>\n--n--\n"
        "--m--\n--a--\n",
        "multipart/alternative; boundary=a",
    )
    c = parse_message(raw)
    assert c["damaged"] is False
    assert c["textBody"] == ["1.1"]
    assert c["attachments"] == ["1.2.1"]
