"""JMAP Thread (RFC 8621 §3): Thread/get and Thread/changes over the store's threads.

Thread/get is usually called with every thread id of an Email/query page, so all the requested threads are
read in one store call (``store.visible_emails.thread_members``: one query per 500 ids, already ordered by
receivedAt, then id: a stable total order, as the RFC asks). An email whose memberships are all
``\\Deleted`` does not exist for JMAP, so it is left out; a thread with no visible email is notFound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from janusmail.jmap.context import run_store
from janusmail.jmap.engine import Call, ChangeEntry, ChangeLog, Engine, TypeAdapter, register_standard

__all__ = ["MAIL", "ThreadAdapter", "register"]

MAIL = "urn:ietf:params:jmap:mail"
_OPS = {"c": "created", "u": "updated", "d": "destroyed"}


def _change_log(store: Any, account_id: str, after: int, skip: int, limit: int) -> ChangeLog:
    current = store.changes.kind_state(account_id, "Thread")
    rows = store.changes.since(account_id, "Thread", after, skip + limit)[skip:]
    return ChangeLog([ChangeEntry(r.modseq, r.object_id, _OPS.get(r.op, "updated")) for r in rows], current)


class ThreadAdapter(TypeAdapter):
    properties = frozenset({"id", "emailIds"})
    server_set_properties = frozenset({"id", "emailIds"})
    #: Listing every thread of a mailbox-sized account is never what a client wants (RFC 8621 §3.1 allows
    #: refusing); ids null is answered requestTooLarge.
    can_get_all = False

    async def state(self, call: Call) -> int:
        return await run_store(call.ctx, call.ctx.store.changes.kind_state, call.account_id, "Thread")

    async def get(
        self, call: Call, ids: Sequence[str] | None, properties: frozenset[str], limit: int
    ) -> list[dict[str, Any]]:
        if not ids:
            return []
        store = call.ctx.store
        found = await run_store(call.ctx, store.visible_emails.thread_members, call.account_id, list(ids))
        return [{"id": tid, "emailIds": email_ids} for tid, email_ids in found.items()]

    async def change_log(self, call: Call, after_modseq: int, skip: int, limit: int) -> ChangeLog:
        return await run_store(call.ctx, _change_log, call.ctx.store, call.account_id, after_modseq, skip, limit)


def register(engine: Engine) -> None:
    register_standard(engine, "Thread", MAIL, ThreadAdapter(), ("get", "changes"))
