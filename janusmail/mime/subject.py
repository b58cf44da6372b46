"""RFC 5256 §2.1 base subject: the key for IMAP SORT SUBJECT, THREAD=ORDEREDSUBJECT and JMAP's
``subject`` sort and threading, so all of them agree on what "the same subject" means.
"""

from __future__ import annotations

import re

from .charsets import decode_words

_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader = (*subj-blob subj-refwd) / WSP ; subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_LEADER = re.compile(r"(?:(?:" + _BLOB + r")*(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:|[ \t])+", re.I)
_BLOB_RE = re.compile(_BLOB)
# subj-trailer = "(fwd)" / WSP
_TRAILER = re.compile(r"(?:\(fwd\)|[ \t])+$", re.I)
_SPACES = re.compile(r"[ \t\r\n]+")


def base_subject(s: str) -> str:
    """Strip reply/forward markers, list blobs and "(fwd)" trailers per RFC 5256 §2.1.

    Case is preserved; the caller compares with its collation (i;unicode-casemap for SORT).
    """
    # (1) decode encoded words, turn tabs/continuations into spaces, squeeze runs of spaces
    s = _SPACES.sub(" ", decode_words(s))
    while True:
        # (2) remove trailers, repeatedly
        s = _TRAILER.sub("", s)
        # (3)-(5) remove leaders, and a leading blob when something remains after it
        while True:
            before = s
            m = _LEADER.match(s)
            if m:
                s = s[m.end() :]
            m = _BLOB_RE.match(s)
            if m and s[m.end() :].strip():
                s = s[m.end() :]
            if s == before:
                break
        # (6) "[fwd: ... ]" wrapper: unwrap and start over at (2)
        if len(s) >= 6 and s[:5].lower() == "[fwd:" and s.endswith("]"):
            s = s[5:-1]
            continue
        return s
