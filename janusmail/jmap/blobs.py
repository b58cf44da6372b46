"""JMAP binary data (RFC 8620 §6): blob ids for whole blobs and for email body parts, and Blob/copy.

Blob ids come in two shapes, both opaque to clients:

* a stored blob (an upload, or a message's raw bytes): the store's blob id, ``G...`` (``[A-Za-z0-9]``);
* a body part of a stored message: ``<message blob id>_<IMAP section with "." replaced by "_">``, e.g.
  ``Gabc..._1_2`` is part 1.2 of the message whose raw blob is ``Gabc...``. Store ids never contain ``_``,
  so the split is unambiguous. The part's bytes are the transfer-decoded body (base64/QP undone), read by
  the offsets in the message's MIME cache without re-parsing the message.

Why derived ids rather than stored ones: a part blob costs nothing until someone downloads it, identical
messages share a blob, and the id is stable across Email/get calls. ``part_blob_id`` mints them and
``resolve_blob`` reads either kind; the Email type and the download route both use these two.

Everything here except ``register`` is synchronous and meant for the store's worker threads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from janusmail.jmap.engine import CORE, Engine, MethodError, SetError, invalid_arguments
from janusmail.jmap.engine.args import check_known_arguments, read_id
from janusmail.jmap.engine.types import is_id
from janusmail.mime.content import decode_part, find_part
from janusmail.store.model import BlobLocation

__all__ = [
    "Located",
    "locate",
    "part_blob_id",
    "read_located",
    "register",
    "resolve_blob",
    "split_part_blob_id",
]

_SECTION = re.compile(r"[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8}){0,63}")


def part_blob_id(message_blob_id: str, section: str) -> str:
    """The blob id of body part ``section`` (IMAP numbering, e.g. "1.2") of the message stored as
    ``message_blob_id``. The root ("" section) is the message itself: its blob id is unchanged."""
    if not section:
        return message_blob_id
    return f"{message_blob_id}_{section.replace('.', '_')}"


def split_part_blob_id(blob_id: str) -> tuple[str, str] | None:
    """``(message blob id, section)`` for a part blob id, None for anything else."""
    if type(blob_id) is not str:
        return None
    base, sep, rest = blob_id.partition("_")
    if not sep or not base:
        return None
    section = rest.replace("_", ".")
    if not _SECTION.fullmatch(section):
        return None
    return base, section


@dataclass(frozen=True, slots=True)
class Located:
    """Where a blob's bytes are. ``part`` is None for a whole stored blob; else the MIME cache part whose
    transfer-decoded body is the blob (its ``size`` is then unknown until decoded: None)."""

    blob_id: str
    location: BlobLocation
    part: dict[str, Any] | None
    size: int | None
    type: str | None


def _part_of(store: Any, account_id: str, message_blob_id: str, section: str) -> dict[str, Any] | None:
    cache = store.emails.message_cache(account_id, message_blob_id)
    if cache is None:
        return None
    part = find_part(cache, section)
    if part is None or "body_start" not in part or "body_end" not in part:
        return None
    return part


def _mime_type(part: dict[str, Any]) -> str | None:
    main, sub = part.get("type"), part.get("subtype")
    if isinstance(main, str) and isinstance(sub, str):
        return f"{main}/{sub}".lower()
    return None


def locate(store: Any, account_id: str, blob_id: str) -> Located | None:
    """Find one of the account's blobs (whole or part); None for unknown ids and other accounts' blobs."""
    if not is_id(blob_id):
        return None
    split = split_part_blob_id(blob_id)
    if split is None:
        if "_" in blob_id:
            return None
        loc = store.blobs.location(account_id, blob_id)
        return Located(blob_id, loc, None, loc.size, loc.type) if loc else None
    base, section = split
    loc = store.blobs.location(account_id, base)
    if loc is None:
        return None
    part = _part_of(store, account_id, base, section)
    if part is None or not 0 <= part["body_start"] <= part["body_end"] <= loc.size:
        return None
    return Located(blob_id, loc, part, None, _mime_type(part))


def read_located(store: Any, located: Located, start: int = 0, end: int | None = None) -> bytes:
    """Bytes ``[start:end]`` of a located blob (a part is decoded whole first, then sliced)."""
    if located.part is None:
        return store.blobs.read_location(located.location, start, end)
    part = located.part
    body = store.blobs.read_location(located.location, part["body_start"], part["body_end"])
    data = decode_part(body, {**part, "body_start": 0, "body_end": len(body)})
    return data[start:end] if (start or end is not None) else data


def resolve_blob(store: Any, account_id: str, blob_id: str) -> bytes | None:
    """The bytes of one of the account's blobs (whole or part), or None if it has no such blob."""
    located = locate(store, account_id, blob_id)
    return read_located(store, located) if located is not None else None


def _exists(store: Any, account_id: str, blob_ids: list[str]) -> set[str]:
    return {b for b in blob_ids if locate(store, account_id, b) is not None}


# -- Blob/copy (RFC 8620 §6.3) ------------------------------------------------------------------------------


async def blob_copy(ctx: Any, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Copy blobs between accounts the principal can use. A principal sees only its own account, so a copy
    either names it twice (the blobs are already there: each id maps to itself) or fails."""
    check_known_arguments(args, {"fromAccountId", "accountId", "blobIds"})
    from_account = read_id(args, "fromAccountId", required=True, nullable=False)
    account_id = read_id(args, "accountId", required=True, nullable=False)
    assert from_account is not None and account_id is not None
    blob_ids = args.get("blobIds")
    if type(blob_ids) is not list or not all(type(b) is str for b in blob_ids):
        raise invalid_arguments("'blobIds' must be an array of Ids")
    await ctx.check_account(account_id, write=True)
    try:
        await ctx.check_account(from_account, write=False)
    except MethodError as exc:
        if exc.type in ("accountNotFound", "accountNotSupportedByMethod"):
            raise MethodError("from" + exc.type[0].upper() + exc.type[1:]) from None
        raise
    unique = list(dict.fromkeys(blob_ids))
    if len(unique) > ctx.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", description=f"at most {ctx.limits.max_objects_in_set} blobs")
    found = await ctx.store.call(_exists, ctx.store, from_account, unique)
    copied = {b: b for b in unique if b in found}
    not_copied = {
        b: SetError("blobNotFound", "no such blob in the source account").to_dict() for b in unique if b not in found
    }
    return [
        (
            "Blob/copy",
            {
                "fromAccountId": from_account,
                "accountId": account_id,
                "copied": copied or None,
                "notCopied": not_copied or None,
            },
        )
    ]


def register(engine: Engine) -> None:
    engine.register("Blob/copy", CORE, blob_copy)
