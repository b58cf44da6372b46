"""Parsing a large message costs bounded memory, and the same results as the reference computation.

Bound: the parse keeps no copy of its input (a spool file's map is scanned in place). Its remaining costs do
not grow with the message: transfer-decoded sizes are computed a 1 MiB window at a time (``transfer``);
preview and search text decode at most SEARCH_TEXT_CAP * 4 + 1 KiB octets of a text part (~4 MiB), which a
few str copies of at most two octets per character put under ~32 MiB even for 8-bit charsets and HTML; and
header fields are read from the first 1 MiB of a header block. Measured (tracemalloc peak, 60 MiB input):
base64 attachment 3 MiB (222 MiB before), 7bit text 7.6 MiB (71 MiB before), 600,000 header lines 5 MiB
(300 MiB before).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janusmail.mime.buffer import ByteSource, scannable
from janusmail.mime.charsets import b64decode_loose
from janusmail.mime.content import decode_part, find_part, part_text
from janusmail.mime.parse import PREVIEW_CHARS, SEARCH_TEXT_CAP, parse_message
from janusmail.mime.structure import HEADER_FIELDS_LIMIT, count_lines
from janusmail.mime.transfer import base64_decoded_size, decoded_size, qp_decode, qp_decoded_size
from tests.fuzzing import examples
from tests.mailgen import corpus
from tests.mime.invariants import check_cache
from tests.mime.large_messages import (
    TEXT_LINE,
    WRITERS,
    MiB,
    blocks_for,
    mapped,
    traced_peak,
)
from tests.mime.mime_samples import RFC8621_EXAMPLE, typical_message

#: Allowed peak allocation of one parse beyond its input (see the module docstring for why it holds).
PARSE_BUDGET = 32 * MiB
BIG = 60 * MiB

# -- decoded sizes equal the decoders' on any input ---------------------------------------------------------

_B64_PIECES = st.sampled_from([b"QUJD", b"QQ", b"Q", b"ab+/", b"=", b"==", b"\r\n", b"\n", b" ", b"!", b"\xff", b"\x00"])
_QP_PIECES = st.sampled_from(
    [b"=", b"==", b"=\r\n", b"=\n", b"=\r", b"=41", b"=4", b"=C3=A9", b"abc", b"\r\n", b"\n", b"\r", b" ", b"_", b"F",
     b"\t", b"  ", b"= \r\n", b"=\t\n"]
)


def _joined(pieces: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.lists(pieces, max_size=120).map(b"".join), st.binary(max_size=200))


@settings(max_examples=examples(600), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=_joined(_B64_PIECES), window=st.integers(1, 64), pre=st.binary(max_size=6), post=st.binary(max_size=6))
def test_base64_size_equals_the_decoders(body: bytes, window: int, pre: bytes, post: bytes):
    """Strict, lenient and re-padded decodes alike, across window cuts, within a larger buffer."""
    raw = pre + body + post
    assert base64_decoded_size(raw, len(pre), len(pre) + len(body), window) == len(b64decode_loose(body)[0])


@settings(max_examples=examples(600), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=_joined(_QP_PIECES), window=st.integers(1, 64), pre=st.binary(max_size=6), post=st.binary(max_size=6))
def test_quoted_printable_size_equals_the_decoder(body: bytes, window: int, pre: bytes, post: bytes):
    """Escapes, soft breaks, transport padding and "=" CR skips that span window cuts."""
    raw = pre + body + post
    assert qp_decoded_size(raw, len(pre), len(pre) + len(body), window) == len(qp_decode(body))


def test_sizes_over_a_buffer_that_is_not_bytes():
    body = b"QUJD\r\nRA==\r\n" * 5000
    qp = b"caf=C3=A9 =\r\nline=\r\n" * 5000
    raw = b"xx" + body + qp
    with scannable(memoryview(raw)) as buf:
        assert isinstance(buf, ByteSource)
        assert decoded_size(buf, "base64", 2, 2 + len(body)) == len(b64decode_loose(body)[0])
        assert decoded_size(buf, "quoted-printable", 2 + len(body), len(raw)) == len(qp_decode(qp))
        assert count_lines(buf, 2, len(raw)) == count_lines(raw, 2, len(raw))


def test_long_runs_without_line_breaks_are_cut_safely():
    """Damaged quoted-printable with no line feed at all: windows must still be cut where no escape spans."""
    for body in (b"=" * (3 * MiB + 1), b"=A=4" * MiB, b"a=41=\rb" * 300_000 + b"\nc=42", b"=\r" + b"x" * (2 * MiB),
                 b"a \t" * MiB + b"= \r\n", b" " * (2 * MiB) + b"\r\nx"):
        assert qp_decoded_size(body, 0, len(body)) == len(qp_decode(body))
    body = b"==A==A=AA" * 400_000 + b"AA=A"
    assert base64_decoded_size(body, 0, len(body)) == len(b64decode_loose(body)[0])


# -- the same results whatever the input's type ------------------------------------------------------------


def _samples() -> list[bytes]:
    return [RFC8621_EXAMPLE, typical_message(), *corpus(40)]


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "mmap"])
def test_parse_of_any_buffer_equals_parse_of_bytes(kind: str, tmp_path: Path):
    for i, raw in enumerate(_samples()):
        want = orjson.dumps(parse_message(raw))
        if kind == "bytearray":
            got = parse_message(bytearray(raw))
        elif kind == "memoryview":
            view = memoryview(raw)
            got = parse_message(view)
            assert bytes(view[:4]) == raw[:4]  # the caller's view is still usable
        else:
            path = tmp_path / f"m{i}"
            path.write_bytes(raw)
            with mapped(path) as mm:
                got = parse_message(mm)
        assert orjson.dumps(got) == want


def test_parse_leaves_the_map_closable(tmp_path: Path):
    """The spool closes its map when the command ends: the parse must hold no exported buffer."""
    path = tmp_path / "m"
    path.write_bytes(typical_message())
    with mapped(path) as mm:
        parse_message(mm)
        parse_message(memoryview(mm))
        mm.close()  # BufferError if a view were still exported
        assert mm.closed


# -- 60 MiB messages ------------------------------------------------------------------------------------------


def _check_facts(cache: dict, facts) -> dict:  # noqa: ANN001
    part = find_part(cache, facts.section)
    assert part is not None and "children" not in part
    assert cache["size"] == facts.length
    assert part["size"] == facts.size == part["body_end"] - part["body_start"]
    assert part["jmap"]["size"] == facts.decoded
    assert part["lines"] == facts.lines
    return part


@pytest.mark.parametrize("kind", ["base64", "7bit"])
def test_facts_equal_the_reference_on_a_small_message(kind: str, tmp_path: Path):
    """The generator's arithmetic, the parse and the reference computation (decode the part, count its lines)
    agree on a small message; the 60 MiB tests then rely on the arithmetic."""
    path = tmp_path / "small.eml"
    facts = WRITERS[kind](path, 3)
    raw = path.read_bytes()
    cache = parse_message(raw)
    check_cache(cache, raw)
    part = _check_facts(cache, facts)
    assert len(decode_part(raw, part)) == facts.decoded
    body = raw[part["body_start"] : part["body_end"]]
    if facts.lines is not None:
        assert facts.lines == body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    with mapped(path) as mm:
        assert orjson.dumps(parse_message(mm)) == orjson.dumps(cache)


@pytest.mark.parametrize("kind", ["base64", "7bit"])
def test_60mib_message_parses_in_bounded_memory(kind: str, tmp_path: Path):
    path = tmp_path / "big.eml"
    facts = WRITERS[kind](path, blocks_for(kind, BIG))
    assert facts.length > BIG - MiB
    with mapped(path) as mm, traced_peak() as probe:
        cache = parse_message(mm)
    assert probe["peak"] < PARSE_BUDGET, f"parse allocated {probe['peak'] / MiB:.1f} MiB at peak"
    assert cache["damaged"] is False
    _check_facts(cache, facts)
    if kind == "7bit":
        assert len(cache["search_text"]) == SEARCH_TEXT_CAP
        assert cache["preview"] == " ".join(TEXT_LINE.decode().split() * 4)[:PREVIEW_CHARS].rstrip()
    else:
        assert cache["attachments"] == ["2"] and cache["hasAttachment"] is True
        assert cache["search_text"] == "See the attachment."


def test_huge_header_blocks_parse_in_bounded_memory():
    """16 MiB of header: 170,000 fields, or one field folded 4 million times (each cost over 60 MiB before)."""
    line = b"X-Filler: " + b"a" * 88 + b"\r\n"
    many = b"Subject: many\r\n" + line * (16 * MiB // len(line)) + b"\r\nthe body\r\n"
    folded = b"Subject: folded" + b"\r\n b" * (4 * MiB) + b"\r\n\r\nthe body\r\n"
    for raw in (many, folded):
        with traced_peak() as probe:
            cache = parse_message(raw)
        assert probe["peak"] < PARSE_BUDGET, f"parse allocated {probe['peak'] / MiB:.1f} MiB at peak"
        root = cache["part"]
        # the header still ends where it ends: BODY[HEADER] and BODY[TEXT] are exact
        assert raw[root["body_start"] :] == b"the body\r\n"
        assert part_text(raw, root)[0] == "the body\n"
        kept = sum(len(n) + len(v) for n, v in cache["headers"])
        assert 0 < kept <= HEADER_FIELDS_LIMIT
    assert cache["subject"].startswith("folded b b")


def test_a_map_cannot_be_closed_under_the_parse(tmp_path: Path):
    """A spool closing its map mid-parse (client gone) must get BufferError, not pull the bytes away."""
    path = tmp_path / "m"
    path.write_bytes(typical_message())
    with mapped(path) as mm, scannable(mm) as buf:
        with pytest.raises(BufferError):
            mm.close()
        assert buf.find(b"\r\n\r\n") > 0
