"""SearchSnippet highlighting (RFC 8621 §5): search terms wrapped in <mark></mark>, HTML-escaped.

Owned by the store beside the full-text index whose rules it mirrors; the terms come from the same query AST
(:func:`highlight_terms`) that Email/query compiles.

Why our own matcher rather than the index's snippet function: both backends must give the same answer, the
output must be escaped around the marks, and the preview must fit 255 octets including the markup. Matching
follows the index's rules closely enough: word tokens, case-insensitive, diacritics ignored (SQLite FTS5's
``remove_diacritics``), a quoted phrase matches consecutive words.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable

from . import ast as q

__all__ = ["PREVIEW_OCTETS", "find_matches", "highlight", "highlight_terms", "snippet"]

PREVIEW_OCTETS = 255
_TOKEN = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")
_OPEN, _CLOSE = "<mark>", "</mark>"


def _fold_char(ch: str) -> str:
    decomposed = unicodedata.normalize("NFKD", ch.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _fold(text: str) -> tuple[str, list[int] | None]:
    """Case- and diacritic-folded text, plus (unless it is ASCII, where offsets do not move) the index in
    ``text`` of each folded character."""
    if text.isascii():
        return text.lower(), None
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        f = _fold_char(ch) if not ch.isascii() else ch.lower()
        out.append(f)
        where.extend([i] * len(f))
    return "".join(out), where


def _pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for all terms: each term's words in order, separated by non-word characters, on word
    boundaries (the words of a phrase are consecutive tokens)."""
    alts = []
    for term in terms:
        folded, _ = _fold(term)
        toks = _TOKEN.findall(folded)
        if toks:
            alts.append(r"\W+".join(re.escape(t) for t in toks))
    if not alts:
        return None
    alts.sort(key=len, reverse=True)  # longest first: a phrase wins over its own first word
    return re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)")


def find_matches(text: str, terms: Iterable[str]) -> list[tuple[int, int]]:
    """Character spans of every occurrence of any term (phrases: consecutive words), merged, in order."""
    pattern = _pattern(terms)
    if pattern is None or not text:
        return []
    folded, where = _fold(text)
    spans: list[tuple[int, int]] = []
    for m in pattern.finditer(folded):
        s, e = m.span()
        if where is not None:
            s, e = where[s], where[e - 1] + 1
        if spans and s <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], e))
        else:
            spans.append((s, e))
    return spans


def _render(text: str, spans: list[tuple[int, int]], budget: int | None = None) -> str:
    """Escape ``text`` with marks around ``spans``; with ``budget``, stop before exceeding that many octets
    (never inside a mark or an escape)."""
    out: list[str] = []
    used = 0
    pos = 0

    def take(chunk: str, whole: bool) -> bool:
        nonlocal used
        if budget is None:
            out.append(chunk)
            return True
        size = len(chunk.encode("utf-8"))
        if used + size <= budget:
            out.append(chunk)
            used += size
            return True
        if not whole:  # plain text: as many characters as fit
            for ch in chunk_chars(chunk):
                n = len(ch.encode("utf-8"))
                if used + n > budget:
                    break
                out.append(ch)
                used += n
        return False

    for s, e in spans:
        if not take(html.escape(text[pos:s], quote=False), whole=False):
            return "".join(out)
        if not take(_OPEN + html.escape(text[s:e], quote=False) + _CLOSE, whole=True):
            return "".join(out)
        pos = e
    take(html.escape(text[pos:], quote=False), whole=False)
    return "".join(out)


def chunk_chars(escaped: str) -> list[str]:
    """Split escaped text into units that must not be cut: characters and ``&amp;``-style entities."""
    return re.findall(r"&[a-z]+;|.", escaped, re.S)


def highlight(text: str | None, terms: Iterable[str]) -> str | None:
    """The whole text escaped with every match marked, or None when nothing matches."""
    if not text:
        return None
    spans = find_matches(text, terms)
    return _render(text, spans) if spans else None


def snippet(text: str | None, terms: Iterable[str], octets: int = PREVIEW_OCTETS, lead: int = 40) -> str | None:
    """A window of the (whitespace-collapsed) text around the first match, at most ``octets`` octets of
    escaped, marked-up UTF-8; None when nothing matches."""
    if not text:
        return None
    terms = list(terms)
    flat = _SPACE.sub(" ", text[: 2_000_000]).strip()
    spans = find_matches(flat, terms)
    if not spans:
        return None
    first = spans[0][0]
    start = 0
    if first > lead:
        cut = flat.rfind(" ", 0, first - lead)
        start = cut + 1 if cut >= 0 else first - lead
    window = flat[start : start + octets * 2]
    local = [(s - start, min(e, start + len(window)) - start) for s, e in spans if s >= start and s < start + len(window)]
    out = _render(window, local, budget=octets).rstrip()
    return out or None


def highlight_terms(cond: q.Condition) -> tuple[list[str], list[str]]:
    """The (subject, body) terms to highlight for a query: the phrases of its positive full-text conditions.
    Terms under NOT describe what must be absent, so they are never highlighted."""
    subject: list[str] = []
    body: list[str] = []

    def visit(node: q.Condition, negated: bool) -> None:
        if isinstance(node, q.Not):
            visit(node.item, not negated)
        elif isinstance(node, q.And | q.Or):
            for item in node.items:
                visit(item, negated)
        elif isinstance(node, q.Text) and not negated:
            if node.scope in ("all", "subject"):
                subject.extend(node.phrases)
            if node.scope in ("all", "body"):
                body.extend(node.phrases)

    visit(cond, False)
    return list(dict.fromkeys(subject)), list(dict.fromkeys(body))
