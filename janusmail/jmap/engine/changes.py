"""``Foo/changes`` over an append-only change log keyed by integer modseq (RFC 8620 §5.2).

State strings: a plain decimal ``"42"`` means "every change up to and including modseq 42"; it is the
string /get and /set report. When ``maxChanges`` cuts a page in the middle of one transaction's rows
(a 5,000-message flag change is one modseq), the intermediate state is ``"43:100"``: every change before
modseq 43 plus the first 100 log rows of modseq 43. That keeps the MUST ("never more than maxChanges ids")
without forcing a full resync, and needs nothing from the store but a stable row order.

Folding a window (several rows per id): created then destroyed -> reported nowhere (SHOULD, §5.2);
created then updated -> created; updated then destroyed -> destroyed. Ids are never reused, so an id
cannot be reported created after it was reported updated or destroyed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .adapter import Call, ChangeEntry, TypeAdapter
from .errors import MethodError

__all__ = ["ChangesPage", "compute_changes", "parse_state"]

_STATE = re.compile(r"(0|[1-9][0-9]{0,17})(?::([1-9][0-9]{0,17}))?")
_MAX_FETCHES = 10_000


def parse_state(state: str) -> tuple[int, int]:
    """Return the cursor ``(group, skip)``: resume with log rows of modseq >= group, skipping ``skip`` rows
    of that modseq. Unparseable states are unknown states, hence cannotCalculateChanges."""
    m = _STATE.fullmatch(state)
    if m is None:
        raise MethodError("cannotCalculateChanges", description="unknown state")
    if m[2] is None:
        return int(m[1]) + 1, 0
    return int(m[1]), int(m[2])


@dataclass(slots=True)
class _Fold:
    created_here: bool = False
    destroyed: bool = False
    ops: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ChangesPage:
    new_state: str
    has_more: bool
    created: list[str]
    updated: list[str]
    destroyed: list[str]
    ops: dict[str, set[str]]


async def compute_changes(
    adapter: TypeAdapter, call: Call, since_state: str, max_changes: int
) -> ChangesPage:
    """Fetch and fold log rows after ``since_state`` until ``max_changes`` distinct ids or the log's end."""
    group, skip = parse_state(since_state)
    since_modseq = group - 1
    batch = max(max_changes + 1, 64)
    folded: dict[str, _Fold] = {}
    bound: int | None = None
    next_entry: ChangeEntry | None = None
    for _ in range(_MAX_FETCHES):
        log = await adapter.change_log(call, group - 1, skip, batch)
        if bound is None:
            bound = log.current_modseq
            if since_modseq > bound:
                raise MethodError("cannotCalculateChanges", description="state is newer than the server's")
        reached_end = len(log.entries) < batch
        for entry in log.entries:
            if entry.modseq > bound:
                reached_end = True
                break
            if entry.modseq < group:
                raise RuntimeError(f"change_log returned modseq {entry.modseq} before cursor {group}")
            if entry.id not in folded and len(folded) >= max_changes:
                next_entry = entry
                break
            fold = folded.setdefault(entry.id, _Fold())
            fold.ops.add(entry.op)
            if entry.op == "created":
                fold.created_here = True
            elif entry.op == "destroyed":
                fold.destroyed = True
            if entry.modseq == group:
                skip += 1
            else:
                group, skip = entry.modseq, 1
        if next_entry is not None or reached_end:
            break
    else:  # pragma: no cover - an adapter ignoring ``skip`` would spin here
        raise RuntimeError("change_log made no progress")

    assert bound is not None
    if next_entry is None:
        new_state, has_more = str(max(bound, since_modseq)), False
    elif next_entry.modseq != group:
        # The page ends on a transaction boundary: the plain state of the last transaction consumed.
        new_state, has_more = str(group if skip else group - 1), True
    else:
        new_state, has_more = f"{group}:{skip}", True

    created: list[str] = []
    updated: list[str] = []
    destroyed: list[str] = []
    ops: dict[str, set[str]] = {}
    for id_, fold in folded.items():
        if fold.destroyed:
            if fold.created_here:
                continue
            destroyed.append(id_)
        elif fold.created_here:
            created.append(id_)
        else:
            updated.append(id_)
        ops[id_] = fold.ops
    return ChangesPage(new_state, has_more, created, updated, destroyed, ops)
