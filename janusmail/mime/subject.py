"""RFC 5256 §2.1 base subject: the key for IMAP SORT SUBJECT, THREAD=ORDEREDSUBJECT and JMAP's
``subject`` sort and threading, so all of them agree on what "the same subject" means.
"""

from __future__ import annotations

import re

_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader = (*subj-blob subj-refwd) / WSP ; subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_LEADER = re.compile(r"(?:(?:" + _BLOB + r")*(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:|[ \t])+", re.I)
_BLOB_RUN = re.compile("(?:" + _BLOB + ")+")
# subj-trailer = "(fwd)" / WSP
_TRAILER = re.compile(r"(?:\(fwd\)|[ \t])+$", re.I)
_SPACES = re.compile(r"[ \t\r\n]+")

#: Longer subjects are cut before stripping (a sort key needs no more, and it bounds the work).
MAX_SUBJECT = 2048


def base_subject(s: str) -> str:
    """Strip reply/forward markers, list blobs and "(fwd)" trailers per RFC 5256 §2.1.

    `s` is the already decoded subject (headers.as_text, i.e. the cache's ``subject``): step (1)'s
    RFC 2047 decoding is done there, once. Case is preserved; the caller compares with its
    collation (i;unicode-casemap for SORT).
    """
    return subject_parts(s)[0]


def subject_parts(s: str) -> tuple[str, bool]:
    """``(base subject, is a reply or forward)``: the second is what THREAD=REFERENCES step 5 asks
    (RFC 5256 §2.1: extraction removed a subj-refwd, a "(fwd)" trailer or a "[fwd: ...]" wrapper)."""
    reply = False
    # (1) turn tabs/continuations into spaces, squeeze runs of spaces
    s = _SPACES.sub(" ", s[: MAX_SUBJECT * 4])[:MAX_SUBJECT]
    while True:
        # (2) remove trailers, repeatedly
        m = _TRAILER.search(s)
        if m:
            reply = reply or "(" in m.group()
            s = s[: m.start()]
        # (3)-(5) remove leaders; remove leading blobs while something remains after them.
        # A whole run of blobs not followed by Re:/Fwd: goes at once (one at a time, as the
        # RFC words it, gives the same result but rescans the run every time).
        while True:
            m = _LEADER.match(s)
            if m:
                reply = reply or ":" in m.group()  # a leader that is not just white space is a subj-refwd
                s = s[m.end() :]
                continue
            m = _BLOB_RUN.match(s)
            if m:
                if s[m.end() :].strip():
                    s = s[m.end() :]
                    continue
                last = s.rfind("[", 0, m.end())
                if last > 0:  # only blobs left: keep the last one as the base subject
                    s = s[last:]
            break
        # (6) "[fwd: ... ]" wrapper: unwrap and start over at (2)
        if len(s) >= 6 and s[:5].lower() == "[fwd:" and s.endswith("]"):
            s = s[5:-1]
            reply = True
            continue
        return s, reply
