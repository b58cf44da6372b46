"""The emails service: storing new messages (ingest), JMAP-style updates and destroys, and reading an
email's bytes and ingest-time MIME cache.

IMAP's view of the same rows (STORE, COPY, MOVE, EXPUNGE) is the memberships service (``membership.py``); both
end in the same rows and the same change log, so each protocol sees the other's changes at once.

The write steps are plain functions over an open write transaction (``update_each``, ``update_one``,
``destroy_rows``, ``after_membership_change``) so that services combine them with their own checks in ONE
transaction (``visible_emails.VisibleEmails.apply`` checks JMAP visibility first; the mailboxes and
memberships services destroy emails left in no mailbox).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from . import keywords as kwmod
from . import quotas
from .model import (
    BlobLocation,
    Delivered,
    IngestItem,
    InvalidKeyword,
    NotFound,
    StorageUnavailable,
    StoreError,
    TooManyKeywords,
)
from .schema import blobs, email_keywords, emails, mailboxes, messages, thread_refs, threads, vanished
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    from . import ingest as ingesting
    from .store import Store
    from .transaction import WriteTx


@dataclass
class EmailUpdate:
    """A change to one email. ``keywords``/``mailbox_ids`` replace; the add/remove sets patch."""

    keywords: list[str] | None = None
    add_keywords: list[str] = field(default_factory=list)
    remove_keywords: list[str] = field(default_factory=list)
    mailbox_ids: list[str] | None = None
    add_mailboxes: list[str] = field(default_factory=list)
    remove_mailboxes: list[str] = field(default_factory=list)


def destroy_rows(tx: WriteTx, email_ids: list[str], *, vanished_done: bool = False) -> None:
    """Delete emails with every membership (vanished rows for IMAP), keywords and full-text rows, inside
    ``tx``; threads left empty are destroyed, the others updated. The ids must be the account's.

    ``vanished_done``: the caller has written the vanished rows of every membership these emails still have
    and touched those mailboxes (EXPUNGE of a last copy; emails left in no mailbox): nothing to read here.

    Few statements, because IMAP EXPUNGE runs this on the single writer lane (issue 10): the memberships,
    keywords and (SQLite) ``email_text`` and ``search_queue`` rows go with the emails by their ``ON DELETE
    CASCADE`` foreign keys (``email_text``'s delete trigger leaves the full-text rowids in ``search_trash``,
    whose rows the background deletes in batches: search/queue.py), the threads come from the transaction's
    memo (``tx.threads_of``), and an empty thread is found and deleted by one statement."""
    conn, sql, m = tx.conn, tx.store.sql, tx.modseq
    tx.affect_emails(email_ids)
    for i in range(0, len(email_ids), 500):
        chunk = email_ids[i : i + 500]
        ids = {"ids": chunk}
        if not vanished_done:
            memb = sql.run(conn, _MEMBERSHIPS_OF, ids)
            if memb:
                sql.many(conn, _INSERT_VANISHED, [{"mailbox_id": r[0], "uid": r[1], "modseq": m} for r in memb])
                tx.touch_mailbox(*{r[0] for r in memb})
        thread_ids = tx.threads_of(chunk)
        sql.count(conn, _DELETE_EMAILS, ids)
        tx.log_many("Email", chunk, "d")
        if thread_ids:
            _settle_threads(tx, sorted(thread_ids))


def _settle_threads(tx: WriteTx, thread_ids: list[str]) -> None:
    """Threads that lost emails: the empty ones are destroyed with their refs (a thread id is never given
    again), the others stamped and logged as updated."""
    conn, sql = tx.conn, tx.store.sql
    empty = sorted(sql.column(conn, _DELETE_EMPTY_THREADS, {"ids": thread_ids}))
    if empty:
        sql.count(conn, _DELETE_THREAD_REFS, {"ids": empty})
        tx.threads_emptied(empty)
        tx.log_many("Thread", empty, "d")
    gone = set(empty)
    alive = [t for t in thread_ids if t not in gone]
    if alive:
        sql.count(conn, _TOUCH_THREADS, {"ids": alive, "modseq": tx.modseq})
        tx.log_many("Thread", alive, "u")


def after_membership_change(tx: WriteTx, email_ids: list[str]) -> list[str]:
    """Emails whose memberships changed (mailbox destroy, REPLACE): destroy the ones left in no mailbox, log
    the rest as updated. Returns the destroyed ids."""
    if not email_ids:
        return []
    conn, sql = tx.conn, tx.store.sql
    orphans: list[str] = []
    live: list[str] = []
    for i in range(0, len(email_ids), 500):
        chunk = email_ids[i : i + 500]
        still = set(sql.column(conn, _STILL_MEMBERS, {"ids": chunk}))
        orphans.extend(e for e in chunk if e not in still)
        live.extend(e for e in chunk if e in still)
    settle_emails(tx, live, orphans)
    return orphans


def settle_emails(tx: WriteTx, live: list[str], orphans: list[str]) -> None:
    """After a membership change: ``live`` emails (still in a mailbox) are stamped and logged as updated;
    ``orphans`` (whose every remaining membership's vanished row the caller wrote) are destroyed."""
    for i in range(0, len(live), 500):
        chunk = live[i : i + 500]
        tx.store.sql.count(tx.conn, _TOUCH_EMAILS, {"ids": chunk, "modseq": tx.modseq})
        tx.log_many("Email", chunk, "u")
    if orphans:
        destroy_rows(tx, orphans, vanished_done=True)


# -- statements built once (``Store.sql``) of destroy_rows and after_membership_change ---------------------------

_P = sa.bindparam
_MEMBERSHIPS_OF = sa.select(messages.c.mailbox_id, messages.c.uid).where(messages.c.email_id.in_(_P("ids", expanding=True)))
_INSERT_VANISHED = sa.insert(vanished).values(mailbox_id=_P("mailbox_id"), uid=_P("uid"), modseq=_P("modseq"))
_DELETE_EMAILS = sa.delete(emails).where(emails.c.id.in_(_P("ids", expanding=True)))
#: the threads among ``ids`` with no email left, deleted and named in one statement (by emails.thread_id's index)
_DELETE_EMPTY_THREADS = (sa.delete(threads).where(
    threads.c.id.in_(_P("ids", expanding=True)),
    ~sa.exists().where(emails.c.thread_id == threads.c.id)).returning(threads.c.id))
_DELETE_THREAD_REFS = sa.delete(thread_refs).where(thread_refs.c.thread_id.in_(_P("ids", expanding=True)))
_TOUCH_THREADS = sa.update(threads).where(threads.c.id.in_(_P("ids", expanding=True))).values(modseq=_P("modseq"))
_STILL_MEMBERS = (sa.select(messages.c.email_id).where(messages.c.email_id.in_(_P("ids", expanding=True)))
                  .distinct())
_TOUCH_EMAILS = sa.update(emails).where(emails.c.id.in_(_P("ids", expanding=True))).values(modseq=_P("modseq"))


def own_mailbox_ids(conn: sa.Connection, account_id: str) -> set[str]:
    """The ids of the account's mailboxes (what an update may put an email into)."""
    return {r[0] for r in conn.execute(sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id))}


def update_each(tx: WriteTx, account_id: str, updates: dict[str, EmailUpdate]) -> dict[str, StoreError | None]:
    """Apply updates inside ``tx``; one email's failure leaves the others (the error is its result).

    Set-based for the whole batch, whatever it changes (keywords, mailboxes or both): a fixed number of
    statements reads every email's flags, keywords and memberships, each email's outcome is decided in Python
    (an email is written completely or not at all), and the differences are written grouped by value (one
    UPDATE per distinct flag word, one DELETE per keyword removed, one INSERT of all new keyword pairs, one
    DELETE / UPDATE per mailbox left or un-deleted, one UIDNEXT bump per mailbox entered and one INSERT of the
    new memberships, one modseq stamp). Marking 100 emails read is ~10 statements, not ~10 per email."""
    if not updates:
        return {}
    tx.affect_emails([eid for eid, upd in updates.items() if _moves_counters(upd)])  # one batch, before any change
    conn, sql = tx.conn, tx.store.sql
    ids = list(updates)
    flags: dict[str, int] = {}
    sizes: dict[str, int] = {}
    current: dict[str, dict[str, str]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        # By primary key, the account checked here: with ``account_id = ?`` in SQL, SQLite walks the account's
        # whole index instead (10x slower at 10k emails, and growing with the mailbox).
        for r in sql.run(conn, _FLAGS_OF, {"ids": chunk}):
            if r[1] == account_id:
                flags[r[0]], sizes[r[0]] = r[2], r[3]
        mine = [e for e in chunk if e in flags and _changes_keywords(updates[e])]
        if mine:
            for r in sql.run(conn, _KEYWORDS_OF, {"ids": mine}):
                current.setdefault(r[0], {})[r[1]] = r[2]
    moving = [e for e in ids if e in flags and _changes_mailboxes(updates[e])]
    memberships: dict[str, list[tuple[str, int, bool]]] = {}
    own_boxes: set[str] = set()
    if moving:
        own_boxes = own_mailbox_ids(conn, account_id)
        for i in range(0, len(moving), 500):
            for r in sql.run(conn, _MEMBERSHIP_ROWS_OF, {"ids": moving[i : i + 500]}):
                memberships.setdefault(r[0], []).append((r[1], r[2], bool(r[3])))
    results: dict[str, StoreError | None] = {}
    plans: dict[str, tuple[tuple[dict[str, str], dict[str, str]] | None, _Moves | None]] = {}
    for eid, upd in updates.items():
        if eid not in flags:
            results[eid] = NotFound(eid)
            continue
        try:
            kw = None
            if _changes_keywords(upd):
                have = dict(current.get(eid, {}))
                for k in kwmod.bits_to_keywords(flags[eid]):
                    have[k] = k
                new = _new_keywords(have, upd, eid)
                if new.keys() != have.keys():
                    kw = (new, have)
            moves = _plan_moves(memberships.get(eid, []), upd, own_boxes) if _changes_mailboxes(upd) else None
        except StoreError as exc:
            results[eid] = exc
            continue
        plans[eid] = (kw, moves)
    _admit_growth(tx, plans, sizes, results)
    _write_plans(tx, plans, flags)
    for eid in plans:
        results[eid] = None
    return {eid: results[eid] for eid in updates}


class _Moves:
    """One email's membership changes: rows to delete and to un-delete (mailbox, uid), mailboxes to enter."""

    __slots__ = ("removed", "undeleted", "added")

    def __init__(self, removed: list[tuple[str, int]], undeleted: list[tuple[str, int]], added: list[str]) -> None:
        self.removed, self.undeleted, self.added = removed, undeleted, added

    def __bool__(self) -> bool:
        return bool(self.removed or self.undeleted or self.added)


def _plan_moves(memb: list[tuple[str, int, bool]], upd: EmailUpdate, own_boxes: set[str]) -> _Moves:
    """The membership changes ``upd`` asks of an email with memberships ``memb`` ((mailbox, uid, deleted));
    StoreError / NotFound refuse it."""
    visible = {m for m, _, deleted in memb if not deleted}
    target = set(upd.mailbox_ids) if upd.mailbox_ids is not None else set(visible)
    target |= set(upd.add_mailboxes)
    target -= set(upd.remove_mailboxes)
    if not target:
        raise StoreError("an email must be in at least one mailbox")
    unknown = target - own_boxes
    if unknown:
        raise NotFound(sorted(unknown)[0])
    present = {m for m, _, _ in memb}
    return _Moves([(m, u) for m, u, _ in memb if m not in target],
                  # A \Deleted membership in a target mailbox becomes visible again.
                  [(m, u) for m, u, deleted in memb if m in target and deleted],
                  sorted(target - present))


def _admit_growth(tx: WriteTx, plans: dict[str, tuple[Any, _Moves | None]], sizes: dict[str, int],
                  results: dict[str, StoreError | None]) -> None:
    """Quota (quotas.py) for emails that gain memberships (a move adds as much as it removes): the batch's
    growth is admitted at once; if that is refused, email by email in order, the refused ones failing alone."""
    growth = {eid: len(m.added) - len(m.removed) for eid, (_, m) in plans.items()
              if m is not None and len(m.added) > len(m.removed)}
    if not growth:
        return
    try:
        quotas.admit(tx, storage=sum(sizes[e] * n for e, n in growth.items()), messages=sum(growth.values()))
        return
    except StoreError:
        pass
    for eid, n in growth.items():
        try:
            quotas.admit(tx, storage=sizes[eid] * n, messages=n)
        except StoreError as exc:
            results[eid] = exc
            del plans[eid]


def _write_plans(tx: WriteTx, plans: dict[str, tuple[tuple[dict[str, str], dict[str, str]] | None, _Moves | None]],
                 flags: dict[str, int]) -> None:
    """Write every planned email's keyword and membership changes, grouped by value (see update_each). (Its
    statements are built once and run on the driver's cursor: "mark 100 read" is all statements, little Python.)"""
    conn, m, sql = tx.conn, tx.modseq, tx.store.sql
    new_bits: dict[int, list[str]] = {}
    gone: dict[str, list[str]] = {}
    fresh: list[dict[str, str]] = []
    removed: dict[str, list[int]] = {}
    undeleted: dict[str, list[int]] = {}
    entering: dict[str, list[str]] = {}
    changed: list[str] = []
    for eid, (kw, moves) in plans.items():
        if kw is not None:
            new, have = kw
            bits, other = kwmod.split(new)
            _, old_other = kwmod.split(have)
            if bits != flags[eid]:
                new_bits.setdefault(bits, []).append(eid)
            for k in old_other.keys() - other.keys():
                gone.setdefault(k, []).append(eid)
            fresh.extend({"email_id": eid, "keyword": k, "display": d} for k, d in other.items() if k not in old_other)
        if moves:
            for box, uid in moves.removed:
                removed.setdefault(box, []).append(uid)
            for box, uid in moves.undeleted:
                undeleted.setdefault(box, []).append(uid)
            for box in moves.added:
                entering.setdefault(box, []).append(eid)
        if kw is not None or moves:
            changed.append(eid)
    for bits, group in new_bits.items():
        for i in range(0, len(group), 500):
            sql.count(conn, _SET_FLAGS, {"ids": group[i : i + 500], "bits": bits})
    for keyword, group in gone.items():
        for i in range(0, len(group), 500):
            sql.count(conn, _DELETE_KEYWORD, {"keyword": keyword, "ids": group[i : i + 500]})
    sql.many(conn, _INSERT_KEYWORD, fresh)
    for box, uids in removed.items():
        for i in range(0, len(uids), 500):
            sql.count(conn, _DELETE_UIDS, {"box": box, "uids": uids[i : i + 500]})
    sql.many(conn, _INSERT_VANISHED, [{"mailbox_id": box, "uid": u, "modseq": m}
                                      for box, uids in removed.items() for u in uids])
    for box, uids in undeleted.items():
        for i in range(0, len(uids), 500):
            sql.count(conn, _UNDELETE_UIDS, {"box": box, "uids": uids[i : i + 500], "modseq": m})
    rows = []
    now = int(time.time())  # SAVEDATE (RFC 8514) of the memberships entered
    for box in sorted(entering):
        members = entering[box]
        top = sql.scalar(conn, _TAKE_UIDS, {"box": box, "n": len(members)})
        rows.extend({"mailbox_id": box, "uid": top - len(members) + n, "email_id": eid, "deleted": False, "modseq": m,
                     "saved_at": now} for n, eid in enumerate(members))
    sql.many(conn, _INSERT_MEMBERSHIP, rows)
    tx.touch_mailbox(*removed, *undeleted, *entering)
    for i in range(0, len(changed), 500):  # flags are per email: every membership of a changed email is stamped
        chunk = changed[i : i + 500]
        sql.count(conn, _TOUCH_EMAILS, {"ids": chunk, "modseq": m})
        tx.touch_mailbox(*{r[0] for r in sql.run(conn, _STAMP_MEMBERSHIPS, {"ids": chunk, "modseq": m})})
    tx.log_many("Email", changed, "u")


# -- statements built once (``Store.sql``) of update_each and _write_plans -----------------------------------------

_FLAGS_OF = (sa.select(emails.c.id, emails.c.account_id, emails.c.flags, emails.c.size)
             .where(emails.c.id.in_(_P("ids", expanding=True))))
_KEYWORDS_OF = (sa.select(email_keywords.c.email_id, email_keywords.c.keyword, email_keywords.c.display)
                .where(email_keywords.c.email_id.in_(_P("ids", expanding=True))))
_MEMBERSHIP_ROWS_OF = (sa.select(messages.c.email_id, messages.c.mailbox_id, messages.c.uid, messages.c.deleted)
                       .where(messages.c.email_id.in_(_P("ids", expanding=True))))
_SET_FLAGS = sa.update(emails).where(emails.c.id.in_(_P("ids", expanding=True))).values(flags=_P("bits"))
_DELETE_KEYWORD = sa.delete(email_keywords).where(email_keywords.c.keyword == _P("keyword"),
                                                  email_keywords.c.email_id.in_(_P("ids", expanding=True)))
_INSERT_KEYWORD = sa.insert(email_keywords).values(email_id=_P("email_id"), keyword=_P("keyword"),
                                                   display=_P("display"))
_DELETE_UIDS = sa.delete(messages).where(messages.c.mailbox_id == _P("box"),
                                         messages.c.uid.in_(_P("uids", expanding=True)))
_UNDELETE_UIDS = (sa.update(messages).where(messages.c.mailbox_id == _P("box"),
                                            messages.c.uid.in_(_P("uids", expanding=True)))
                  .values(deleted=False, modseq=_P("modseq")))
_TAKE_UIDS = (sa.update(mailboxes).where(mailboxes.c.id == _P("box"))
              .values(uidnext=mailboxes.c.uidnext + _P("n")).returning(mailboxes.c.uidnext))
_INSERT_MEMBERSHIP = sa.insert(messages).values(mailbox_id=_P("mailbox_id"), uid=_P("uid"), email_id=_P("email_id"),
                                                deleted=_P("deleted"), modseq=_P("modseq"), saved_at=_P("saved_at"))
_STAMP_MEMBERSHIPS = (sa.update(messages).where(messages.c.email_id.in_(_P("ids", expanding=True)))
                      .values(modseq=_P("modseq")).returning(messages.c.mailbox_id))


def _changes_mailboxes(upd: EmailUpdate) -> bool:
    return bool(upd.mailbox_ids is not None or upd.add_mailboxes or upd.remove_mailboxes)


def _changes_keywords(upd: EmailUpdate) -> bool:
    return bool(upd.keywords is not None or upd.add_keywords or upd.remove_keywords)


def _new_keywords(current: dict[str, str], upd: EmailUpdate, email_id: str) -> dict[str, str]:
    """The email's keywords after ``upd`` ({key: display}); InvalidKeyword / TooManyKeywords refuse it."""
    new = kwmod.normalize(upd.keywords) if upd.keywords is not None else dict(current)
    for kw in upd.add_keywords:
        new.setdefault(kwmod.validate(kw), kw)
    for kw in upd.remove_keywords:
        try:
            new.pop(kwmod.validate(kw), None)
        except InvalidKeyword:
            pass
    if len(new) > kwmod.MAX_KEYWORDS:
        raise TooManyKeywords(email_id)
    return new


#: keywords the mailbox counters depend on (unseen, unread)
_COUNTED_KEYWORDS = frozenset({"$seen", "$draft"})


def _moves_counters(upd: EmailUpdate) -> bool:
    """Whether this update can change a mailbox counter: a mailbox change, or \\Seen / \\Draft."""
    return bool(upd.keywords is not None or upd.mailbox_ids is not None or upd.add_mailboxes
                or upd.remove_mailboxes
                or any(k.lower() in _COUNTED_KEYWORDS for k in (*upd.add_keywords, *upd.remove_keywords)))


class Emails:
    """Emails of an account: ingest, JMAP updates and destroys, bytes and MIME cache by email or blob id."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- ingest --------------------------------------------------------------------------------------------

    def prepare(self, item: IngestItem) -> ingesting.Prepared:
        """CPU part of ingest (parse, hash, validate keywords); runs outside any transaction (see ingest.py)."""
        from . import ingest as ingesting  # not at import time: ingest needs the search index, which needs us

        return ingesting.prepare(item, self._store.max_message_size)

    def prepare_placed(self, account_id: str, items: list[IngestItem]) -> list[ingesting.Prepared]:
        """:meth:`prepare` every item and store their bytes before the write (``ingest.place``): the part of a
        delivery that needs no transaction, for ``ingest_many(..., prepared=)`` on the writer lane next.
        Raises what :meth:`prepare` or the blob store raise (the caller then ingests item by item)."""
        from . import ingest as ingesting

        prep = [self.prepare(it) for it in items]
        ingesting.place(self._store, account_id, prep)
        return prep

    @writes
    def ingest(self, account_id: str, raw: bytes, mailbox_ids: tuple[str, ...] | list[str],
               keywords: tuple[str, ...] | list[str] = (), received_at: int | None = None, *,
               deleted: bool = False) -> Delivered:
        """One message; ``deleted``: its memberships start with IMAP's ``\\Deleted`` (see IngestItem)."""
        item = IngestItem(raw, tuple(mailbox_ids), tuple(keywords), received_at, deleted)
        return self.ingest_many(account_id, [item])[0]

    @writes
    def ingest_many(self, account_id: str, items: list[IngestItem],
                    prepared: list[ingesting.Prepared] | None = None) -> list[Delivered]:
        """Store a batch of messages in one transaction; returns one Delivered per item, in order."""
        if not items and not prepared:
            return []
        from . import ingest as ingesting

        prep = prepared if prepared is not None else [self.prepare(it) for it in items]
        return ingesting.store_batch(self._store, account_id, prep)

    def prepare_each(self, account_id: str, items: list[IngestItem]) -> list[ingesting.Prepared | StoreError]:
        """The part of :meth:`ingest_each` that needs no transaction (``Store.prepare_ingest(..., each=True)`` runs
        it on the ingest threads, so the writer lane runs statements only): per item, in order, its Prepared or
        the StoreError that refuses it, and the bytes of the prepared ones stored and synced (``ingest.place``).
        Raises StorageUnavailable when the disk refuses (nothing is stored)."""
        from . import ingest as ingesting

        out = self._checked(account_id, items)
        ingesting.place(self._store, account_id, [p for p in out if isinstance(p, ingesting.Prepared)])
        return out

    def _checked(self, account_id: str, items: list[IngestItem]) -> list[ingesting.Prepared | StoreError]:
        """Each item's mailboxes checked (one read for all), then parsed and hashed: its Prepared or its refusal."""
        wanted = sorted({m for it in items for m in it.mailbox_ids})
        missing = set(self._store.mailboxes.unknown(account_id, wanted))
        out: list[ingesting.Prepared | StoreError] = []
        for item in items:
            gone = [m for m in item.mailbox_ids if m in missing]
            if gone or not item.mailbox_ids:
                out.append(NotFound(gone[0] if gone else "mailbox"))
                continue
            try:
                out.append(self.prepare(item))
            except StorageUnavailable:
                raise
            except StoreError as exc:  # too large, an invalid keyword
                out.append(exc)
        return out

    @writes
    def ingest_each(self, account_id: str, items: list[IngestItem],
                    prepared: list[ingesting.Prepared | StoreError] | None = None) -> list[Delivered | StoreError]:
        """Store messages that succeed or fail one by one (JMAP Email/import): per item, in order, its
        Delivered or the StoreError that refused it (``NotFound`` naming the mailbox, ``TooLarge``,
        ``InvalidKeyword``...), and nothing of a refused item is stored. ``prepared``: what :meth:`prepare_each`
        made of these items beforehand (else they are checked and prepared here, on the writer lane).

        Items that pass the checks go in ONE transaction (one sync for the batch). Should that transaction be
        refused as a whole all the same (a mailbox destroyed since the check), each item is retried alone so
        every one still gets its own answer. ``StorageUnavailable`` of the whole batch leaves as an exception
        (nothing was stored: the caller answers "try again later"); during the one-by-one retry, where others
        may be stored already, it is that item's result.
        """
        from . import ingest as ingesting

        checked = prepared if prepared is not None else self._checked(account_id, items)
        results: list[Delivered | StoreError | None] = [p if isinstance(p, StoreError) else None for p in checked]
        ready = [(i, p) for i, p in enumerate(checked) if isinstance(p, ingesting.Prepared)]
        if ready:
            try:
                done = ingesting.store_batch(self._store, account_id, [p for _, p in ready])
            except StorageUnavailable:
                raise
            except StoreError:
                for i, p in ready:
                    try:
                        results[i] = ingesting.store_batch(self._store, account_id, [p])[0]
                    except StoreError as exc:  # StorageUnavailable included: others may be stored already
                        results[i] = exc
            else:
                for (i, _), d in zip(ready, done, strict=True):
                    results[i] = d
        out: list[Delivered | StoreError] = []
        for r in results:
            assert r is not None  # every item got its answer above
            out.append(r)
        return out

    def digests_present(self, account_id: str, digests: list[str],
                        mailbox_ids: list[str] | set[str]) -> set[tuple[str, str]]:
        """Which (sha256, mailbox id) pairs already hold a live message: the import's "already there" test.

        One indexed query per call (blobs by digest, then their emails, then memberships), so an importer can
        ask once per batch instead of once per message. The mailbox filter is applied here, not in SQL: with a
        mailbox condition the planner (SQLite without statistics, on a fresh import) walks the whole mailbox
        per call, which makes a large import quadratic; a digest has only a handful of memberships.
        A \\Deleted membership does not count: it is invisible to JMAP and on its way out, so bytes that only
        survive there are not "in the mailbox" any more.
        """
        if not digests or not mailbox_ids:
            return set()
        wanted = set(mailbox_ids)
        q = (sa.select(blobs.c.sha256, messages.c.mailbox_id)
             .select_from(blobs.join(emails, sa.and_(emails.c.blob_id == blobs.c.id,
                                                     emails.c.account_id == blobs.c.account_id))
                          .join(messages, messages.c.email_id == emails.c.id))
             .where(blobs.c.account_id == account_id, blobs.c.sha256.in_(list(set(digests))),
                    messages.c.deleted.is_(False)))
        with self._store.engine.connect() as conn:
            return {(r.sha256, r.mailbox_id) for r in conn.execute(q) if r.mailbox_id in wanted}

    # -- JMAP writes ---------------------------------------------------------------------------------------

    @writes
    def destroy(self, account_id: str, email_ids: list[str]) -> tuple[list[str], list[str]]:
        """Destroy emails (from every mailbox). Returns (destroyed, not_found)."""
        with self._store.write(account_id) as tx:
            found = []
            for i in range(0, len(email_ids), 500):  # by primary key, the account checked here (see update_each)
                found += [r[0] for r in tx.conn.execute(sa.select(emails.c.id, emails.c.account_id).where(
                    emails.c.id.in_(email_ids[i : i + 500]))) if r[1] == account_id]
            if found:
                destroy_rows(tx, found)
        fs = set(found)
        return found, [e for e in email_ids if e not in fs]

    @writes
    def update(self, account_id: str, updates: dict[str, EmailUpdate]) -> dict[str, StoreError | None]:
        """Apply JMAP-style updates; each email succeeds or fails alone (the error is returned per id)."""
        with self._store.write(account_id) as tx:
            return update_each(tx, account_id, updates)

    # -- bytes and parse cache -----------------------------------------------------------------------------

    def location(self, account_id: str, email_id: str) -> BlobLocation:
        """Where the email's raw bytes live; ``NotFound`` for another account's email."""
        with self._store.engine.connect() as conn:
            row = conn.execute(sa.select(blobs.c.id, blobs.c.sha256, blobs.c.size, blobs.c.pack, blobs.c.offset,
                                         blobs.c.type)
                               .select_from(emails.join(blobs, blobs.c.id == emails.c.blob_id))
                               .where(emails.c.id == email_id, emails.c.account_id == account_id)).first()
        if row is None:
            raise NotFound(email_id)
        return BlobLocation(row.id, row.sha256, row.size, row.pack, row.offset, row.type)

    def locations(self, account_id: str, email_ids: Sequence[str]) -> dict[str, BlobLocation]:
        """``location`` of many emails in one query per 500 (EmailSubmission/set of a batch of drafts); the
        account's emails only, the others absent. By primary key, the account compared here (see update_each)."""
        wanted = list(dict.fromkeys(email_ids))
        cols = (emails.c.id, emails.c.account_id, blobs.c.id, blobs.c.sha256, blobs.c.size, blobs.c.pack,
                blobs.c.offset, blobs.c.type)
        out: dict[str, BlobLocation] = {}
        with self._store.read() as conn:
            for i in range(0, len(wanted), 500):
                for r in conn.execute(sa.select(*cols).select_from(emails.join(blobs, blobs.c.id == emails.c.blob_id))
                                      .where(emails.c.id.in_(wanted[i : i + 500]))):
                    if r[1] == account_id:
                        out[r[0]] = BlobLocation(r[2], r[3], r[4], r[5], r[6], r[7])
        return out

    def raw(self, account_id: str, email_id: str) -> bytes:
        """The email's bytes as stored."""
        return self._store.blobs.read_location(self.location(account_id, email_id))

    def message_cache(self, account_id: str, blob_id: str) -> dict[str, Any] | None:
        """The ingest-time MIME cache of the account's message stored as ``blob_id`` (any email with those
        bytes: identical messages share a blob), for reading a body part by its offsets; None if there is none
        or it is unreadable."""
        with self._store.engine.connect() as conn:
            row = conn.execute(sa.select(emails.c.cache)
                               .where(emails.c.account_id == account_id, emails.c.blob_id == blob_id)
                               .limit(1)).first()
        if row is None:
            return None
        try:
            cache = orjson.loads(row.cache)
        except orjson.JSONDecodeError:
            return None
        return cache if isinstance(cache, dict) else None
