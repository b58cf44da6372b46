"""PushSubscription/get and PushSubscription/set (RFC 8620 §7.2) over ``store.push_subscriptions``.

Not a standard /get and /set: a PushSubscription belongs to the authenticated user, not to an account, so the
methods take no ``accountId`` and carry no state (§7.2.1-7.2.2). The verification code is never returned by
/get (only the push URL learns it, from the PushVerification POST); ``url`` and ``keys`` are write-once; a
client updates ``verificationCode`` (which must equal the one POSTed), ``expires`` (clamped to seven days) and
``types``. Delivery is janusmail/jmap/webpush.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from janusmail.jmap.context import JmapContext, run_store
from janusmail.jmap.engine import CORE, Engine, MethodError
from janusmail.jmap.engine.types import format_utc_date, parse_utc_date
from janusmail.jmap.push import PUSH_TYPES
from janusmail.jmap.webpush import BadPushUrl, check_keys, check_url
from janusmail.store.model import NotFound, StorageUnavailable
from janusmail.store.push_subscriptions import KEEP, PushSubscription, TooManySubscriptions, WrongCode

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.jmap.webpush import PushDispatcher

__all__ = ["register"]

PROPERTIES = frozenset({"id", "deviceClientId", "url", "keys", "verificationCode", "expires", "types"})
MAX_DEVICE_ID = 255
#: Given at creation, never returned by /get (RFC 8620 §7.2.1).
WRITE_ONLY = frozenset({"url", "keys"})


_utc = format_utc_date  # the store keeps epoch seconds; JMAP shows UTCDates


def _parse_utc(value: Any) -> int:
    """A UTCDate (RFC 8620 §1.4) as epoch seconds; ValueError (JmapTypeError) for anything else."""
    return int(parse_utc_date(value, "expires").timestamp())


def _types(value: Any) -> list[str] | None:
    if value is None:
        return None
    if type(value) is not list or not all(type(t) is str for t in value):
        raise ValueError("types must be null or a list of type names")
    return [t for t in value if t in PUSH_TYPES]  # unknown names: types this server does not push


def to_record(sub: PushSubscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "deviceClientId": sub.device_client_id,
        "url": sub.url,
        "keys": {"p256dh": sub.keys[0], "auth": sub.keys[1]} if sub.keys else None,
        "verificationCode": None,  # never echoed (§7.2.1): the URL's owner proves itself by knowing it
        "expires": _utc(sub.expires),
        "types": list(sub.types) if sub.types is not None else None,
    }


def _invalid(prop: str, why: str) -> dict[str, Any]:
    return {"type": "invalidProperties", "description": why, "properties": [prop]}


def _dispatcher(ctx: JmapContext) -> PushDispatcher:
    app = ctx.app
    if app is None or app.push is None:
        raise MethodError("serverUnavailable", description="push delivery is not running")
    return app.push  # type: ignore[no-any-return]


async def push_get(ctx: JmapContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if "accountId" in args:
        raise MethodError("invalidArguments", description="PushSubscription/get takes no accountId")
    ids = args.get("ids")
    if ids is not None and (type(ids) is not list or not all(type(i) is str for i in ids)):
        raise MethodError("invalidArguments", description="ids must be null or a list of ids")
    props = args.get("properties")
    if props is not None and (type(props) is not list or not set(props) <= PROPERTIES):
        raise MethodError("invalidArguments", description="properties must be null or known property names")
    if props is not None and set(props) & WRITE_ONLY:
        # RFC 8620 §7.2.1: url and keys never leave the server again (whoever holds some credential of the
        # user could otherwise read another device's push endpoint and decryption keys)
        raise MethodError("forbidden", description="url and keys cannot be fetched")
    if ids is not None and len(ids) > ctx.limits.max_objects_in_get:
        raise MethodError("requestTooLarge")
    found = await run_store(ctx, ctx.store.push_subscriptions.list, ctx.account_id, ids)
    wanted = set(props) | {"id"} if props is not None else PROPERTIES - WRITE_ONLY
    records = [{k: v for k, v in to_record(s).items() if k in wanted} for s in found]
    seen = {s.id for s in found}
    not_found = [i for i in dict.fromkeys(ids) if i not in seen] if ids is not None else []
    return [("PushSubscription/get", {"list": records, "notFound": not_found})]


async def push_set(ctx: JmapContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    for key in ("accountId", "ifInState"):
        if key in args:
            raise MethodError("invalidArguments", description=f"PushSubscription/set takes no {key}")
    create = args.get("create") or {}
    update = args.get("update") or {}
    destroy = args.get("destroy") or []
    if type(create) is not dict or type(update) is not dict or type(destroy) is not list:
        raise MethodError("invalidArguments", description="create, update and destroy have the wrong type")
    if len(create) + len(update) + len(destroy) > ctx.limits.max_objects_in_set:
        raise MethodError("requestTooLarge")
    out: dict[str, Any] = {
        "created": None, "updated": None, "destroyed": None,
        "notCreated": None, "notUpdated": None, "notDestroyed": None,
    }  # fmt: skip
    store = ctx.store.push_subscriptions
    dispatcher = _dispatcher(ctx) if create else None  # before storing one that could never be verified
    for cid, obj in create.items():
        try:
            made = await _create(ctx, obj)
        except _Refused as exc:
            out["notCreated"] = {**(out["notCreated"] or {}), cid: exc.error}
            continue
        ctx.record_creation(cid, made.id)
        assert dispatcher is not None
        dispatcher.verify_soon(made)
        out["created"] = {**(out["created"] or {}), cid: {"id": made.id, "keys": None if made.keys is None else
                                                          to_record(made)["keys"], "expires": _utc(made.expires)}}
    for sid, patch in update.items():
        try:
            changed = await _update(ctx, sid, patch)
        except _Refused as exc:
            out["notUpdated"] = {**(out["notUpdated"] or {}), sid: exc.error}
            continue
        out["updated"] = {**(out["updated"] or {}), sid: changed}
    for sid in destroy:
        sid = ctx.resolve_creation_id(sid) if type(sid) is str else sid
        try:
            if type(sid) is not str:
                raise NotFound
            await run_store(ctx, store.destroy, ctx.account_id, sid)
        except NotFound:
            out["notDestroyed"] = {**(out["notDestroyed"] or {}), str(sid): {"type": "notFound"}}
            continue
        except StorageUnavailable:
            raise MethodError("serverUnavailable") from None
        out["destroyed"] = [*(out["destroyed"] or []), sid]
    return [("PushSubscription/set", out)]


class _Refused(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("description", ""))
        self.error = error


async def _create(ctx: JmapContext, obj: Any) -> PushSubscription:
    if type(obj) is not dict:
        raise _Refused({"type": "invalidArguments", "description": "a PushSubscription is an object"})
    unknown = set(obj) - PROPERTIES
    if unknown:
        raise _Refused(_invalid(sorted(unknown)[0], "unknown property"))
    if obj.get("id") is not None or obj.get("verificationCode") is not None:
        prop = "id" if obj.get("id") is not None else "verificationCode"
        raise _Refused(_invalid(prop, f"{prop} is set by the server"))
    device = obj.get("deviceClientId")
    if type(device) is not str or not device or len(device) > MAX_DEVICE_ID:
        raise _Refused(_invalid("deviceClientId", "deviceClientId is a string of 1-255 characters"))
    try:
        url = check_url(obj.get("url"))
    except BadPushUrl as exc:
        raise _Refused(_invalid("url", str(exc))) from None
    try:
        keys = check_keys(obj.get("keys"))
    except ValueError as exc:
        raise _Refused(_invalid("keys", str(exc))) from None
    try:
        expires = _parse_utc(obj["expires"]) if obj.get("expires") is not None else None
    except ValueError as exc:
        raise _Refused(_invalid("expires", str(exc))) from None
    try:
        types = _types(obj.get("types"))
    except ValueError as exc:
        raise _Refused(_invalid("types", str(exc))) from None
    store = ctx.store.push_subscriptions
    try:
        principal = ctx.principal
        if principal.expires_at is not None:  # a bearer token: the subscription ends with it (RFC 8620 §7.2)
            expires = min(expires, principal.expires_at) if expires is not None else principal.expires_at
        made_by = (principal.method, principal.credential_id if principal.method == "app_password" else None)
        return await run_store(ctx, store.create, ctx.account_id, device, url, keys=keys, expires=expires,
                               types=types, credential=made_by)
    except TooManySubscriptions as exc:
        raise _Refused({"type": "overQuota", "description": str(exc)}) from None
    except StorageUnavailable:
        raise MethodError("serverUnavailable") from None


async def _update(ctx: JmapContext, sid: str, patch: Any) -> dict[str, Any] | None:
    """Apply a patch; what the server set differently from the patch (the clamped ``expires``: RFC 8620
    §7.2.2 has the server return the value it chose), or None."""
    if type(patch) is not dict:
        raise _Refused({"type": "invalidPatch", "description": "a patch is an object"})
    code: str | None = None
    expires: int | None = None
    types: Any = KEEP
    for prop, value in patch.items():
        if prop == "verificationCode":
            if type(value) is not str:
                raise _Refused(_invalid(prop, "verificationCode must be the string POSTed to the URL"))
            code = value
        elif prop == "expires":
            try:
                expires = _parse_utc(value) if value is not None else 2**62  # null: as long as allowed
            except ValueError as exc:
                raise _Refused(_invalid(prop, str(exc))) from None
        elif prop == "types":
            try:
                types = _types(value)
            except ValueError as exc:
                raise _Refused(_invalid(prop, str(exc))) from None
        elif prop in PROPERTIES:
            raise _Refused(_invalid(prop.split("/")[0], f"{prop} cannot be changed"))
        else:
            raise _Refused({"type": "invalidPatch", "description": f"unknown property {prop}"})
    store = ctx.store.push_subscriptions
    try:
        sub = await run_store(ctx, store.update, ctx.account_id, sid, verification_code=code, expires=expires,
                              types=types)
    except NotFound:
        raise _Refused({"type": "notFound"}) from None
    except WrongCode as exc:
        raise _Refused(_invalid("verificationCode", str(exc))) from None
    except StorageUnavailable:
        raise MethodError("serverUnavailable") from None
    if "expires" in patch and patch["expires"] != _utc(sub.expires):
        return {"expires": _utc(sub.expires)}
    return None


def register(engine: Engine) -> None:
    engine.register("PushSubscription/get", CORE, push_get)  # type: ignore[arg-type]
    engine.register("PushSubscription/set", CORE, push_set)  # type: ignore[arg-type]
