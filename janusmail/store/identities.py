"""Sending identities (JMAP Identity, RFC 8621 §6) and the addresses an account may send from (its aliases).

Why the default identity is derived, not stored: every account has one identity for its own address from the
moment it exists, without a migration backfilling old accounts or account creation knowing about identities.
Its id is the account id with the Identity type letter (``ids.IDENTITY``): stable, unique, never minted twice.
It gets a row only when it is first changed (its name or signature), and it cannot be deleted (``mayDelete``
false, as RFC 8621 suggests for the user's own address). A client that read the identities at state ``0`` has
therefore seen it; later changes are logged like any other.

Further identities are created for addresses the account owns: its address or one of its aliases. An alias is
unique across the whole store (one owner per address, never another account's address); removing one removes
the identities that used it, in the same transaction, so an identity never names an address its account no
longer owns. Every write is one ``Store.write``: Identity change rows (kind ``"Identity"``) make
``Identity/changes`` work, and the notifier hears about it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from . import ids
from .model import AlreadyExists, Forbidden, NotFound
from .schema import ID, accounts, metadata
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = [
    "KIND",
    "Identities",
    "Identity",
    "aliases_table",
    "identities_table",
    "normalize_alias",
]

#: The change-log kind of identities (JMAP type name, as "Mailbox" and "Email" are).
KIND = "Identity"

# The tables of migration 0005. They are declared here, beside the only code that reads and writes them, on
# the store's one MetaData.
identities_table = sa.Table(
    "identities",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    # JSON arrays of [name or null, email] pairs, or NULL
    sa.Column("reply_to", sa.Text, nullable=True),
    sa.Column("bcc", sa.Text, nullable=True),
    sa.Column("text_signature", sa.Text, nullable=False, server_default=""),
    sa.Column("html_signature", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

aliases_table = sa.Table(
    "aliases",
    metadata,
    sa.Column("address", sa.String(320), primary_key=True),  # lowercased: one owner per address
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

#: An address: one ``@``, something on each side, no spaces or controls (the account's own rule, stricter).
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")
MAX_ADDRESS = 320

#: A recipient in replyTo/bcc: (display name or None, address).
Recipient = tuple[str | None, str]

#: The fields an update may set (an identity's email never changes).
UPDATABLE = frozenset({"name", "reply_to", "bcc", "text_signature", "html_signature"})


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    email: str
    name: str = ""
    reply_to: tuple[Recipient, ...] | None = None
    bcc: tuple[Recipient, ...] | None = None
    text_signature: str = ""
    html_signature: str = ""
    may_delete: bool = True


def normalize_alias(address: str) -> str:
    """An alias as stored (trimmed, lowercased, like account addresses); ValueError when it is no address."""
    if type(address) is not str:
        raise ValueError("an alias is an email address")
    value = address.strip().lower()
    if len(value) > MAX_ADDRESS or not _ADDRESS.fullmatch(value):
        raise ValueError(f"not an email address: {address!r}")
    return value


def _recipients_json(value: Sequence[Recipient] | None) -> str | None:
    return None if value is None else orjson.dumps([[n, e] for n, e in value]).decode()


def _recipients(text: str | None) -> tuple[Recipient, ...] | None:
    return None if text is None else tuple((n, e) for n, e in orjson.loads(text))


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for key in ("reply_to", "bcc"):
        if key in out:
            out[key] = _recipients_json(out[key])
    return out


class Identities:
    """The account's identities and aliases (see the module docstring for the rules)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @staticmethod
    def default_id(account_id: str) -> str:
        """The id of the account's own identity: its account id under the Identity type letter."""
        return ids.IDENTITY + account_id[1:]

    # -- reads -------------------------------------------------------------------------------------------

    def list(self, account_id: str, identity_ids: Sequence[str] | None = None) -> list[Identity]:
        """The account's identities (the default one first, then in creation order), or those among
        ``identity_ids``; unknown ids are left out. Empty for an unknown account."""
        t = identities_table
        q = sa.select(t).where(t.c.account_id == account_id).order_by(t.c.id)
        if identity_ids is not None:
            wanted = list(dict.fromkeys(identity_ids))
            if not wanted:
                return []
            q = q.where(t.c.id.in_(wanted))
        with self._store.engine.connect() as conn:
            address = conn.execute(sa.select(accounts.c.address).where(accounts.c.id == account_id)).scalar()
            rows = conn.execute(q).all() if address is not None else []
        if address is None:
            return []
        default = self.default_id(account_id)
        out = [self._identity(r, address if r.id == default else None) for r in rows]
        stored_default = [i for i in out if i.id == default]
        others = [i for i in out if i.id != default]
        if stored_default:
            return stored_default + others
        if identity_ids is None or default in identity_ids:
            return [Identity(default, address, may_delete=False), *others]
        return others

    def get(self, account_id: str, identity_id: str) -> Identity | None:
        found = self.list(account_id, [identity_id])
        return found[0] if found else None

    def addresses(self, account_id: str) -> list[str]:
        """The addresses the account may send from: its own, then its aliases (sorted); [] for no account."""
        with self._store.engine.connect() as conn:
            own = conn.execute(sa.select(accounts.c.address).where(accounts.c.id == account_id)).scalar()
            if own is None:
                return []
            return [own, *self._aliases(conn, account_id)]

    def aliases(self, account_id: str) -> list[str]:
        """The account's aliases, sorted."""
        with self._store.engine.connect() as conn:
            return self._aliases(conn, account_id)

    def alias_owner(self, address: str) -> str | None:
        """The id of the account that has ``address`` as an alias (for delivery and account creation)."""
        try:
            value = normalize_alias(address)
        except ValueError:
            return None
        a = aliases_table
        with self._store.engine.connect() as conn:
            return conn.execute(sa.select(a.c.account_id).where(a.c.address == value)).scalar()

    def alias_owners(self, addresses: Sequence[str]) -> dict[str, str]:
        """``alias_owner`` of many addresses in one query per 500 (the sender's recipients of a batch): address
        as given -> owning account id, addresses that are nobody's alias absent."""
        wanted: dict[str, list[str]] = {}
        for address in addresses:
            try:
                wanted.setdefault(normalize_alias(address), []).append(address)
            except ValueError:
                continue
        values = list(wanted)
        a = aliases_table
        out: dict[str, str] = {}
        with self._store.read() as conn:
            for i in range(0, len(values), 500):
                for value, account_id in conn.execute(sa.select(a.c.address, a.c.account_id)
                                                      .where(a.c.address.in_(values[i : i + 500]))):
                    out.update((given, account_id) for given in wanted.get(value, ()))
        return out

    # -- identity writes ---------------------------------------------------------------------------------

    @writes
    def create(
        self,
        account_id: str,
        email: str,
        *,
        name: str = "",
        reply_to: Sequence[Recipient] | None = None,
        bcc: Sequence[Recipient] | None = None,
        text_signature: str = "",
        html_signature: str = "",
    ) -> Identity:
        """A new identity for one of the account's addresses. ``Forbidden`` when the account does not own
        ``email`` (checked in the write's own transaction), ``NotFound`` for no account."""
        identity_id = ids.mint(ids.IDENTITY)
        email = email.strip().lower()
        values = {"name": name, "reply_to": reply_to, "bcc": bcc, "text_signature": text_signature,
                  "html_signature": html_signature}
        with self._store.write(account_id) as tx:
            if not self._owns(tx.conn, account_id, email):
                raise Forbidden(f"{email} is not an address of this account")
            row = {"id": identity_id, "account_id": account_id, "email": email,
                   "created_at": int(time.time())}
            tx.conn.execute(sa.insert(identities_table).values(**row, **_columns(values)))
            tx.log(KIND, identity_id, "c")
        return Identity(identity_id, email, name, _tuple(reply_to), _tuple(bcc), text_signature,
                        html_signature)

    @writes
    def update(self, account_id: str, identity_id: str, **values: Any) -> None:
        """Set some of ``name``, ``reply_to``, ``bcc``, ``text_signature``, ``html_signature``. The default
        identity gets its row here the first time. ``NotFound`` for an unknown identity."""
        bad = set(values) - UPDATABLE
        if bad:
            raise ValueError(f"identities cannot change {', '.join(sorted(bad))}")
        t = identities_table
        default = self.default_id(account_id)
        with self._store.write(account_id) as tx:
            where = (t.c.id == identity_id, t.c.account_id == account_id)
            exists = tx.conn.execute(sa.select(t.c.id).where(*where)).first() is not None
            if not exists:
                if identity_id != default:
                    raise NotFound(identity_id)
                address = tx.conn.execute(
                    sa.select(accounts.c.address).where(accounts.c.id == account_id)).scalar_one()
                tx.conn.execute(sa.insert(t).values(
                    id=default, account_id=account_id, email=address, created_at=int(time.time())))
            if values:
                tx.conn.execute(sa.update(t).where(*where).values(**_columns(values)))
            tx.log(KIND, identity_id, "u")

    @writes
    def destroy(self, account_id: str, identity_id: str) -> None:
        """Delete an identity. ``Forbidden`` for the account's own (default) one, ``NotFound`` for none."""
        if identity_id == self.default_id(account_id):
            raise Forbidden("the identity of the account's own address cannot be deleted")
        t = identities_table
        with self._store.write(account_id) as tx:
            gone = tx.conn.execute(sa.delete(t).where(t.c.id == identity_id, t.c.account_id == account_id))
            if not gone.rowcount:
                raise NotFound(identity_id)
            tx.log(KIND, identity_id, "d")

    # -- alias writes ------------------------------------------------------------------------------------

    @writes
    def add_alias(self, account_id: str, alias: str) -> bool:
        """Give the account another address. False when it is already one of its aliases (nothing written).
        ``ValueError`` for a malformed address; ``AlreadyExists`` when it is an account's address or another
        account's alias; ``NotFound`` for no account."""
        value = normalize_alias(alias)
        a = aliases_table
        with self._store.engine.connect() as conn:  # adding it twice writes nothing and wakes nobody
            if conn.execute(sa.select(a.c.address).where(a.c.address == value, a.c.account_id == account_id)
                            ).first() is not None:
                return False
        try:
            with self._store.write(account_id) as tx:
                own = tx.conn.execute(
                    sa.select(accounts.c.address).where(accounts.c.id == account_id)).scalar()
                if own == value:
                    raise AlreadyExists(f"{value} is already the account's own address")
                if tx.conn.execute(sa.select(accounts.c.id).where(accounts.c.address == value)).first():
                    raise AlreadyExists(f"{value} is the address of another account")
                owner = tx.conn.execute(sa.select(a.c.account_id).where(a.c.address == value)).scalar()
                if owner == account_id:  # added meanwhile by a concurrent call: the same outcome
                    return False
                if owner is not None:
                    raise AlreadyExists(f"{value} is an alias of another account")
                tx.conn.execute(sa.insert(a).values(address=value, account_id=account_id,
                                                    created_at=int(time.time())))
        except sa.exc.IntegrityError as exc:  # another account took it at the same moment (PostgreSQL)
            raise AlreadyExists(f"{value} is an alias of another account") from exc
        return True

    @writes
    def remove_alias(self, account_id: str, alias: str) -> bool:
        """Take an alias away, with the identities that send from it (logged as destroyed). False when the
        account has no such alias (nothing written)."""
        try:
            value = normalize_alias(alias)
        except ValueError:
            return False
        a, t = aliases_table, identities_table
        with self._store.engine.connect() as conn:  # the common refusal takes no write lock
            if conn.execute(sa.select(a.c.address).where(a.c.address == value, a.c.account_id == account_id)
                            ).first() is None:
                return False
        with self._store.write(account_id) as tx:
            res = tx.conn.execute(sa.delete(a).where(a.c.address == value, a.c.account_id == account_id))
            if not res.rowcount:
                return False
            using = tx.conn.execute(sa.select(t.c.id).where(t.c.account_id == account_id, t.c.email == value))
            gone = [r.id for r in using if r.id != self.default_id(account_id)]
            if gone:
                tx.conn.execute(sa.delete(t).where(t.c.id.in_(gone)))
                tx.log_many(KIND, gone, "d")
        return True

    # -- helpers -----------------------------------------------------------------------------------------

    @staticmethod
    def _aliases(conn: sa.Connection, account_id: str) -> list[str]:
        a = aliases_table
        return list(conn.execute(sa.select(a.c.address).where(a.c.account_id == account_id)
                                 .order_by(a.c.address)).scalars())

    @staticmethod
    def _owns(conn: sa.Connection, account_id: str, email: str) -> bool:
        own = conn.execute(sa.select(accounts.c.address).where(accounts.c.id == account_id)).scalar()
        if own is None:
            raise NotFound(account_id)
        if email == own:
            return True
        a = aliases_table
        return conn.execute(sa.select(a.c.address).where(a.c.address == email, a.c.account_id == account_id)
                            ).first() is not None

    @staticmethod
    def _identity(row: sa.Row, own_address: str | None) -> Identity:
        return Identity(
            row.id,
            own_address or row.email,
            row.name,
            _recipients(row.reply_to),
            _recipients(row.bcc),
            row.text_signature,
            row.html_signature,
            may_delete=own_address is None,
        )


def _tuple(value: Sequence[Recipient] | None) -> tuple[Recipient, ...] | None:
    return None if value is None else tuple((n, e) for n, e in value)
