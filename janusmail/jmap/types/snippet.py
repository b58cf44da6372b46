"""SearchSnippet/get (RFC 8621 §5): where the search terms of an Email/query filter occur in each email.

The filter is compiled exactly as Email/query compiles it (same errors, the same query AST); the store
(``store.search.snippets``) reads the full-text index's own copy of the texts (decoded subject, body text incl.
HTML converted to text) in one call and highlights the positive text, subject and body terms of that AST.
"""

from __future__ import annotations

from typing import Any

from janusmail.jmap.context import run_store
from janusmail.jmap.engine import Engine, MethodError, invalid_arguments
from janusmail.jmap.engine.args import check_known_arguments, read_id
from janusmail.jmap.engine.filters import compile_filter
from janusmail.jmap.engine.types import is_id
from janusmail.jmap.types.email.filters import to_condition

from .email import MAIL, EmailAdapter

__all__ = ["register"]


async def snippet_get(ctx: Any, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    check_known_arguments(args, {"accountId", "filter", "emailIds"})
    account_id = read_id(args, "accountId", required=True, nullable=False)
    assert account_id is not None
    await ctx.check_account(account_id, write=False)
    email_ids = args.get("emailIds")
    if type(email_ids) is not list or not all(is_id(i) for i in email_ids):
        raise invalid_arguments("'emailIds' must be an array of Ids")
    if len(email_ids) > ctx.limits.max_objects_in_get:
        raise MethodError("requestTooLarge", description=f"at most {ctx.limits.max_objects_in_get} emails")
    from janusmail.jmap.engine import Call

    call = Call(ctx, "SearchSnippet", "SearchSnippet/get", account_id)
    flt = await compile_filter(_ADAPTER, call, args.get("filter"))
    found, not_found = await run_store(ctx, ctx.store.search.snippets, account_id, email_ids, to_condition(flt))
    listing = [{"emailId": sn.email_id, "subject": sn.subject, "preview": sn.preview} for sn in found]
    return [("SearchSnippet/get", {"accountId": account_id, "list": listing, "notFound": not_found or None})]


_ADAPTER = EmailAdapter()


def register(engine: Engine) -> None:
    engine.register("SearchSnippet/get", MAIL, snippet_get)
