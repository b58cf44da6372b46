"""Vacation replies (JMAP VacationResponse, RFC 8621 §8) by the rules of RFC 3834, after every delivery.

Both delivery paths call :func:`after_delivery` once a recipient's copy is committed: LMTP (lmtp.py) and the
outbound sender's local delivery (outbound.py ``_deliver_local``). It is best effort: whatever goes wrong is
logged, never raised, so a reply can neither fail nor undo the delivery it answers.

The decision is in two halves. The message's own signals are judged here without a store hop (a pure
function, :func:`refusal`): a null or daemon return path, ``Auto-Submitted`` other than ``no``, list headers,
``Precedence: bulk|list|junk``, a delivery report (``multipart/report``), a sender that is the account itself, a message that does not name the account in
To or Cc (RFC 3834 §2: a Bcc, or a list that labels itself nowhere, gets no reply). The account's state is the
store's: ``store.vacation.responder`` (enabled, inside fromDate/toDate; one read) and ``queue_reply`` (once
per sender per seven days, in the write that queues the reply on the durable outbound queue as a hidden
system row; janusmail/store/vacation.py).

The reply (:func:`build_reply`): From the account's address, To the envelope sender, the response's subject
or ``Auto: <original subject>`` (RFC 3834 §3.1.5), In-Reply-To/References, ``Auto-Submitted: auto-replied``
(§5), text (the HTML's text when only HTML is set) with an HTML alternative when set; sent with the null
return path ``<>`` (§3.3) so no responder answers it and no bounce comes back.
"""

from __future__ import annotations

import logging
import re
import time
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.policy import SMTP, compat32
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from janusmail.mime.addresses import flatten, parse_address_list
from janusmail.mime.htmltext import html_to_text
from janusmail.store.vacation import VacationResponse

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.store import Store

__all__ = ["after_delivery", "build_reply", "refusal"]

log = logging.getLogger("janusmail.smtp.vacation")

#: Local parts of senders that are software, never a person (RFC 3834 §2's examples and Sieve vacation's).
_DAEMONS = ("mailer-daemon", "listserv", "majordomo", "postmaster")
#: Header fields that mark list traffic (RFC 2369, RFC 2919).
_LIST_FIELDS = ("list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
                "list-archive")
_COMMENT = re.compile(r"\([^()]*\)")  # an RFC 5322 comment (unnested ones: enough for a keyword)
DEFAULT_TEXT = "I am away and will read your message when I am back.\n"
#: Longest original subject kept in "Auto: ..." (a hostile subject must not make a huge reply).
MAX_SUBJECT = 400


def headers_of(raw: bytes) -> Message:
    """The header section, parsed forgivingly (compat32: malformed fields stay strings, never raise)."""
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[: end + 4]
    return BytesHeaderParser(policy=compat32).parsebytes(bytes(head), headersonly=True)


def _emails(values: list[str]) -> set[str]:
    out = set()
    for value in values:
        for m in flatten(parse_address_list(str(value))):
            email = m.email()
            if email and "@" in email:
                out.add(email.lower())
    return out


def refusal(headers: Message, mail_from: str, own: tuple[str, ...]) -> str | None:
    """Why this message gets no automatic reply (RFC 3834 §2), or None when it may get one. ``mail_from``
    is the envelope sender; ``own`` the account's addresses, lowercased."""
    sender = mail_from.strip().strip("<>").strip().lower()
    if not sender or "@" not in sender:
        return "null or invalid return path"
    local = sender.rsplit("@", 1)[0]
    if local in _DAEMONS or local.startswith("owner-") or local.endswith("-request"):
        return "return path of a mail robot or list"
    if sender in own:
        return "the account's own address"
    for value in headers.get_all("auto-submitted", []):  # "no", maybe with comments and parameters, or else
        keyword = _COMMENT.sub(" ", str(value)).split(";", 1)[0].strip().lower()
        if keyword != "no":
            return "Auto-Submitted"
    if any(headers.get(f) is not None for f in _LIST_FIELDS):
        return "list header"
    precedence = str(headers.get("precedence", "")).strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return "Precedence " + precedence
    if str(headers.get("content-type", "")).strip().lower().startswith("multipart/report"):
        return "a delivery or disposition report"
    named = _emails([*headers.get_all("to", []), *headers.get_all("cc", []),
                     *headers.get_all("resent-to", []), *headers.get_all("resent-cc", [])])
    if not named & set(own):
        return "the account is not named in To or Cc"
    return None


def _text(value: str) -> str:
    """A header's text, RFC 2047 words decoded; the raw text when they are broken."""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def build_reply(response: VacationResponse, headers: Message, account_address: str, to: str,
                now: float | None = None) -> bytes:
    """The reply message (see the module docstring) as CRLF bytes."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = account_address
    msg["To"] = to
    if response.subject:
        subject = response.subject
    else:
        original = " ".join(_text(str(headers.get("subject", ""))).split())[:MAX_SUBJECT]
        subject = "Auto: " + original if original else "Auto: away"
    msg["Subject"] = subject
    msg["Date"] = formatdate(time.time() if now is None else now)
    msg["Message-ID"] = make_msgid(domain=account_address.rsplit("@", 1)[-1])
    original_id = str(headers.get("message-id", "")).strip()
    if original_id.startswith("<") and original_id.endswith(">") and " " not in original_id:
        msg["In-Reply-To"] = original_id
        refs = " ".join(str(headers.get("references", "")).split()).split()
        refs = [r for r in refs if r.startswith("<") and r.endswith(">")][-20:]
        msg["References"] = " ".join([*refs, original_id])
    msg["Auto-Submitted"] = "auto-replied"
    text = response.text_body
    if text is None:
        text = html_to_text(response.html_body) if response.html_body else DEFAULT_TEXT
    msg.set_content(text if text.endswith("\n") else text + "\n")
    if response.html_body:
        msg.add_alternative(response.html_body, subtype="html")
    return msg.as_bytes(policy=SMTP)


async def after_delivery(store: Store, account_id: str, mail_from: str, raw: bytes) -> str | None:
    """Answer a message just delivered to ``account_id`` when its VacationResponse says so. Returns the
    queued reply's (hidden) submission id, or None. Never raises: a delivery is done whatever happens here."""
    try:
        responder = await store.read_inline(store.vacation.responder, account_id)  # (one indexed row, every delivery)
        if responder is None:
            return None
        headers = headers_of(raw)
        own = tuple(a.lower() for a in responder.addresses)
        why = refusal(headers, mail_from, own)
        if why is not None:
            log.debug("no vacation reply for %s to %s: %s", account_id, mail_from, why)
            return None
        sender = mail_from.strip().strip("<>").strip()
        reply = build_reply(responder.response, headers, responder.addresses[0], sender)
        return await store.call(store.vacation.queue_reply, account_id, sender, reply)
    except Exception:  # noqa: BLE001 - best effort: the delivery already succeeded
        log.warning("vacation reply for %s to %s failed", account_id, mail_from, exc_info=True)
        return None
