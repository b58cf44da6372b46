"""JMAP VacationResponse (RFC 8621 §8): VacationResponse/get and /set over ``store.vacation``.

Why this shape: the account has exactly one VacationResponse, id ``singleton``, which always exists (the store
derives it, disabled, until it is first changed). /get returns it for ``ids: null`` or ``["singleton"]``; /set
only updates it: a create or a destroy is refused with the ``singleton`` SetError the RFC names, an update of
any other id is ``notFound``. This module checks the JMAP shapes (Boolean, UTCDate|null, String|null) and maps
them to the store's fields (dates as epoch seconds). The state is the modseq of the newest update (change kind
``VacationResponse``). The replies themselves are sent on delivery (janusmail/smtp/vacation.py).

The capability ``urn:ietf:params:jmap:vacationresponse`` has empty objects at both levels (RFC 8621 §1.3.3);
registering the methods under it is what lists it in the Session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from janusmail.jmap.context import run_store
from janusmail.jmap.engine import Call, Engine, SetError, TypeAdapter, register_standard, validate_patch
from janusmail.jmap.engine.types import JmapTypeError, format_utc_date, parse_utc_date
from janusmail.jmap.session_resource import VACATION
from janusmail.store.model import NotFound, StorageUnavailable
from janusmail.store.vacation import KIND, SINGLETON, VacationResponse

__all__ = ["VACATION", "VacationResponseAdapter", "register", "to_record"]

#: JMAP property -> store field.
FIELDS = {
    "isEnabled": "is_enabled",
    "fromDate": "from_date",
    "toDate": "to_date",
    "subject": "subject",
    "textBody": "text_body",
    "htmlBody": "html_body",
}
MAX_SUBJECT = 1_000
MAX_BODY = 1_000_000


def to_record(v: VacationResponse) -> dict[str, Any]:
    return {
        "id": SINGLETON,
        "isEnabled": v.is_enabled,
        "fromDate": None if v.from_date is None else format_utc_date(v.from_date),
        "toDate": None if v.to_date is None else format_utc_date(v.to_date),
        "subject": v.subject,
        "textBody": v.text_body,
        "htmlBody": v.html_body,
    }


def _bad(prop: str, why: str) -> SetError:
    return SetError("invalidProperties", why, properties=[prop])


def _value(prop: str, value: Any) -> Any:
    """A client's value for ``prop``, checked and in the store's form."""
    if prop == "isEnabled":
        if type(value) is not bool:
            raise _bad(prop, "isEnabled must be true or false")
        return value
    if value is None:
        return None
    if prop in ("fromDate", "toDate"):
        try:
            return int(parse_utc_date(value, prop).timestamp())
        except JmapTypeError as exc:
            raise _bad(prop, str(exc)) from None
    limit = MAX_SUBJECT if prop == "subject" else MAX_BODY
    if type(value) is not str:
        raise _bad(prop, f"{prop} must be a string or null")
    if len(value) > limit:
        raise _bad(prop, f"{prop} is longer than {limit} characters")
    if prop == "subject" and any(c in value for c in "\r\n\x00"):
        raise _bad(prop, "subject must be one line")
    if "\x00" in value:
        raise _bad(prop, f"{prop} must not contain NUL")
    return value


class VacationResponseAdapter(TypeAdapter):
    properties = frozenset({"id", *FIELDS})
    server_set_properties = frozenset({"id"})

    async def state(self, call: Call) -> int:
        return await run_store(call.ctx, call.ctx.store.changes.kind_state, call.account_id, KIND)

    async def get(
        self, call: Call, ids: Sequence[str] | None, properties: frozenset[str], limit: int
    ) -> list[dict[str, Any]]:
        if ids is not None and SINGLETON not in ids:
            return []
        current = await run_store(call.ctx, call.ctx.store.vacation.get, call.account_id)
        return [to_record(current)][:limit]

    async def create(self, call: Call, creation_id: str, obj: dict[str, Any]) -> dict[str, Any]:
        raise SetError("singleton", "the account has exactly one VacationResponse: update 'singleton'")

    async def destroy(self, call: Call, id: str) -> None:
        raise SetError("singleton", "the account's VacationResponse cannot be destroyed")

    async def update(self, call: Call, id: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        if id != SINGLETON:
            raise SetError("notFound")
        values: dict[str, Any] = {}
        for tokens, value in validate_patch(patch):
            prop = tokens[0]
            if prop == "id":  # server-set: only its own value may be echoed
                if len(tokens) > 1 or value != SINGLETON:
                    raise _bad("id", "id is server-set")
                continue
            if prop not in FIELDS:
                raise _bad(prop, f"{prop} is no VacationResponse property")
            if len(tokens) > 1:
                raise SetError("invalidPatch", f"{prop} is replaced whole, not patched inside")
            values[FIELDS[prop]] = _value(prop, value)
        if values:
            try:
                await run_store(call.ctx, call.ctx.store.vacation.update, call.account_id, **values)
            except StorageUnavailable:
                raise
            except NotFound:
                raise SetError("notFound") from None
        return None


def register(engine: Engine) -> None:
    register_standard(engine, "VacationResponse", VACATION, VacationResponseAdapter(), ("get", "set"))
