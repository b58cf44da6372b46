"""SEARCH over the shared metadata row cache, for keys that need nothing but message metadata.

Why: ``UNSEEN``, ``DELETED``, ``UID 500:*``, ``KEYWORD $Junk``, ``LARGER n``, ``SINCE d`` and their
combinations are what clients send all day (new-mail checks, expunge candidates). In SQL each of them reads
every ``emails`` row of the mailbox (flags live on the email, ``UNSEEN`` cannot use an index), ~0.4 s for
100k messages on SQLite. The same rows are already in :mod:`janusmail.store.mailbox_rows` (kept exact by MODSEQ),
where a compiled Python predicate answers in a few milliseconds.

The predicate is generated source with the same semantics as :mod:`janusmail.imap.searchsql` (the tests run
both on random key trees and compare); any key that needs message content (FROM, SUBJECT, HEADER, TEXT,
BODY, SENT* dates) makes :func:`compile_predicate` return None and the search goes to SQL. The generated
source only contains fixed snippets and names of constants; client values stay in the constant table.
"""

from __future__ import annotations

import calendar
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from janusmail.imap.codec.searchkeys import (
    AllKey,
    And,
    DateKey,
    EmailIdKey,
    FlagKey,
    ModSeqKey,
    Not,
    Or,
    SearchKey,
    SequenceKey,
    SizeKey,
    ThreadIdKey,
    WithinKey,
)
from janusmail.imap.fetchdata import DELETED, EMAIL_ID, FLAGS, MODSEQ, RECEIVED, SIZE, THREAD_ID, UID
from janusmail.imap.searchsql import SearchContext
from janusmail.store.mailbox_rows import MailboxRows
from janusmail.store.schema import FLAG_ANSWERED, FLAG_DRAFT, FLAG_FLAGGED, FLAG_SEEN

__all__ = ["compile_predicate", "run_cached"]

_BITS = {"\\seen": FLAG_SEEN, "\\answered": FLAG_ANSWERED, "\\flagged": FLAG_FLAGGED, "\\draft": FLAG_DRAFT}
_DAY = 86400


class _Unsupported(Exception):
    pass


def _in_ranges(ranges: list[tuple[int, int]]) -> Callable[[int], bool]:
    starts = [lo for lo, _ in ranges]
    ends = [hi for _, hi in ranges]

    def test(u: int) -> bool:
        i = bisect_right(starts, u) - 1
        return i >= 0 and u <= ends[i]

    return test


class _Compiler:
    def __init__(self, ctx: SearchContext, keywords: dict[str, tuple[str, ...]]) -> None:
        self.ctx = ctx
        self.keywords = keywords
        self.env: dict[str, Any] = {}
        self._lower_kw: dict[str, frozenset[str]] | None = None

    def const(self, value: Any) -> str:
        name = f"c{len(self.env)}"
        self.env[name] = value
        return name

    def _kw_sets(self) -> str:
        if self._lower_kw is None:
            self._lower_kw = {e: frozenset(k.lower() for k in v) for e, v in self.keywords.items()}
            self.env["KW"] = self._lower_kw.get
            self.env["NONE"] = frozenset()
        return "KW"

    def _ranges(self, ranges: list[tuple[int, int]]) -> str:
        if not ranges:
            return "False"
        merged = sorted(ranges)
        if len(merged) == 1:
            lo, hi = merged[0]
            return f"({self.const(lo)} <= r[{UID}] <= {self.const(hi)})"
        return f"{self.const(_in_ranges(merged))}(r[{UID}])"

    def expr(self, key: SearchKey) -> str:
        match key:
            case AllKey():
                return "True"
            case And(keys=keys):
                return "(" + " and ".join(self.expr(k) for k in keys) + ")" if keys else "True"
            case Or(left=left, right=right):
                return f"({self.expr(left)} or {self.expr(right)})"
            case Not(key=inner):
                return f"(not {self.expr(inner)})"
            case FlagKey(flag=flag, present=present):
                low = flag.lower()
                bit = _BITS.get(low)
                if bit is not None:
                    e = f"(r[{FLAGS}] & {bit})"
                elif low == "\\deleted":
                    e = f"r[{DELETED}]"
                elif low == "\\recent":
                    e = self._ranges(self.ctx.recent)
                elif low.startswith("\\"):
                    e = "False"
                else:
                    kw = self._kw_sets()
                    e = f"({self.const(low)} in {kw}(r[{EMAIL_ID}], NONE))"
                return f"bool({e})" if present else f"(not {e})"
            case SizeKey(op=op, size=size):
                return f"(r[{SIZE}] {'>' if op == 'larger' else '<'} {self.const(size)})"
            case SequenceKey(sequence=seq, uid=uid):
                return self._ranges(self.ctx.resolve(seq, uid))
            case ModSeqKey(modseq=modseq):
                return f"(r[{MODSEQ}] >= {self.const(modseq)})"
            case EmailIdKey(email_id=email_id):
                return f"(r[{EMAIL_ID}] == {self.const(email_id)})"
            case ThreadIdKey(thread_id=thread_id):
                return f"(r[{THREAD_ID}] == {self.const(thread_id)})"
            case WithinKey(op=op, seconds=seconds):
                edge = self.const(self.ctx.now - seconds)
                return f"(r[{RECEIVED}] <= {edge})" if op == "older" else f"(r[{RECEIVED}] >= {edge})"
            case DateKey(field="internal", op=op, date=d):
                start = calendar.timegm((d.year, d.month, d.day, 0, 0, 0))
                if op == "before":
                    return f"(r[{RECEIVED}] < {self.const(start)})"
                if op == "since":
                    return f"(r[{RECEIVED}] >= {self.const(start)})"
                return f"({self.const(start)} <= r[{RECEIVED}] < {self.const(start + _DAY)})"
        raise _Unsupported(type(key).__name__)


def compile_predicate(ctx: SearchContext, key: SearchKey,
                      keywords: dict[str, tuple[str, ...]]) -> Callable[[list[tuple]], list[tuple[int, int]]] | None:
    """A function rows -> [(uid, modseq)] of the matches, or None if the key needs message content."""
    comp = _Compiler(ctx, keywords)
    try:
        cond = comp.expr(key)
    except _Unsupported:
        return None
    src = (
        "def run(rows):\n"
        f"    return [(r[{UID}], r[{MODSEQ}]) for r in rows if {cond}]\n"
    )
    env = dict(comp.env)
    exec(src, env)  # noqa: S102 - fixed snippets only; client values are in env
    return env["run"]


def run_cached(box: MailboxRows, ctx: SearchContext, key: SearchKey,
               below_uid: int | None = None) -> list[tuple[int, int]] | None:
    """The search over a cached mailbox, or None when the key needs SQL."""
    fn = compile_predicate(ctx, key, box.keywords)
    if fn is None:
        return None
    rows = box.rows
    if below_uid is not None and rows and rows[-1][UID] >= below_uid:
        rows = box.select([(1, below_uid - 1)])
    return fn(rows)
