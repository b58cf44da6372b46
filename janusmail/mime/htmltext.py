"""HTML to plain text for previews, search indexing and snippets.

Regex-based on purpose: it runs at ingest for every HTML part, and what we need is the words a
person sees, not a DOM. Every pattern is linear on hostile input (no unbounded backtracking over
unclosed tags).
"""

from __future__ import annotations

import html
import re

_DROP = re.compile(
    r"<!--.*?(?:-->|\Z)|<(script|style|head|title)\b[^<>]*>.*?(?:</\1\s*>|\Z)",
    re.S | re.I,
)
_BREAK = re.compile(
    r"<(?:br|/?p|/?div|/?tr|/?li|/?h[1-6]|/?table|/?blockquote|/?pre|hr|/?ul|/?ol)\b[^<>]*>", re.I
)
_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")


def html_to_text(s: str) -> str:
    """Visible text of an HTML document: tags and scripts removed, entities decoded, blocks on
    their own lines, runs of blanks squeezed."""
    if "<" in s:
        s = _DROP.sub(" ", s)
        s = _BREAK.sub("\n", s)
        s = _TAG.sub("", s)
    if "&" in s:
        s = html.unescape(s)
    # str.split() is several times faster than a regex sub with many matches
    lines = (" ".join(line.split()) for line in s.split("\n"))
    return "\n".join(line for line in lines if line)
