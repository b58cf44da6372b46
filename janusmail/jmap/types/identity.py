"""JMAP Identity (RFC 8621 §6): Identity/get, Identity/changes and Identity/set over ``store.identities``.

Why this shape: an identity is a small record the store keeps (janusmail/store/identities.py holds the rules:
the account's own identity exists from the start and cannot be deleted; others only for addresses the
account owns, its address or an alias given with ``janusmail alias add``). This module checks the JMAP shapes
(strings, EmailAddress lists, the immutable ``email``, the server-set ``mayDelete``) and maps the store's
refusals to SetErrors: an address the account does not own is ``forbiddenFrom`` (RFC 8621 §6.3).

The capability is ``urn:ietf:params:jmap:submission``, shared with EmailSubmission: the Session advertises it
with the account capabilities the outbound queue really has (``session_resource.submission_account_capability``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from janusmail.jmap.context import run_store
from janusmail.jmap.engine import (
    Call,
    ChangeEntry,
    ChangeLog,
    Engine,
    SetError,
    TypeAdapter,
    register_standard,
    validate_patch,
)
from janusmail.jmap.engine.patch import server_set_mismatches
from janusmail.jmap.session_resource import SUBMISSION
from janusmail.store.identities import Identity
from janusmail.store.model import Forbidden, NotFound, StorageUnavailable

__all__ = ["SUBMISSION", "IdentityAdapter", "register", "to_record"]

_OPS = {"c": "created", "u": "updated", "d": "destroyed"}
#: JMAP property -> (store field, default a create or a null in a patch gives it).
FIELDS: dict[str, tuple[str, Any]] = {
    "name": ("name", ""),
    "replyTo": ("reply_to", None),
    "bcc": ("bcc", None),
    "textSignature": ("text_signature", ""),
    "htmlSignature": ("html_signature", ""),
}
MAX_NAME = 1_000
MAX_SIGNATURE = 100_000
MAX_RECIPIENTS = 100
#: What an EmailAddress's email may look like here: one ``@``, no spaces, brackets or controls (it will be a
#: header field of the mail sent with the identity).
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]+@[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _recipients_record(value: tuple[tuple[str | None, str], ...] | None) -> list[dict[str, Any]] | None:
    return None if value is None else [{"name": n, "email": e} for n, e in value]


def to_record(identity: Identity) -> dict[str, Any]:
    return {
        "id": identity.id,
        "name": identity.name,
        "email": identity.email,
        "replyTo": _recipients_record(identity.reply_to),
        "bcc": _recipients_record(identity.bcc),
        "textSignature": identity.text_signature,
        "htmlSignature": identity.html_signature,
        "mayDelete": identity.may_delete,
    }


# -- validation -------------------------------------------------------------------------------------------


def _bad(prop: str, why: str) -> SetError:
    return SetError("invalidProperties", why, properties=[prop])


def _text(prop: str, value: Any, limit: int, *, single_line: bool) -> str:
    if type(value) is not str:
        raise _bad(prop, f"{prop} must be a string")
    if len(value) > limit:
        raise _bad(prop, f"{prop} is longer than {limit} characters")
    if single_line and _CONTROL.search(value):
        raise _bad(prop, f"{prop} must not contain control characters")
    return value


def _recipients(prop: str, value: Any) -> list[tuple[str | None, str]] | None:
    """An ``EmailAddress[]|null`` (RFC 8621 §4.1.2.3) as (name, email) pairs."""
    if value is None:
        return None
    if type(value) is not list or len(value) > MAX_RECIPIENTS:
        raise _bad(prop, f"{prop} must be null or a list of at most {MAX_RECIPIENTS} EmailAddress objects")
    out = []
    for i, item in enumerate(value):
        where = f"{prop}/{i}"
        if type(item) is not dict or not set(item) <= {"name", "email"} or "email" not in item:
            raise _bad(where, "an EmailAddress is {name: String|null, email: String}")
        name, email = item.get("name"), item["email"]
        if name is not None:
            _text(where + "/name", name, MAX_NAME, single_line=True)
        if type(email) is not str or len(email) > 320 or not _EMAIL.fullmatch(email):
            raise _bad(where + "/email", "not an email address")
        out.append((name, email))
    return out


def _value(prop: str, value: Any) -> Any:
    """A client's value for a settable property, checked; null means the property's default."""
    field, default = FIELDS[prop]
    if value is None:
        return default
    if prop == "name":
        return _text(prop, value, MAX_NAME, single_line=True)
    if prop in ("replyTo", "bcc"):
        return _recipients(prop, value)
    return _text(prop, value, MAX_SIGNATURE, single_line=False)


def _store_error(exc: Exception) -> SetError:
    if isinstance(exc, StorageUnavailable):  # the whole method is serverUnavailable
        raise exc
    if isinstance(exc, NotFound):
        return SetError("notFound")
    if isinstance(exc, Forbidden):
        return SetError("forbidden", str(exc) or None)
    raise exc


def _change_log(store: Any, account_id: str, after: int, skip: int, limit: int) -> ChangeLog:
    current = store.changes.kind_state(account_id, "Identity")  # before the rows: never newer than them
    rows = store.changes.since(account_id, "Identity", after, skip + limit)[skip:]
    return ChangeLog([ChangeEntry(r.modseq, r.object_id, _OPS.get(r.op, "updated")) for r in rows], current)


class IdentityAdapter(TypeAdapter):
    properties = frozenset(
        {"id", "name", "email", "replyTo", "bcc", "textSignature", "htmlSignature", "mayDelete"}
    )
    server_set_properties = frozenset({"id", "mayDelete"})
    create_may_echo = frozenset({"mayDelete"})

    async def state(self, call: Call) -> int:
        return await run_store(call.ctx, call.ctx.store.changes.kind_state, call.account_id, "Identity")

    async def get(
        self, call: Call, ids: Sequence[str] | None, properties: frozenset[str], limit: int
    ) -> list[dict[str, Any]]:
        store = call.ctx.store
        wanted = None if ids is None else list(ids)
        found = await run_store(call.ctx, store.identities.list, call.account_id, wanted)
        return [to_record(i) for i in found[:limit]]

    async def change_log(self, call: Call, after_modseq: int, skip: int, limit: int) -> ChangeLog:
        store = call.ctx.store
        return await run_store(call.ctx, _change_log, store, call.account_id, after_modseq, skip, limit)

    # -- /set --------------------------------------------------------------------------------------------

    async def create(self, call: Call, creation_id: str, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("mayDelete", True) is not True:  # a created identity may always be deleted
            raise _bad("mayDelete", "mayDelete is server-set (true for a created identity)")
        email = obj.get("email")
        if type(email) is not str or not email:
            raise _bad("email", "email is required: the address this identity sends from")
        values = {FIELDS[p][0]: _value(p, obj[p]) for p in FIELDS if p in obj}
        store = call.ctx.store
        try:
            made = await run_store(call.ctx, store.identities.create, call.account_id, email, **values)
        except Forbidden:
            raise SetError("forbiddenFrom", "this account may not send from that address") from None
        except (NotFound, StorageUnavailable) as exc:
            raise _store_error(exc) from None
        record = to_record(made)
        # Server-set and defaulted properties go back to the client (RFC 8620 §5.3 "created").
        return {k: v for k, v in record.items() if k not in obj or obj[k] != v}

    async def update(self, call: Call, id: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        store = call.ctx.store
        found = await run_store(call.ctx, store.identities.list, call.account_id, [id])
        if not found:  # an unknown record is notFound whatever its patch says
            raise SetError("notFound")
        current = to_record(found[0])
        values: dict[str, Any] = {}
        echoes: list[str] = []
        for tokens, value in validate_patch(patch):
            prop = tokens[0]
            if len(tokens) > 1:
                raise SetError("invalidPatch", f"{prop} is replaced whole, not patched inside")
            if prop in ("email", "mayDelete"):  # immutable / server-set: only the value it has is accepted
                echoes.extend(server_set_mismatches(prop, value, current[prop]))
            elif prop in FIELDS:
                values[FIELDS[prop][0]] = _value(prop, value)
            else:
                raise _bad(prop, f"{prop} cannot be changed")
        if echoes:
            why = "email and mayDelete cannot be changed"
            raise SetError("invalidProperties", why, properties=sorted(echoes))
        if values:
            try:
                await run_store(call.ctx, store.identities.update, call.account_id, id, **values)
            except (NotFound, Forbidden, StorageUnavailable) as exc:
                raise _store_error(exc) from None
        return None

    async def destroy(self, call: Call, id: str) -> None:
        try:
            await run_store(call.ctx, call.ctx.store.identities.destroy, call.account_id, id)
        except Forbidden:
            why = "the identity of the account's own address cannot be deleted"
            raise SetError("forbidden", why) from None
        except (NotFound, StorageUnavailable) as exc:
            raise _store_error(exc) from None


def register(engine: Engine) -> None:
    register_standard(engine, "Identity", SUBMISSION, IdentityAdapter(), ("get", "changes", "set"))
