"""Writing and deleting the full-text rows of emails: the word index JMAP searches and the substring
(trigram) index IMAP SEARCH TEXT/BODY and HEADER use.

Why two indexes: RFC 8621 text filters match whole words (and SQLite's word index also ignores accents and
feeds SearchSnippet), while RFC 9051 SEARCH matches any substring ("sdfghjk" in "asdfghjkl"), which no word
index can answer. A trigram index answers substrings of 3 or more characters directly; serving JMAP from it
would need a word-boundary check on every candidate (SQLite has no REGEXP), so each door keeps the index
that fits its semantics.

=========  ==============================================================================================
SQLite     ``email_fts`` (FTS5, unicode61): subject, addresses, body, for JMAP. ``email_trgm`` (FTS5
           ``trigram``): the header fields and body text for IMAP, its rowid given by ``email_text`` (``id``
           for a unique ``email_id`` that cascades from ``emails``; its trigger lists both index rows in
           ``search_trash`` when it goes, an account deletion's cascade included). The unique ``email_id`` lets
           a short search string read only the rows of one mailbox. Rows go in with explicit rowids through
           ``VALUES``: FTS5 indexes them three times faster than through ``INSERT ... SELECT`` (which external
           content and insert triggers use). New mail is queued and indexed in batches, destroyed mail
           unindexed in batches (:mod:`.queue`).
PostgreSQL ``email_search``: subject, addresses, body (GIN ``to_tsvector`` for JMAP) and headers; GIN
           ``pg_trgm`` on (headers, body) for IMAP's ILIKE.
=========  ==============================================================================================

The header text is every header field of the message as ``name: value`` lines, the value as received (so
IMAP HEADER, which compares the received value, can use the index to narrow its scan), plus the decoded value
(RFC 2047) when the field has encoded words, so TEXT finds what the user sees. Except :data:`UNINDEXED_FIELDS`:
trace and signature fields (``Received``, ``DKIM-Signature``, ARC) are machine data, often kilobytes per
message, and trigrams cost ingest time per character; TEXT does not see them, HEADER still does (by a scan).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from janusmail.mime.headers import as_text

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.sqltext import SqlText

__all__ = ["EMAIL_SEARCH", "EMAIL_TEXT", "UNINDEXED_FIELDS", "header_text", "index_rows", "write_text"]

#: header fields left out of the substring index (lower case); see the module docstring
UNINDEXED_FIELDS = frozenset({
    "received", "x-received", "dkim-signature", "x-google-dkim-signature", "arc-seal", "arc-message-signature",
    "arc-authentication-results", "authentication-results",
})

#: SQLite only: the rowid of each email's row in the trigram index ``email_trgm`` (``id``) and in the word
#: index ``email_fts`` (``fts_rowid``, migration 0011: the same number for rows written since)
EMAIL_TEXT = sa.table("email_text", sa.column("id"), sa.column("email_id"), sa.column("fts_rowid"))
#: SQLite only: the trigram index, with its own copy of the text
EMAIL_TRGM = sa.table("email_trgm", sa.column("rowid"), sa.column("headers"), sa.column("body"))
#: PostgreSQL: the text both indexes cover, one row per email
EMAIL_SEARCH = sa.table("email_search", sa.column("email_id"), sa.column("account_id"), sa.column("subject"),
                        sa.column("addresses"), sa.column("headers"), sa.column("body"))

_FTS_INSERT = sa.text("INSERT INTO email_fts(rowid, email_id, account_id, subject, addresses, body) "
                      "VALUES (:rowid, :email_id, :account_id, :subject, :addresses, :body)")
#: the highest rowid of email_text, of email_fts (FTS5 reads it from the end of its rowid order: no scan) and of
#: the destroyed mail's rows still waiting in search_trash (their numbers are not given again while they wait)
_LAST_ROWID = sa.text("SELECT max(coalesce((SELECT max(id) FROM email_text), 0), "
                      "coalesce((SELECT rowid FROM email_fts ORDER BY rowid DESC LIMIT 1), 0), "
                      "coalesce((SELECT max(trgm_rowid) FROM search_trash), 0))")
_TEXT_INSERT = sa.insert(EMAIL_TEXT).values({n: sa.bindparam(n) for n in ("id", "email_id", "fts_rowid")})
_TRGM_INSERT = sa.text("INSERT INTO email_trgm(rowid, headers, body) VALUES (:id, :headers, :body)")
#: SQLite: new mail's texts wait here for the indexes (migration 0020, :mod:`.queue`)
_QUEUE_INSERT = sa.text("INSERT INTO search_queue (email_id, account_id, subject, addresses, headers, body) "
                        "VALUES (:email_id, :account_id, :subject, :addresses, :headers, :body)")


def header_text(headers: Iterable[Sequence[str]] | None) -> str:
    """``name: value`` lines of the message's header fields (the ingest cache's ``headers`` list), with the
    decoded value added after a field whose value has encoded words."""
    if not headers:
        return ""
    lines = []
    for name, value in headers:
        if name.lower() in UNINDEXED_FIELDS:
            continue
        lines.append(f"{name}: {value}")
        if "=?" in value:
            decoded = as_text(value)
            if decoded != value:
                lines.append(f"{name}: {decoded}")
    return "\n".join(lines)


#: PostgreSQL's word index is an expression index on ``to_tsvector(subject || addresses || body)``, and a
#: tsvector may not pass 1 MiB: a message whose text makes a bigger one could not be stored at all (its
#: delivery refused with 451). Only this much of each field is indexed there: 200,000 characters of distinct
#: short words make well under 1 MiB of lexemes and positions. SQLite's FTS5 has no such limit.
PG_BODY_CAP = 200_000
PG_FIELD_CAP = 20_000


def write_text(conn: sa.Connection, sqlite: bool, rows: list[dict], sql: SqlText | None = None) -> None:
    """New emails' texts, inside the ingest transaction. Each row: ``email_id``, ``account_id``, ``subject``,
    ``addresses``, ``body`` (the cache's search text) and ``headers`` (the cache's header list). ``sql``: the
    store's statements (``Store.sql``), to run them on the driver's cursor.

    SQLite: queued for the indexes (``search_queue``; :mod:`.queue` indexes them in batches, and before any
    search). PostgreSQL: indexed here."""
    if not rows:
        return
    if sqlite:
        queued = [{**r, "headers": header_text(r.get("headers"))} for r in rows]
        if sql is not None:
            sql.many(conn, _QUEUE_INSERT, queued)
        else:
            conn.execute(_QUEUE_INSERT, queued)
        return
    conn.execute(sa.insert(EMAIL_SEARCH), [{  # PostgreSQL text may not contain NUL
        "email_id": r["email_id"], "account_id": r["account_id"], "subject": _no_nul(r["subject"][:PG_FIELD_CAP]),
        "addresses": _no_nul(r["addresses"][:PG_FIELD_CAP]), "headers": _no_nul(header_text(r.get("headers"))),
        "body": _no_nul(r["body"][:PG_BODY_CAP]),
    } for r in rows])


def index_rows(conn: sa.Connection, rows: list[dict], sql: SqlText | None = None) -> None:
    """SQLite: put emails into both full-text indexes (the queue's batches, :mod:`.queue`). Each row:
    ``email_id``, ``account_id``, ``subject``, ``addresses``, ``headers`` (the header text) and ``body``."""
    if not rows:
        return
    # One new number per email for its rows in all three tables, above the highest of email_text and of
    # email_fts (rows older than migration 0011 have other word-index rowids): SQLite has one writer, and
    # this runs in its transaction.
    first = (sql.scalar(conn, _LAST_ROWID) if sql is not None else conn.execute(_LAST_ROWID).scalar()) + 1
    fts = [{"rowid": first + i, "email_id": r["email_id"], "account_id": r["account_id"], "subject": r["subject"],
            "addresses": r["addresses"], "body": r["body"]} for i, r in enumerate(rows)]
    text = [{"id": first + i, "email_id": r["email_id"], "fts_rowid": first + i} for i, r in enumerate(rows)]
    trgm = [{"id": first + i, "headers": r["headers"], "body": r["body"]} for i, r in enumerate(rows)]
    for stmt, values in ((_FTS_INSERT, fts), (_TEXT_INSERT, text), (_TRGM_INSERT, trgm)):
        if sql is not None:
            sql.many(conn, stmt, values)
        else:
            conn.execute(stmt, values)


def _no_nul(s: str) -> str:
    return s.replace("\x00", "") if "\x00" in s else s
