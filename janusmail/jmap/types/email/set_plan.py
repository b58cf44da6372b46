"""Email/set, Email/import and Email/copy: validating JMAP input and turning it into store writes.

Why separate from the adapter: the RFC 8621 §4.6 creation rules (one representation per header field, no
Content-* on the Email, partId xor blobId, exactly one text/plain textBody, ...) and the keyword/mailbox
patch language are pure checks over JSON; they live here as functions that raise SetError, testable without
a store. Blob contents and mailbox existence are looked up by the caller (``Store.mailboxes.unknown``) and passed in.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from janusmail.jmap import blobs as blobmod
from janusmail.jmap.engine import SetError
from janusmail.jmap.engine.patch import validate_patch
from janusmail.jmap.engine.types import JmapTypeError, is_creation_ref, is_id, parse_utc_date
from janusmail.mime.content import decode_part, find_part
from janusmail.mime.headers import parse_date
from janusmail.mime.parse import parse_message
from janusmail.mime.structure import scan_headers, text_of
from janusmail.store import keywords as kwmod
from janusmail.store.emails import EmailUpdate
from janusmail.store.model import InvalidKeyword, NotFound, StoreError, TooManyKeywords

from .props import BODY_PART_PROPERTIES, parse_header_prop

__all__ = [
    "CreatePlan",
    "keywords_value",
    "mailbox_ids_value",
    "parse_update",
    "plan_create",
    "read_blob",
    "read_blobs",
    "received_from_headers",
    "store_error_to_set_error",
]

#: Email properties a client may give on create (plus header:* ones).
CREATE_PROPERTIES = frozenset(
    {
        "mailboxIds",
        "keywords",
        "receivedAt",
        "messageId",
        "inReplyTo",
        "references",
        "sender",
        "from",
        "to",
        "cc",
        "bcc",
        "replyTo",
        "subject",
        "sentAt",
        "bodyStructure",
        "bodyValues",
        "textBody",
        "htmlBody",
        "attachments",
    }
)
#: Which header field each shortcut property writes.
SHORTCUT_FIELDS = {
    "messageId": "message-id",
    "inReplyTo": "in-reply-to",
    "references": "references",
    "sender": "sender",
    "from": "from",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "replyTo": "reply-to",
    "subject": "subject",
    "sentAt": "date",
}
#: Body part properties and the header field each one writes (for the duplicate rule).
_PART_FIELDS = {
    "type": "content-type",
    "charset": "content-type",
    "name": "content-type",
    "disposition": "content-disposition",
    "cid": "content-id",
    "language": "content-language",
    "location": "content-location",
}


def _invalid(prop: str, why: str) -> SetError:
    return SetError("invalidProperties", why, properties=[prop])


# -- keywords and mailboxIds ----------------------------------------------------------------------------------


def keywords_value(value: Any, prop: str = "keywords") -> list[str]:
    """A ``keywords`` object (String -> true) as a list of keywords; invalidProperties / tooManyKeywords."""
    if type(value) is not dict or not all(v is True for v in value.values()):
        raise _invalid(prop, "keywords must map keywords to true")
    try:
        kwmod.normalize(value.keys())
    except InvalidKeyword as exc:
        raise _invalid(prop, f"invalid or reserved keyword {exc.args[0]!r}") from None
    except TooManyKeywords:
        raise SetError("tooManyKeywords", f"at most {kwmod.MAX_KEYWORDS} keywords") from None
    return list(value)


def mailbox_ids_value(ctx: Any, value: Any, prop: str = "mailboxIds") -> list[str]:
    """A ``mailboxIds`` object (Id -> true, ``#creation`` refs resolved) as a list of mailbox ids."""
    if type(value) is not dict or not value or not all(v is True for v in value.values()):
        raise _invalid(prop, "mailboxIds must map at least one mailbox id to true")
    out = []
    for key in value:
        real = ctx.resolve_creation_id(key) if is_creation_ref(key) else key
        if not is_id(real):
            raise _invalid(prop, f"unknown mailbox {key!r}")
        out.append(real)
    return list(dict.fromkeys(out))


def received_at_value(value: Any, prop: str = "receivedAt") -> int:
    try:
        return int(parse_utc_date(value, prop).timestamp())
    except JmapTypeError as exc:
        raise _invalid(prop, str(exc)) from None


# -- update patches ---------------------------------------------------------------------------------------------


def parse_update(ctx: Any, patch: dict[str, Any]) -> EmailUpdate:
    """A PatchObject over keywords and mailboxIds (the only mutable Email properties) as an EmailUpdate."""
    upd = EmailUpdate()
    for tokens, value in validate_patch(patch):
        prop = tokens[0]
        path = "/".join(tokens)
        if prop not in ("keywords", "mailboxIds"):
            raise _invalid(prop, f"{prop} cannot be changed")
        if len(tokens) > 2:
            raise SetError("invalidPatch", f"{path!r} goes too deep")
        if len(tokens) == 1:
            if prop == "keywords":
                upd.keywords = keywords_value(value)
            else:
                upd.mailbox_ids = mailbox_ids_value(ctx, value)
            continue
        key = tokens[1]
        if value is not None and value is not True:
            raise _invalid(path, "a patched value must be true or null")
        if prop == "keywords":
            try:
                kwmod.validate(key)
            except InvalidKeyword:
                raise _invalid(path, f"invalid or reserved keyword {key!r}") from None
            (upd.add_keywords if value else upd.remove_keywords).append(key)
        else:
            real = ctx.resolve_creation_id(key) if is_creation_ref(key) else key
            if not is_id(real):
                raise _invalid(path, f"unknown mailbox {key!r}")
            (upd.add_mailboxes if value else upd.remove_mailboxes).append(real)
    return upd


def store_error_to_set_error(email_id: str, exc: StoreError) -> SetError:
    if isinstance(exc, TooManyKeywords):
        return SetError("tooManyKeywords", f"at most {kwmod.MAX_KEYWORDS} keywords")
    if isinstance(exc, InvalidKeyword):
        return _invalid("keywords", "invalid or reserved keyword")
    if isinstance(exc, NotFound):
        if exc.args and exc.args[0] == email_id:
            return SetError("notFound")
        return _invalid("mailboxIds", "unknown mailbox")
    if type(exc) is StoreError:  # the store's "an email must be in at least one mailbox"
        return _invalid("mailboxIds", str(exc) or "an email must be in at least one mailbox")
    return SetError(getattr(exc, "code", "forbidden") or "forbidden", str(exc) or None)


# -- blobs --------------------------------------------------------------------------------------------------------


def read_blobs(store: Any, account_id: str, blob_ids: Sequence[str]) -> dict[str, bytes | None]:
    """``read_blob`` of many ids in one read transaction, the whole stored blobs located by one query: an
    Email/import or Email/set of a hundred uploads costs one lookup, not a hundred connections and queries."""
    with store.shared_read():
        whole = store.blobs.locations(account_id, [b for b in blob_ids if is_id(b) and "_" not in b])
        out: dict[str, bytes | None] = {}
        for blob_id in blob_ids:
            loc = whole.get(blob_id)
            if loc is not None:
                out[blob_id] = store.blobs.read_location(loc)
            else:  # a body part (or not the account's at all: read_blob answers None)
                out[blob_id] = read_blob(store, account_id, blob_id) if "_" in blob_id else None
        return out


def read_blob(store: Any, account_id: str, blob_id: str) -> bytes | None:
    """Bytes of one of the account's blobs: a stored blob, a part of a stored message, or a part of an
    uploaded message (parsed on the fly, as no email row carries its cache). None when there is none."""
    data = blobmod.resolve_blob(store, account_id, blob_id)
    if data is not None:
        return data
    split = blobmod.split_part_blob_id(blob_id) if is_id(blob_id) else None
    if split is None:
        return None
    base, section = split
    try:
        raw = store.blobs.read(account_id, base)
    except NotFound:
        return None
    part = find_part(parse_message(raw), section)
    if part is None or "body_start" not in part:
        return None
    return decode_part(raw, part)


def received_from_headers(raw: bytes) -> int | None:
    """The date of the newest Received header field (the first one), for Email/import's default."""
    fields, _ = scan_headers(raw, 0, min(len(raw), 1_000_000), top=True)
    for name, value in fields:
        if name.lower() == b"received":
            text = text_of(value)
            if ";" in text:
                parsed = parse_date(text.rsplit(";", 1)[1])
                if parsed is not None:
                    return parsed[0]
            return None
    return None


# -- create ---------------------------------------------------------------------------------------------------------


@dataclass
class CreatePlan:
    """A validated Email create: what to compose (``email``, with ``blob:`` placeholders) and where."""

    mailbox_ids: list[str]
    keywords: list[str]
    received_at: int | None
    email: dict[str, Any]
    #: (blob id, the compose part dict whose ``content`` takes its bytes, property path for errors)
    blob_parts: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)

    def blob_ids(self) -> list[str]:
        return list(dict.fromkeys(b for b, _, _ in self.blob_parts))

    def fill(self, contents: dict[str, bytes]) -> None:
        """Put each referenced blob's bytes into its parts (every id must be in ``contents``)."""
        for blob_id, part, _ in self.blob_parts:
            part["content"] = contents[blob_id]


def _header_names(obj: dict[str, Any], where: str, part: bool) -> dict[str, str]:
    """Header field name -> the property that sets it; invalidProperties on duplicates and bad forms."""
    seen: dict[str, str] = {}

    def add(name: str, prop: str) -> None:
        # type/charset/name all write Content-Type: only a header:* property duplicates them
        both_fields = part and seen.get(name, "")[len(where):] in _PART_FIELDS and prop[len(where):] in _PART_FIELDS
        if name in seen and not both_fields:
            raise SetError(
                "invalidProperties", f"header field {name} is given twice", properties=[seen[name], prop]
            )
        seen.setdefault(name, prop)

    for key, value in obj.items():
        if key.startswith("header:"):
            hp = parse_header_prop(key)
            if hp is None:
                raise _invalid(where + key, "invalid header property or form for this field")
            if hp.all and type(value) is not list:
                raise _invalid(where + key, ":all takes a list")
            add(hp.name.lower(), where + key)
        elif not part and key in SHORTCUT_FIELDS:
            add(SHORTCUT_FIELDS[key], where + key)
        elif part and key in _PART_FIELDS and obj.get(key) is not None:
            add(_PART_FIELDS[key], where + key)
    return seen


def _check_part(
    part: Any, where: str, body_values: dict[str, Any], top_headers: dict[str, str], plan: CreatePlan,
    depth: int = 0,
) -> dict[str, Any]:
    """One EmailBodyPart of a create, returned in compose's form (content placeholders for blobs)."""
    if type(part) is not dict:
        raise _invalid(where.rstrip("/"), "a body part must be an object")
    if depth > 32:
        raise _invalid(where.rstrip("/"), "body structure nested too deeply")
    unknown = sorted(
        k for k in part if k not in BODY_PART_PROPERTIES and not k.startswith("header:")
    )
    if unknown:
        raise _invalid(where + unknown[0], "unknown body part property")
    if "headers" in part:
        raise _invalid(where + "headers", "set header fields as header:* properties")
    names = _header_names(part, where, part=True)
    for name, prop in names.items():
        if name == "content-transfer-encoding":
            raise _invalid(prop, "the server chooses the Content-Transfer-Encoding")
        if name in top_headers and not name.startswith("content-"):
            raise SetError(
                "invalidProperties", f"{name} is already set on the Email", properties=[top_headers[name], prop]
            )
    for key in ("type", "charset", "name", "disposition", "cid", "location"):
        if part.get(key) is not None and type(part[key]) is not str:
            raise _invalid(where + key, f"{key} must be a string")
    ptype = (part.get("type") or "text/plain").lower()
    out = {k: v for k, v in part.items() if k not in ("partId", "blobId", "size", "subParts")}
    if ptype.startswith("multipart/"):
        if part.get("partId") is not None or part.get("blobId") is not None:
            raise _invalid(where + "type", "a multipart part has no content of its own")
        subs = part.get("subParts")
        if type(subs) is not list or not subs:
            raise _invalid(where + "subParts", "a multipart part needs subParts")
        out["subParts"] = [
            _check_part(s, f"{where}subParts/{i}/", body_values, top_headers, plan, depth + 1)
            for i, s in enumerate(subs)
        ]
        return out
    if part.get("subParts") is not None:
        raise _invalid(where + "subParts", "only multipart parts have subParts")
    part_id, blob_id = part.get("partId"), part.get("blobId")
    if (part_id is None) == (blob_id is None):
        raise _invalid(where + "partId", "give either partId or blobId")
    if part_id is not None:
        if type(part_id) is not str or part_id not in body_values:
            raise _invalid(where + "partId", "partId must name an entry of bodyValues")
        if part.get("charset") is not None:
            raise _invalid(where + "charset", "charset must be omitted with partId")
        if part.get("size") is not None:
            raise _invalid(where + "size", "size must be omitted with partId")
        out["content"] = body_values[part_id]["value"].encode("utf-8")
        out["charset"] = None
    else:
        if not is_id(blob_id):
            raise _invalid(where + "blobId", "blobId must be an Id")
        out["content"] = None
        plan.blob_parts.append((blob_id, out, where + "blobId"))
    out["type"] = ptype
    return out


def plan_create(ctx: Any, obj: dict[str, Any]) -> CreatePlan:
    """Validate an Email create object (RFC 8621 §4.6); SetError on the first violation."""
    unknown = sorted(k for k in obj if k not in CREATE_PROPERTIES and not k.startswith("header:"))
    if unknown:
        raise SetError("invalidProperties", "these properties cannot be set", properties=unknown)
    if "mailboxIds" not in obj:
        raise _invalid("mailboxIds", "an Email must be in at least one mailbox")
    plan = CreatePlan(
        mailbox_ids=mailbox_ids_value(ctx, obj["mailboxIds"]),
        keywords=keywords_value(obj["keywords"]) if obj.get("keywords") is not None else [],
        received_at=received_at_value(obj["receivedAt"]) if obj.get("receivedAt") is not None else None,
        email={},
    )
    top = _header_names(obj, "", part=False)
    for name, prop in top.items():
        if name.startswith("content-"):
            raise _invalid(prop, "Content-* header fields belong on body parts")
    body_values = obj.get("bodyValues") or {}
    if type(body_values) is not dict:
        raise _invalid("bodyValues", "bodyValues must be an object")
    for pid, bv in body_values.items():
        if (
            type(bv) is not dict
            or type(bv.get("value")) is not str
            or bv.get("isEncodingProblem", False) is not False
            or bv.get("isTruncated", False) is not False
            or set(bv) - {"value", "isEncodingProblem", "isTruncated"}
        ):
            raise _invalid(f"bodyValues/{pid}", "a body value is {value, isEncodingProblem: false, ...}")
    email = {k: v for k, v in obj.items() if k not in ("mailboxIds", "keywords", "receivedAt", "bodyValues")}
    if "bodyStructure" in obj:
        if any(k in obj for k in ("textBody", "htmlBody", "attachments")):
            raise _invalid("bodyStructure", "give bodyStructure or textBody/htmlBody/attachments, not both")
        email["bodyStructure"] = _check_part(obj["bodyStructure"], "bodyStructure/", body_values, top, plan)
    else:
        for prop, want in (("textBody", "text/plain"), ("htmlBody", "text/html")):
            value = obj.get(prop)
            if value is None:
                email.pop(prop, None)
                continue
            if type(value) is not list or len(value) != 1:
                raise _invalid(prop, f"{prop} must hold exactly one part")
            given = value[0]
            if type(given) is dict and given.get("type") is None:
                given = {**given, "type": want}  # the list says what the part is
            part = _check_part(given, f"{prop}/0/", body_values, top, plan)
            if part["type"] != want:
                raise _invalid(f"{prop}/0/type", f"{prop} must be {want}")
            email[prop] = [part]
        atts = obj.get("attachments")
        if atts is not None:
            if type(atts) is not list:
                raise _invalid("attachments", "attachments must be a list")
            email["attachments"] = [
                _check_part(a, f"attachments/{i}/", body_values, top, plan) for i, a in enumerate(atts)
            ]
        else:
            email.pop("attachments", None)
    plan.email = email
    return plan


def now() -> int:
    return int(time.time())
