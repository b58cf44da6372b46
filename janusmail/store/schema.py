"""The mailstore's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

The model is JMAP's (RFC 8621) with what IMAP needs on top, as ../shared/spec/rfc-digest.md §3 explains:

* an *email* is one immutable message (one id, one blob, one thread, one keyword set);
* a *membership* puts an email in a mailbox under an IMAP UID, with its own ``\\Deleted`` flag because IMAP
  expunges per mailbox; a membership flagged deleted is invisible to JMAP;
* every write bumps the account's modification sequence once per transaction; the ``changes`` table and the
  per-membership ``modseq`` columns let IMAP CONDSTORE/QRESYNC and JMAP ``/changes`` ask "what changed since
  N" with one indexed query.

Times are integer seconds since the epoch (UTC): cheap to sort and identical on both backends.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

metadata = sa.MetaData()

ID = sa.String(64)

#: System flags kept as bits on the email row, so ``UNSEEN`` and unread counts are integer tests, not joins.
FLAG_SEEN = 1
FLAG_ANSWERED = 2
FLAG_FLAGGED = 4
FLAG_DRAFT = 8

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("address", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=True),
    sa.Column("scram_sha256", sa.Text, nullable=True),
    sa.Column("jmap_enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # The account's modification sequence: bumped once by every write transaction (row lock = write order).
    sa.Column("modseq", sa.BigInteger, nullable=False, server_default="1"),
    # Credential epochs (janusmail.store.credentials): a store-wide sequence value, stamped on the account by
    # every change that can end a logged-in session (password replaced, app password revoked); password_epoch
    # is the value of the last password change. Sessions compare them with the value they logged in under.
    sa.Column("credential_epoch", sa.BigInteger, nullable=False, server_default="0", index=True),
    sa.Column("password_epoch", sa.BigInteger, nullable=False, server_default="0"),
    # Quotas (janusmail/store/quotas.py, migration 0009): limits set by the administrator (NULL = none; storage
    # in octets) and usage, kept exact by every write transaction: the sum of the account's mailbox counters
    # (every membership counts, \Deleted ones until expunged).
    sa.Column("quota_storage", sa.BigInteger, nullable=True),
    sa.Column("quota_messages", sa.BigInteger, nullable=True),
    sa.Column("used_storage", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("used_messages", sa.BigInteger, nullable=False, server_default="0"),
    # Web admin (janusmail/admin, migration 0016): may use /admin; may not log in at all (sessions end).
    sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
)

app_passwords = sa.Table(
    "app_passwords",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("protocols", sa.String(100), nullable=False),  # comma separated: imap,jmap,smtp
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_used_at", sa.BigInteger, nullable=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("account_id", "name", name="uq_app_password_name"),
)

mailboxes = sa.Table(
    "mailboxes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),  # one NFC path component; IMAP paths are derived
    sa.Column("parent_id", ID, nullable=True),
    sa.Column("role", sa.String(32), nullable=True),
    sa.Column("sort_order", sa.Integer, nullable=False, server_default="0"),
    sa.Column("subscribed", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("uidvalidity", sa.BigInteger, nullable=False),
    sa.Column("uidnext", sa.BigInteger, nullable=False, server_default="1"),
    # First UID that no session has yet been shown as \Recent (IMAP4rev1 only).
    sa.Column("recent_uid", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("highest_modseq", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("created_modseq", sa.BigInteger, nullable=False),
    sa.Column("modseq", sa.BigInteger, nullable=False),
    # Counters kept exact by every write transaction (janusmail/store/counters.py): STATUS and JMAP counts
    # read them instead of counting memberships. IMAP's (memberships, \Deleted included) then JMAP's.
    sa.Column("n_messages", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("n_unseen", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("n_deleted", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("n_size", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("n_emails", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("n_unread_emails", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("n_threads", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("n_unread_threads", sa.BigInteger, nullable=False, server_default="0"),
)
sa.Index("ix_mailboxes_parent_name", mailboxes.c.account_id, mailboxes.c.parent_id, mailboxes.c.name)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("type", sa.String(255), nullable=True),
    sa.Column("pack", sa.String(32), nullable=False),  # where the bytes live: pack file and offset
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("account_id", "sha256", name="uq_blob_account_sha"),
)

# Blob bytes kept in the database (``[store] blob_store = "database"``, janusmail/store/blobstore.py; migration
# 0008): a blob's bytes cut into ordered chunks of at most 1 MiB, written by the transaction that inserts its
# ``blobs`` row (pack "db:"). The reference is checked at commit (the chunks may be written before the row)
# and cascades, so an account's deletion takes its bytes along. PostgreSQL keeps ``data`` uncompressed
# (STORAGE EXTERNAL): ingest pays no compression and a byte range reads only the TOAST pieces it covers.
blob_chunks = sa.Table(
    "blob_chunks",
    metadata,
    sa.Column("blob_id", ID, sa.ForeignKey("blobs.id", ondelete="CASCADE", deferrable=True, initially="DEFERRED"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

threads = sa.Table(
    "threads",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("base_subject", sa.Text, nullable=False, server_default=""),
    sa.Column("modseq", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,  # migration 0021
)

# Message-ID -> thread, for every id a message carried (its own, In-Reply-To, References), including ids
# only referenced so far: two replies to a parent that never arrived meet through the parent's id.
thread_refs = sa.Table(
    "thread_refs",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("msgid", sa.String(512), primary_key=True),
    sa.Column("thread_id", ID, nullable=False),
    sqlite_with_rowid=False,  # migration 0021
)
# A thread's references by thread, for deleting them with the thread (migration 0011).
sa.Index("ix_thread_refs_thread_id", thread_refs.c.thread_id)

emails = sa.Table(
    "emails",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("blob_id", ID, nullable=False),
    sa.Column("thread_id", ID, nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Column("sent_at", sa.BigInteger, nullable=True),
    sa.Column("sent_offset", sa.Integer, nullable=True),  # minutes east of UTC of the Date header
    sa.Column("flags", sa.Integer, nullable=False, server_default="0"),  # FLAG_* bits
    sa.Column("message_id", sa.Text, nullable=True),
    sa.Column("subject", sa.Text, nullable=False, server_default=""),
    sa.Column("base_subject", sa.Text, nullable=False, server_default=""),
    sa.Column("from_sort", sa.Text, nullable=False, server_default=""),
    sa.Column("to_sort", sa.Text, nullable=False, server_default=""),
    # Lowercased "name <addr>, ..." per field: substring search for IMAP FROM/TO and JMAP from/to filters.
    sa.Column("addr_from", sa.Text, nullable=False, server_default=""),
    sa.Column("addr_to", sa.Text, nullable=False, server_default=""),
    sa.Column("addr_cc", sa.Text, nullable=False, server_default=""),
    sa.Column("addr_bcc", sa.Text, nullable=False, server_default=""),
    sa.Column("has_attachment", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("preview", sa.Text, nullable=False, server_default=""),
    sa.Column("cache", sa.LargeBinary, nullable=False),  # orjson of janusmail.mime's parsed structure
    sa.Column("created_modseq", sa.BigInteger, nullable=False),
    sa.Column("modseq", sa.BigInteger, nullable=False),
)
sa.Index("ix_emails_account_received", emails.c.account_id, emails.c.received_at)
sa.Index("ix_emails_account_blob", emails.c.account_id, emails.c.blob_id)

# Keywords other than the four system flags; one set per email, keyed by the lowercase form (JMAP's view)
# while remembering the spelling IMAP first used, for FETCH FLAGS.
email_keywords = sa.Table(
    "email_keywords",
    metadata,
    sa.Column("email_id", ID, sa.ForeignKey("emails.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("keyword", sa.String(255), primary_key=True),
    sa.Column("display", sa.String(255), nullable=False),
    sqlite_with_rowid=False,  # migration 0021
)
# PostgreSQL only (migration 0022): its planner reads it for keyword searches (semi-joins); SQLite's
# correlated EXISTS uses the primary key, so there it was only written, never read.
sa.Index("ix_email_keywords_keyword", email_keywords.c.keyword).ddl_if(dialect="postgresql")

# An email's place in a mailbox: the IMAP view. modseq is max(last change of the email, of this membership).
messages = sa.Table(
    "messages",
    metadata,
    sa.Column("mailbox_id", ID, sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("uid", sa.BigInteger, primary_key=True),
    sa.Column("email_id", ID, sa.ForeignKey("emails.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("modseq", sa.BigInteger, nullable=False),
    # When the email was put in THIS mailbox (RFC 8514 SAVEDATE: APPEND, COPY, MOVE, delivery, JMAP's
    # mailboxIds), migration 0010. Every INSERT that does not say otherwise is stamped with the time now, so
    # no write path can leave it out; rows older than the column carry their email's received_at.
    sa.Column("saved_at", sa.BigInteger, nullable=False, server_default="0", default=lambda: int(time.time())),
    sqlite_with_rowid=False,  # migration 0021
)
sa.Index("ix_messages_mailbox_modseq", messages.c.mailbox_id, messages.c.modseq)

# Expunged UIDs, for QRESYNC VANISHED (EARLIER) and for sessions catching up on expunges.
vanished = sa.Table(
    "vanished",
    metadata,
    sa.Column("mailbox_id", ID, primary_key=True),
    sa.Column("uid", sa.BigInteger, primary_key=True),
    sa.Column("modseq", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,  # migration 0021
)
sa.Index("ix_vanished_mailbox_modseq", vanished.c.mailbox_id, vanished.c.modseq)

# The change log: one row per object touched by a transaction, all stamped with that transaction's modseq.
# kind: Mailbox | Email | Thread | Identity | Quota ... ; op: c(reated) u(pdated) d(estroyed) k(counts only changed, Mailbox)
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("account_id", ID, nullable=False),
    sa.Column("modseq", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("object_id", ID, nullable=False),
    sa.Column("op", sa.String(1), nullable=False),
)
sa.Index("ix_changes_account_kind_modseq", changes.c.account_id, changes.c.kind, changes.c.modseq)

# IMAP subscriptions to names that have no mailbox (RFC 9051 allows them); JMAP never sees these.
orphan_subscriptions = sa.Table(
    "orphan_subscriptions",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
)

# Text for full-text search on PostgreSQL (SQLite uses the FTS5 table created by the migration instead).
email_search = sa.Table(
    "email_search",
    metadata,
    sa.Column("email_id", ID, sa.ForeignKey("emails.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("account_id", ID, nullable=False, index=True),
    sa.Column("subject", sa.Text, nullable=False, server_default=""),
    sa.Column("addresses", sa.Text, nullable=False, server_default=""),
    sa.Column("body", sa.Text, nullable=False, server_default=""),
    sa.Column("headers", sa.Text, nullable=False, server_default=""),  # migration 0004: IMAP substring search
)

# IMAP METADATA (RFC 5464), migration 0010: entries of a mailbox and of the server (the account's own: one user
# per account, so /private and /shared are both the account's). Names are lower case ("/shared/comment");
# values octets (a literal8 may carry any). A mailbox's entries go with it (ON DELETE CASCADE) and keep its id
# through a rename, so they are renamed with it.
mailbox_metadata = sa.Table(
    "mailbox_metadata",
    metadata,
    sa.Column("mailbox_id", ID, sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(1024), primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)
server_metadata = sa.Table(
    "server_metadata",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(1024), primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)
