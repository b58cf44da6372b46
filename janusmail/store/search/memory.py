"""Metadata-only searches evaluated over the row cache (:mod:`janusmail.store.mailbox_rows`).

Why: ``UNSEEN``, ``DELETED``, ``UID 500:*``, ``KEYWORD $Junk``, ``LARGER n``, ``SINCE d`` and their
combinations are what clients send all day (new-mail checks, expunge candidates). In SQL each of them reads
every ``emails`` row of the mailbox (flags live on the email, ``UNSEEN`` cannot use an index), ~0.4 s for
100k messages on SQLite. The same rows are already in the row cache (kept exact by MODSEQ), where a compiled
Python predicate answers in a few milliseconds.

The predicate is generated source with the semantics of :mod:`.compile` for the same AST (the tests run both on
random trees and compare); :func:`.compile.metadata_only` says which trees qualify, and anything else makes
:func:`compile_predicate` return None. The generated source only contains fixed snippets and names of
constants; client values stay in the constant table.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from janusmail.store.keywords import SYSTEM_BITS
from janusmail.store.mailbox_rows import (
    DELETED,
    EMAIL_ID,
    FLAGS,
    MODSEQ,
    RECEIVED,
    SIZE,
    THREAD_ID,
    UID,
    MailboxRows,
)
from janusmail.store.uidranges import merge_ranges

from . import ast as q

__all__ = ["compile_predicate", "run_rows"]

_OPS = {"lt": "<", "le": "<=", "ge": ">=", "gt": ">"}


class _Unsupported(Exception):
    pass


def _in_ranges(ranges: list[tuple[int, int]]) -> Callable[[int], bool]:
    starts = [lo for lo, _ in ranges]
    ends = [hi for _, hi in ranges]

    def test(u: int) -> bool:
        i = bisect_right(starts, u) - 1
        return i >= 0 and u <= ends[i]

    return test


def _merge(ranges: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    return merge_ranges(ranges)


class _Compiler:
    def __init__(self, keywords: dict[str, tuple[str, ...]]) -> None:
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

    def _ranges(self, ranges: tuple[tuple[int, int], ...]) -> str:
        merged = _merge(ranges)
        if not merged:
            return "False"
        if len(merged) == 1:
            lo, hi = merged[0]
            return f"({self.const(lo)} <= r[{UID}] <= {self.const(hi)})"
        return f"{self.const(_in_ranges(merged))}(r[{UID}])"

    def expr(self, node: q.Condition) -> str:  # noqa: PLR0911 - one case per node
        match node:
            case q.All():
                return "True"
            case q.Nothing():
                return "False"
            case q.And(items=items):
                return "(" + " and ".join(self.expr(i) for i in items) + ")" if items else "True"
            case q.Or(items=items):
                return "(" + " or ".join(self.expr(i) for i in items) + ")" if items else "False"
            case q.Not(item=item):
                return f"(not {self.expr(item)})"
            case q.Keyword(keyword=kw):
                bit = SYSTEM_BITS.get(kw)
                if bit is not None:
                    return f"bool(r[{FLAGS}] & {bit})"
                return f"({self.const(kw)} in {self._kw_sets()}(r[{EMAIL_ID}], NONE))"
            case q.Deleted():
                return f"bool(r[{DELETED}])"
            case q.UidIn(ranges=ranges):
                return self._ranges(ranges)
            case q.ModSeqAtLeast(modseq=modseq):
                return f"(r[{MODSEQ}] >= {self.const(modseq)})"
            case q.EmailIs(email_id=email_id):
                return f"(r[{EMAIL_ID}] == {self.const(email_id)})"
            case q.ThreadIs(thread_id=thread_id):
                return f"(r[{THREAD_ID}] == {self.const(thread_id)})"
            case q.Size(op=op, size=size):
                return f"(r[{SIZE}] {_OPS[op]} {self.const(size)})"
            case q.Date(field="received", op=op, epoch=epoch):
                return f"(r[{RECEIVED}] {_OPS[op]} {self.const(epoch)})"
        raise _Unsupported(type(node).__name__)


def compile_predicate(cond: q.Condition, keywords: dict[str, tuple[str, ...]]
                      ) -> Callable[[list[tuple]], list[tuple[int, int]]] | None:
    """A function rows -> [(uid, modseq)] of the matches, or None if the condition needs message content."""
    comp = _Compiler(keywords)
    try:
        cond_src = comp.expr(cond)
    except _Unsupported:
        return None
    src = (
        "def run(rows):\n"
        f"    return [(r[{UID}], r[{MODSEQ}]) for r in rows if {cond_src}]\n"
    )
    env = dict(comp.env)
    exec(src, env)  # noqa: S102 - fixed snippets only; client values are in env
    return env["run"]


def run_rows(box: MailboxRows, cond: q.Condition, below_uid: int | None = None) -> list[tuple[int, int]] | None:
    """The search over a cached mailbox, or None when the condition needs SQL."""
    fn = compile_predicate(cond, box.keywords)
    if fn is None:
        return None
    rows = box.rows
    if below_uid is not None and rows and rows[-1][UID] >= below_uid:
        rows = box.select([(1, below_uid - 1)])
    return fn(rows)
