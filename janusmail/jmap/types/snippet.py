"""SearchSnippet/get (RFC 8621 §5): where the search terms of an Email/query filter occur in each email.

The filter is compiled exactly as Email/query compiles it (same errors); only its positive text, subject and
body terms are highlighted. The texts come from the full-text index's own copy (decoded subject, body text
incl. HTML converted to text), read in one query for all the requested emails.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from janusmail.jmap.context import run_store
from janusmail.jmap.email_filter import text_terms
from janusmail.jmap.email_get import visible_ids
from janusmail.jmap.email_snippet import highlight, snippet
from janusmail.jmap.email_sql import _FTS, _fts_string
from janusmail.jmap.engine import Engine, MethodError, invalid_arguments
from janusmail.jmap.engine.args import check_known_arguments, read_id
from janusmail.jmap.engine.filters import compile_filter
from janusmail.jmap.engine.types import is_id
from janusmail.store.schema import email_search

from .email import MAIL, EmailAdapter

__all__ = ["register", "search_snippets"]

_CHUNK = 500


def _texts(store: Any, account_id: str, ids: list[str], terms: list[str]) -> dict[str, tuple[str, str]]:
    """email id -> (subject, body text) for the emails among ``ids`` whose index text has any term."""
    out: dict[str, tuple[str, str]] = {}
    with store.engine.connect() as conn:
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            if store.sqlite:
                # MATCH drives the lookup (email_id is not indexed in the FTS table).
                query = " OR ".join(_fts_string(t) for t in terms)
                q = sa.select(_FTS.c.email_id, _FTS.c.subject, _FTS.c.body).where(
                    sa.literal_column("email_fts").op("MATCH")(query), _FTS.c.email_id.in_(chunk)
                )
            else:
                s = email_search
                q = sa.select(s.c.email_id, s.c.subject, s.c.body).where(
                    s.c.email_id.in_(chunk), s.c.account_id == account_id
                )
            for email_id, subject, body in conn.execute(q):
                out[email_id] = (subject or "", body or "")
    return out


def search_snippets(
    store: Any, account_id: str, ids: list[str], subject_terms: list[str], body_terms: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    with store.engine.connect() as conn:
        found = visible_ids(conn, account_id, ids)
    present = [i for i in ids if i in found]
    all_terms = list(dict.fromkeys(subject_terms + body_terms))
    texts = _texts(store, account_id, present, all_terms) if (all_terms and present) else {}
    out = []
    for email_id in present:
        subject, body = texts.get(email_id, ("", ""))
        out.append(
            {
                "emailId": email_id,
                "subject": highlight(subject, subject_terms) if subject_terms else None,
                "preview": snippet(body, body_terms) if body_terms else None,
            }
        )
    return out, [i for i in ids if i not in found]


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
    terms = text_terms(flt)
    subject_terms = list(dict.fromkeys(terms["text"] + terms["subject"]))
    body_terms = list(dict.fromkeys(terms["text"] + terms["body"]))
    ids = list(dict.fromkeys(email_ids))
    listing, not_found = await run_store(
        ctx, search_snippets, ctx.store, account_id, ids, subject_terms, body_terms
    )
    return [("SearchSnippet/get", {"accountId": account_id, "list": listing, "notFound": not_found or None})]


_ADAPTER = EmailAdapter()


def register(engine: Engine) -> None:
    engine.register("SearchSnippet/get", MAIL, snippet_get)
