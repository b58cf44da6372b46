"""JMAP EmailSubmission (RFC 8621 §7): get, changes, query, set, over ``store.submissions``.

Why the checks live here and the queue in the store: the store keeps a submission durable the moment /set
answers ``created`` and the sender (janusmail/smtp/outbound.py) delivers it from there; this module turns the
client's request into a checked envelope. The envelope is the client's, or derived from the message (RFC 8621
§7.5: MAIL FROM the Sender address, else the From address, when the account may use it, else the identity's;
RCPT TO every To/Cc/Bcc address). The message's From must be the identity's address (``forbiddenFrom``), MAIL
FROM one of the account's own addresses (``forbiddenMailFrom``). A FUTURERELEASE hold (``HOLDFOR``/``HOLDUNTIL``
on mailFrom, RFC 4865) keeps it ``pending`` until its time, and an update of ``undoStatus`` to ``canceled``
before then is undo-send. That is the one SMTP extension the session lists in ``submissionExtensions``, and so
the only envelope parameters accepted: others (DSN's ``NOTIFY``, ``RET``...) would be ignored by the sender,
so they are refused rather than silently dropped.

``onSuccessUpdateEmail`` / ``onSuccessDestroyEmail`` run as an implicit Email/set after the submissions were
created, updated or destroyed (the classic Drafts -> Sent move, dropping ``$draft``).
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Sequence
from typing import Any

from janusmail.jmap.context import run_store
from janusmail.jmap.engine import (
    Call,
    ChangeEntry,
    ChangeLog,
    Comparator,
    Engine,
    MethodError,
    QueryResult,
    SetError,
    SetResult,
    TypeAdapter,
    register_standard,
    validate_patch,
)
from janusmail.jmap.engine.querytools import window
from janusmail.jmap.engine.types import JmapTypeError, format_utc_date, parse_utc_date
from janusmail.jmap.session_resource import MAX_DELAYED_SEND, SUBMISSION
from janusmail.mime.recipients import derived_mail_from, envelope_addresses
from janusmail.store.model import NotFound, StoreError
from janusmail.store.submissions import (
    KIND,
    CannotUnsend,
    Envelope,
    NewSubmission,
    Submission,
    SubmissionQuery,
)

__all__ = ["EmailSubmissionAdapter", "register"]

_OPS = {"c": "created", "u": "updated", "d": "destroyed"}
_DESTROYED = "destroyedEmailIds"  # call.scratch key: submission id -> its email id, left by destroy
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]+@[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f]+")
MAX_RECIPIENTS = 100
_PARAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_HOLDFOR = re.compile(r"[0-9]{1,10}")
#: MAIL FROM parameters this server acts on: FUTURERELEASE's (RFC 4865), held in its own queue. RCPT TO: none.
MAIL_PARAMETERS = frozenset({"HOLDFOR", "HOLDUNTIL"})


_utc = format_utc_date  # the store keeps epoch seconds; JMAP shows UTCDates


def _parse_utc(value: Any, prop: str) -> int:
    """A UTCDate filter value as epoch seconds (invalidArguments otherwise)."""
    try:
        return int(parse_utc_date(value, prop).timestamp())
    except JmapTypeError as exc:
        raise MethodError("invalidArguments", description=str(exc)) from None


def to_record(sub: Submission) -> dict[str, Any]:
    return {
        "id": sub.id,
        "identityId": sub.identity_id,
        "emailId": sub.email_id,
        "threadId": sub.thread_id,
        "envelope": sub.envelope.to_json(),
        "sendAt": _utc(sub.send_at),
        "undoStatus": sub.undo_status,
        "deliveryStatus": {
            r: {"smtpReply": d["smtpReply"], "delivered": d["delivered"], "displayed": d.get("displayed", "unknown")}
            for r, d in sub.delivery.items()
        },
        "dsnBlobIds": list(sub.dsn_blob_ids),
        "mdnBlobIds": list(sub.mdn_blob_ids),
    }


def _bad(prop: str, why: str) -> SetError:
    return SetError("invalidProperties", why, properties=[prop])


def _address(value: Any, where: str) -> tuple[str, dict[str, str | None] | None]:
    """An Address object ``{email, parameters}`` (RFC 8621 §7) -> (email, parameters)."""
    if type(value) is not dict or not set(value) <= {"email", "parameters"} or type(value.get("email")) is not str:
        raise _bad(where, "an Address is {email: String, parameters: Object|null}")
    email = value["email"].strip()
    if email and not _ADDRESS.fullmatch(email):
        raise _bad(where + "/email", "not an email address")
    params = value.get("parameters")
    if params is not None:
        if type(params) is not dict or not all(
            type(k) is str and _PARAM_NAME.fullmatch(k) and (v is None or (type(v) is str and v.isprintable()))
            for k, v in params.items()
        ):
            raise _bad(where + "/parameters", "parameters map ESMTP keywords to values or null")
    return email.lower(), params


def _supported(params: dict[str, str | None] | None, allowed: frozenset[str], where: str) -> None:
    """Refuse an ESMTP parameter the server would not honour (the session's ``submissionExtensions``)."""
    for key in params or {}:
        if key.upper() not in allowed:
            raise _bad(f"{where}/parameters", f"parameter {key} is not supported (see submissionExtensions)")


def _hold_until(params: dict[str, str | None] | None, now: int, max_delay: int) -> int | None:
    """The release time a FUTURERELEASE parameter asks for (RFC 4865), or None; SetError when out of range."""
    if not params:
        return None
    upper = {k.upper(): v for k, v in params.items()}
    if "HOLDFOR" in upper and "HOLDUNTIL" in upper:
        raise _bad("envelope/mailFrom/parameters", "HOLDFOR and HOLDUNTIL exclude each other")
    if "HOLDFOR" in upper:
        value = upper["HOLDFOR"] or ""  # ASCII digits only: str.isdigit() takes "²", int() refuses it
        if not _HOLDFOR.fullmatch(value) or int(value) > max_delay:
            raise _bad("envelope/mailFrom/parameters", f"HOLDFOR must be 0-{max_delay} seconds")
        return now + int(value)
    if "HOLDUNTIL" in upper:
        try:
            parsed = _dt.datetime.fromisoformat((upper["HOLDUNTIL"] or "").replace("Z", "+00:00"))
        except ValueError:
            raise _bad("envelope/mailFrom/parameters", "HOLDUNTIL must be a date-time") from None
        if parsed.tzinfo is None:  # RFC 4865: an RFC 3339 date-time, which carries its offset
            raise _bad("envelope/mailFrom/parameters", "HOLDUNTIL must carry a time zone offset (or Z)")
        when = int(parsed.timestamp())
        if when - now > max_delay:
            raise _bad("envelope/mailFrom/parameters", f"HOLDUNTIL is more than {max_delay} seconds away")
        return max(now, when)
    return None


def _identity_and_email(call: Call, obj: dict[str, Any]) -> tuple[str, str]:
    """A create's identityId and emailId (a ``#reference`` to an email created earlier resolved), checked."""
    if obj.get("undoStatus", "pending") not in ("pending", "final"):
        raise _bad("undoStatus", "a new submission is pending (or final)")
    identity_id, email_id = obj.get("identityId"), call.ctx.resolve_creation_id(obj.get("emailId"))
    if type(identity_id) is not str:
        raise _bad("identityId", "identityId is required")
    if type(email_id) is not str:
        raise _bad("emailId", "emailId is required (an id or a #reference to an email created earlier)")
    return identity_id, email_id


def _prepare(store: Any, account_id: str, identity_ids: list[str], email_ids: list[str]
             ) -> tuple[dict[str, Any], dict[str, bytes | None], list[str]]:
    """On a store thread, for the creates of one call (one hop): the identities (None: no such identity), the
    messages' header sections (None: no such email; the From, Sender and recipient fields are all the checks
    read, so a batch never holds its messages' bodies) and the account's own addresses."""
    identities = {i: store.identities.get(account_id, i) for i in dict.fromkeys(identity_ids)}
    with store.shared_read():
        found = store.emails.locations(account_id, email_ids)
        heads: dict[str, bytes | None] = {}
        for email_id in dict.fromkeys(email_ids):
            loc = found.get(email_id)
            heads[email_id] = None if loc is None else _header_section(store.blobs.read_location(loc))
    return identities, heads, store.identities.addresses(account_id)


def _header_section(raw: bytes) -> bytes:
    """The message's header fields (up to its first empty line, whatever its line ends)."""
    ends = [i for i in (raw.find(b"\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return bytes(raw[: min(ends) + 1]) if ends else bytes(raw)


def _check_on_success(extra: dict[str, Any]) -> None:
    """onSuccessUpdateEmail (``{id or #creationId: PatchObject}``) and onSuccessDestroyEmail (``[id or
    #creationId]``) checked before anything is sent: a malformed one found only after the submissions were
    queued would fail the call, and a client retrying it would send the mail twice."""
    updates, destroys = extra.get("onSuccessUpdateEmail"), extra.get("onSuccessDestroyEmail")
    if updates is not None and (type(updates) is not dict or not all(type(v) is dict for v in updates.values())):
        raise MethodError("invalidArguments", description="onSuccessUpdateEmail maps ids to PatchObjects")
    if destroys is not None and (type(destroys) is not list or not all(type(v) is str for v in destroys)):
        raise MethodError("invalidArguments", description="onSuccessDestroyEmail is a list of ids")


def _change_log(store: Any, account_id: str, after: int, skip: int, limit: int) -> ChangeLog:
    current = store.changes.kind_state(account_id, KIND)
    rows = store.changes.since(account_id, KIND, after, skip + limit)[skip:]
    return ChangeLog([ChangeEntry(r.modseq, r.object_id, _OPS.get(r.op, "updated")) for r in rows], current)


class EmailSubmissionAdapter(TypeAdapter):
    properties = frozenset({"id", "identityId", "emailId", "threadId", "envelope", "sendAt", "undoStatus",
                            "deliveryStatus", "dsnBlobIds", "mdnBlobIds"})
    server_set_properties = frozenset({"id", "threadId", "sendAt", "deliveryStatus", "dsnBlobIds", "mdnBlobIds"})
    create_may_echo = frozenset({"undoStatus"})
    extra_arguments = {"set": frozenset({"onSuccessUpdateEmail", "onSuccessDestroyEmail"})}

    async def state(self, call: Call) -> int:
        return await run_store(call.ctx, call.ctx.store.changes.kind_state, call.account_id, KIND)

    async def get(self, call: Call, ids: Sequence[str] | None, properties: frozenset[str], limit: int
                  ) -> list[dict[str, Any]]:
        found = await run_store(call.ctx, call.ctx.store.submissions.list, call.account_id,
                                None if ids is None else list(ids))
        return [to_record(s) for s in found[:limit]]

    async def change_log(self, call: Call, after_modseq: int, skip: int, limit: int) -> ChangeLog:
        return await run_store(call.ctx, _change_log, call.ctx.store, call.account_id, after_modseq, skip, limit)

    # -- /query ---------------------------------------------------------------------------------------------

    async def compile_condition(self, call: Call, condition: dict[str, Any]) -> Any:
        out: dict[str, Any] = {}
        for key, value in condition.items():
            if key in ("identityIds", "emailIds", "threadIds"):
                if type(value) is not list or not all(type(v) is str for v in value):
                    raise MethodError("invalidArguments", description=f"{key} must be a list of ids")
                out[key] = tuple(call.ctx.resolve_creation_id(v) or v for v in value)
            elif key == "undoStatus":
                if value not in ("pending", "final", "canceled"):
                    raise MethodError("invalidArguments", description="undoStatus is pending, final or canceled")
                out[key] = value
            elif key in ("before", "after"):
                out[key] = _parse_utc(value, key)
            else:
                raise MethodError("unsupportedFilter", description=f"unknown filter {key}")
        return out

    async def compile_comparator(self, call: Call, comparator: Comparator) -> Any:
        if comparator.property not in ("emailId", "threadId", "sentAt"):
            raise MethodError("unsupportedSort", description=f"cannot sort by {comparator.property}")
        return comparator.property, comparator.is_ascending

    async def query(self, call: Call, filter: Any, sort: list[Any], position: int, limit: int,
                    anchor: str | None, anchor_offset: int, calculate_total: bool) -> QueryResult:
        if filter is not None and type(filter) is not dict:
            raise MethodError("unsupportedFilter", description="filter operators are not supported here")
        f = filter or {}
        spec = SubmissionQuery(f.get("identityIds"), f.get("emailIds"), f.get("threadIds"), f.get("undoStatus"),
                               f.get("before"), f.get("after"), tuple(sort))
        ids = await run_store(call.ctx, call.ctx.store.submissions.query, call.account_id, spec)
        page, start = window(ids, position, limit, anchor, anchor_offset)
        return QueryResult(page, start, len(ids), None, False)

    # -- /set -----------------------------------------------------------------------------------------------

    async def create(self, call: Call, creation_id: str, obj: dict[str, Any]) -> dict[str, Any]:
        (made,) = await self.create_many(call, [(creation_id, obj)])
        if isinstance(made, SetError):
            raise made
        return made

    async def create_many(self, call: Call, creates: list[tuple[str, dict[str, Any]]]
                          ) -> list[dict[str, Any] | SetError]:
        """Each submission checked on its own (identity, From, envelope: one read for all of them), then every
        accepted one queued by ONE ``store.submissions.create_many``: one write and one commit for the call."""
        _check_on_success(call.extra)  # before anything is queued
        ctx, store, account_id = call.ctx, call.ctx.store, call.account_id
        out: list[dict[str, Any] | SetError | None] = [None] * len(creates)
        asked: dict[int, tuple[str, str]] = {}
        for i, (_, obj) in enumerate(creates):
            try:
                asked[i] = _identity_and_email(call, obj)
            except SetError as exc:
                out[i] = exc
        wanted: list[tuple[int, NewSubmission]] = []
        if asked:
            identities, heads, own = await run_store(
                ctx, _prepare, store, account_id, [a for a, _ in asked.values()], [e for _, e in asked.values()])
            now = int(time.time())
            for i, (identity_id, email_id) in asked.items():
                try:
                    identity, head = identities[identity_id], heads[email_id]
                    if identity is None:
                        raise _bad("identityId", "no such identity")
                    if head is None:
                        raise SetError("invalidProperties", "no such email", properties=["emailId"])
                    wanted.append((i, self._checked(creates[i][1], identity, email_id, head, own, now)))
                except SetError as exc:
                    out[i] = exc
            if wanted:
                made = await run_store(ctx, store.submissions.create_many, account_id, [w for _, w in wanted], now=now)
                for (i, _), sub in zip(wanted, made, strict=True):
                    if isinstance(sub, NotFound):  # the email was destroyed since it was read
                        out[i] = SetError("invalidProperties", "no such email", properties=["emailId"])
                    elif isinstance(sub, StoreError):
                        raise sub
                    else:
                        out[i] = {"id": sub.id, "threadId": sub.thread_id, "sendAt": _utc(sub.send_at),
                                  "undoStatus": sub.undo_status}
        answers: list[dict[str, Any] | SetError] = []
        for r in out:
            assert r is not None  # every create got its answer above
            answers.append(r)
        return answers

    def _checked(self, obj: dict[str, Any], identity: Any, email_id: str, head: bytes, own: list[str], now: int
                 ) -> NewSubmission:
        """The submission one create asks for, its From and envelope checked against the message's header
        section ``head`` (RFC 8621 §7.5), or its SetError."""
        senders, derived_rcpts = envelope_addresses(head)
        if not senders or any(a != identity.email.lower() for a in senders):
            raise SetError("forbiddenFrom", "the message's From is not the identity's address")
        envelope = self._envelope(obj.get("envelope"), identity.email.lower(), head, derived_rcpts, own)
        send_at = _hold_until(envelope.mail_from_parameters, now, MAX_DELAYED_SEND)
        return NewSubmission(identity.id, email_id, envelope, send_at)

    def _envelope(self, value: Any, identity_email: str, head: bytes, derived: list[str], own: list[str]
                  ) -> Envelope:
        mine = {a.lower() for a in own}
        if value is None:
            if not derived:
                raise SetError("noRecipients", "the message names no recipient in To, Cc or Bcc")
            if len(derived) > MAX_RECIPIENTS:  # never send to some of them only (RFC 8621 §7.5)
                raise SetError("tooManyRecipients", f"at most {MAX_RECIPIENTS} recipients",
                               maxRecipients=MAX_RECIPIENTS)
            address, header = derived_mail_from(head)
            if address is None:
                raise SetError("invalidEmail", f"the envelope would come from the {header} header field, which "
                                               "must appear once with one address", properties=[header])
            # an address the account may not send as (someone else's Sender) gives way to the identity's
            return Envelope(address if address in mine else identity_email, tuple(derived))
        if type(value) is not dict or set(value) != {"mailFrom", "rcptTo"}:
            raise _bad("envelope", "an Envelope is {mailFrom: Address, rcptTo: Address[]}")
        mail_from, params = _address(value["mailFrom"], "envelope/mailFrom")
        _supported(params, MAIL_PARAMETERS, "envelope/mailFrom")
        if mail_from not in mine:
            raise SetError("forbiddenMailFrom", "MAIL FROM must be one of this account's addresses")
        rcpts_in = value["rcptTo"]
        if type(rcpts_in) is not list:
            raise _bad("envelope/rcptTo", "rcptTo is a list of Addresses")
        if len(rcpts_in) > MAX_RECIPIENTS:
            raise SetError("tooManyRecipients", f"at most {MAX_RECIPIENTS} recipients", maxRecipients=MAX_RECIPIENTS)
        rcpts = [_address(r, f"envelope/rcptTo/{i}") for i, r in enumerate(rcpts_in)]
        for i, (_, rcpt_params) in enumerate(rcpts):
            _supported(rcpt_params, frozenset(), f"envelope/rcptTo/{i}")
        if not rcpts:
            raise SetError("noRecipients", "rcptTo is empty")
        bad = [e for e, _ in rcpts if not e]
        if bad:
            raise SetError("invalidRecipients", "a recipient has no address", invalidRecipients=bad)
        unique = dict(rcpts)
        return Envelope(mail_from, tuple(unique), params, tuple(unique.values()))

    async def update(self, call: Call, id: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        _check_on_success(call.extra)
        store = call.ctx.store
        for tokens, value in validate_patch(patch):
            if list(tokens) != ["undoStatus"] or value != "canceled":
                raise SetError("invalidProperties", "only undoStatus may change, to canceled",
                               properties=["/".join(tokens)])
        try:
            await run_store(call.ctx, store.submissions.cancel, call.account_id, id)
        except NotFound:
            raise SetError("notFound") from None
        except CannotUnsend as exc:
            raise SetError("cannotUnsend", str(exc)) from None
        return None

    async def destroy(self, call: Call, id: str) -> None:
        try:
            email_id = await run_store(call.ctx, call.ctx.store.submissions.destroy, call.account_id, id)
        except NotFound:
            raise SetError("notFound") from None
        call.scratch.setdefault(_DESTROYED, {})[id] = email_id  # for after_set: the row is gone by then

    async def after_set(self, call: Call, result: SetResult) -> None:
        """onSuccessUpdateEmail / onSuccessDestroyEmail (RFC 8621 §7.5): an implicit Email/set for the emails
        of the submissions this call created (keys ``#creationId``) or updated/destroyed (keys: their ids;
        the destroyed ones' emails as ``destroy`` found them)."""
        updates, destroys = call.extra.get("onSuccessUpdateEmail"), call.extra.get("onSuccessDestroyEmail")
        if not updates and not destroys:
            return
        _check_on_success(call.extra)  # (a call that only destroys submissions meets the check here)
        done: dict[str, str] = {}  # key as the client wrote it -> email id
        records = await run_store(call.ctx, call.ctx.store.submissions.list, call.account_id,
                                  [*(v["id"] for v in result.created.values()), *result.updated])
        by_id = {s.id: s.email_id for s in records}
        for cid, created in result.created.items():
            if created["id"] in by_id:
                done["#" + cid] = by_id[created["id"]]
        for sid in result.updated:
            if sid in by_id:
                done[sid] = by_id[sid]
        done.update(call.scratch.get(_DESTROYED, {}))
        email_update = {done[k]: v for k, v in (updates or {}).items() if k in done}
        email_destroy = [done[k] for k in (destroys or []) if k in done]
        if not email_update and not email_destroy:
            return
        args: dict[str, Any] = {"accountId": call.account_id}
        if email_update:
            args["update"] = email_update
        if email_destroy:
            args["destroy"] = email_destroy
        call.followups.extend(await call.ctx.invoke("Email/set", args))


def register(engine: Engine) -> None:
    register_standard(engine, "EmailSubmission", SUBMISSION, EmailSubmissionAdapter(),
                      ("get", "changes", "query", "queryChanges", "set"))
