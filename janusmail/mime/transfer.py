"""Decoded sizes of base64 and quoted-printable bodies, computed a window at a time.

Why: a JMAP EmailBodyPart's ``size`` must equal the length of the blob ``content.decode_body`` returns
(damaged encodings included), and it is fixed at ingest. Decoding a 60 MiB attachment just to learn its
length cost several times its size in transient memory, on a path (LMTP, APPEND, upload) that anyone may
drive. Here the length is derived from the encoded bytes, one ``CHUNK`` window at a time, with results equal
to the decoders' (``tests/mime/test_mime_large.py`` checks that against the decoders on arbitrary input).

base64 (``charsets.b64decode_loose``): whatever path it takes (strict, lenient, re-padded), it yields the
bytes of the first ``m`` alphabet characters, where ``m`` counts every alphabet character up to the pad
that makes ``binascii`` stop reading (a pad that completes a quantum: the first ``=`` after three characters
of a quantum, or the second after two), or all of them when no pad does; a trailing partial quantum of
``k`` characters gives ``k - 1`` octets. Other characters are skipped wherever they appear.

quoted-printable (:func:`qp_decode`, the one QP body decoder): decoding is local except for its escapes and
the transport padding stripped before a line end, so the body is decoded in windows cut where neither can
straddle the cut (after a line feed, or where no ``=`` sequence is open and no white space or CR run ends);
the only long-range effect, ``=`` CR skipping up to the next line feed, is carried across windows.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

from .buffer import CHUNK

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
#: Alphabet characters become "a", pads stay "=", anything else is deleted: what is left drives the decoder.
_CANON = bytes.maketrans(_B64_ALPHABET, b"a" * 64)
_SKIPPED = bytes(sorted(set(range(256)) - set(_B64_ALPHABET) - {0x3D}))
#: The longest prefix of a canonical string in which no pad stops the decoder: whole quanta (pads allowed
#: freely at positions 0 and 1, at most one at position 2, none at 3), then a partial quantum.
_NO_STOP = re.compile(rb"(?:=*+a=*+a=?aa)*+=*+(?:a=*+(?:a=?a?)?)?")

_HEX = frozenset(b"0123456789ABCDEFabcdef")
_EQ = 0x3D
#: How far back from a window's end a line-feed-less window is searched for a safe cut.
_QP_CUT_SEARCH = 4096


#: Transport padding: spaces and tabs at the end of an encoded line (or of the body). RFC 2045 §6.7 rule 3 says
#: a decoder must delete them, which also turns ``=`` + padding + line end into a soft line break.
_QP_PADDING = re.compile(rb"[ \t]+(?=\r?\n|\Z)")
_QP_SPACE = frozenset(b" \t\r")


def qp_decode(data: bytes) -> bytes:
    """Quoted-printable body decode (RFC 2045 §6.7): the stdlib decoder after stripping transport padding.

    Why not ``binascii.a2b_qp`` alone: it keeps white space before a line break (so ``foo \\r\\n`` decodes
    with the space) and does not treat ``= \\r\\n`` as a soft line break, both of which the RFC requires
    (IMAP BINARY sizes then disagree with other servers'). ``quopri``'s pure decoder strips padding but
    rewrites CRLF as LF and is slow. Everything else (escapes, bare ``=``, lowercase hex, junk) is left to
    ``binascii``, whose lenient choices the rest of the code already relies on."""
    if b" " in data or b"\t" in data:
        data = _QP_PADDING.sub(b"", data)
    return binascii.a2b_qp(data)


def _b64_octets(n: int) -> int:
    return n // 4 * 3 + max(0, n % 4 - 1)


def base64_decoded_size(raw: Any, start: int, end: int, chunk: int = CHUNK) -> int:
    """``len(b64decode_loose(raw[start:end])[0])`` without decoding (``raw``: bytes or a ByteSource)."""
    n = 0  # alphabet characters read so far
    pad = False  # one pad seen at quantum position 2 since the last alphabet character
    for i in range(start, end, chunk):
        canon = raw[i : min(i + chunk, end)].translate(_CANON, _SKIPPED)
        k = canon.find(b"=")
        if k < 0:
            if canon:
                n += len(canon)
                pad = False
            continue
        if k:
            n += k
            pad = False
        q = n % 4
        head = b"aa=" if (q == 2 and pad) else b"a" * q  # replays the state the window starts in
        tail = head + canon[k:]
        e = _NO_STOP.match(tail).end()  # type: ignore[union-attr]  # matches the empty string at least
        n += tail.count(b"a", 0, e) - q
        if e < len(tail):  # binascii stops at this pad and ignores the rest
            return _b64_octets(n)
        pad = n % 4 == 2 and tail.endswith(b"=")
    return _b64_octets(n)


def _qp_cut(window: bytes, after: int) -> int:
    """A cut in a window without line feeds after which decoding restarts cleanly (0: none found).

    Position c is clean when the byte before it is not ``=`` and no ``=XY`` escape can span it (either no
    ``=`` two bytes back, or the byte at c is not a hex digit); ``after`` is the byte following the window.
    A long run of ``=`` is cut after an even number of them (``==`` decodes as a pair)."""
    n = len(window)
    for c in range(n, max(n - _QP_CUT_SEARCH, 0), -1):
        if window[c - 1] == _EQ or window[c - 1] in _QP_SPACE:  # padding is only known at the line end
            continue
        if c >= 2 and window[c - 2] == _EQ and (window[c] if c < n else after) in _HEX:
            continue
        return c
    run_start = len(window.rstrip(b"="))
    if n - run_start >= 2:
        return run_start + (n - run_start) // 2 * 2
    return 0


def qp_decoded_size(raw: Any, start: int, end: int, chunk: int = CHUNK) -> int:
    """``len(qp_decode(raw[start:end]))``, decoding one window at a time."""
    total = 0
    pos = start
    size = chunk
    while pos < end:
        stop = min(pos + size, end)
        window = raw[pos:stop]
        if stop == end:
            return total + len(qp_decode(window))
        nl = window.rfind(b"\n")
        cut = nl + 1 if nl >= 0 else _qp_cut(window, raw[stop])
        if cut == 0:  # only with tiny windows: look further
            size *= 2
            continue
        size = chunk
        piece = window[:cut]
        got = len(qp_decode(piece))
        total += got
        pos += cut
        # "=" CR makes binascii skip to the next line feed, which may lie windows ahead: a sentinel line
        # tells whether the piece ended inside such a skip.
        if nl < 0 and b"=\r" in piece and len(qp_decode(piece + b"\nX")) == got + 1:
            nxt = raw.find(b"\n", pos, end)
            if nxt < 0:
                return total
            pos = nxt + 1
    return total


def decoded_size(raw: Any, encoding: str, start: int = 0, end: int | None = None) -> int:
    """Octets the body at [start, end) of `raw` transfer-decodes to (see the module docstring)."""
    stop = len(raw) if end is None else end
    if encoding == "base64":
        return base64_decoded_size(raw, start, stop)
    if encoding == "quoted-printable":
        return qp_decoded_size(raw, start, stop)
    return max(stop - start, 0)
