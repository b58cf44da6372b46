"""LMTP delivery into INBOX (RFC 2033), on aiosmtpd.

LMTP answers DATA once per accepted recipient, so one recipient's failure never bounces the others, and each
"250" is sent only after that recipient's copy is durable (blob fsynced, transaction committed). Unknown
recipients are refused at RCPT time with 550; oversized messages get 552 from aiosmtpd's size limit. When the
disk is full the recipient gets ``452 4.3.1`` (insufficient system storage; an I/O error gets ``451 4.3.0``):
a temporary failure, so the MTA keeps the message queued and retries, and nothing half-written is ever visible.
A recipient over its quota (janusmail/store/quotas.py) gets ``552 5.2.2`` (mailbox full), checked in the
delivery's own transaction before any byte is written.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

from janusmail.observability import logs
from janusmail.observability.metrics import Metrics, smtp_result
from janusmail.store.model import OverQuota, StorageUnavailable, StoreError, TooLarge
from janusmail.store.store import Store

from . import vacation

log = logging.getLogger("janusmail.lmtp")


def _address(addr: str) -> str:
    addr = addr.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1]
    return addr.lower()


async def _refused() -> str:
    return "550 5.1.1 No such user here"


class DeliveryHandler:
    def __init__(self, store: Store, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics or Metrics()

    async def _inbox(self, address: str) -> tuple[str, str] | None:
        """(account id, INBOX id) for an address (the account's own or an alias), or None if nobody here
        receives it. Read fresh (no memo to go stale when an account is deleted or made), and small: an indexed
        row or two and the cached INBOX, so on SQLite it runs right on the loop (``Store.read_inline``), not
        through a reader thread's hop (twice per message: at RCPT and again at DATA)."""
        return await self.store.read_inline(self.store.accounts.recipient, address)

    async def handle_RCPT(self, server: LMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if await self._inbox(_address(address)) is None:
            self.metrics.delivery("lmtp", "refused")
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: LMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        received_line = (
            f"Received: from {session.host_name or 'unknown'} by janusmail with LMTP; "
            f"{time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        ).encode()
        targets = [await self._inbox(_address(rcpt)) for rcpt in envelope.rcpt_tos]
        data = received_line + raw

        async def deliver(rcpt: str, account_id: str, inbox_id: str) -> str:
            try:
                # inbound: a read receipt or bounce among them is listed on the submission it answers
                await self.store.deliver(account_id, data, (inbox_id,), inbound=True)
            except TooLarge:
                return "552 5.3.4 Message too big"
            except OverQuota:  # RFC 3463 5.2.2 mailbox full: permanent for this message, the others still go in
                return "552 5.2.2 Mailbox full: quota exceeded"
            except StorageUnavailable as exc:  # nothing was stored: the sender keeps it and retries later
                log.warning("delivery to %s deferred: %s", rcpt, exc)
                return "452 4.3.1 Insufficient system storage" if exc.full else \
                    "451 4.3.0 Mail store I/O error, try again later"
            except StoreError as exc:
                log.warning("delivery to %s failed: %s", rcpt, exc)
                return "451 4.3.0 Temporary failure, try again"
            except Exception:  # never acknowledge what we could not store
                log.exception("delivery to %s failed", rcpt)
                return "451 4.3.0 Temporary failure, try again"
            # RFC 8621 §8 / RFC 3834; best effort, never fails the delivery above
            await vacation.after_delivery(self.store, account_id, envelope.mail_from or "", raw)
            return "250 2.0.0 Delivered"

        # Every recipient's copy at once: concurrent deliveries share one batch and one commit (the group
        # committer's), where one after the other each waited for its own (a list message to 50 local users was
        # 50 commits in a row). The replies keep the recipients' order (RFC 2033).
        replies = list(await asyncio.gather(*(
            deliver(rcpt, *target) if target is not None else _refused()  # (deleted between RCPT and DATA)
            for rcpt, target in zip(envelope.rcpt_tos, targets, strict=True))))
        for rcpt, reply in zip(envelope.rcpt_tos, replies, strict=True):
            result = smtp_result(reply)
            self.metrics.delivery("lmtp", result)
            logs.event(log, logging.INFO, "lmtp.delivery", rcpt=_address(rcpt), result=result, reply=reply[:3])
        # aiosmtpd writes the returned text plus CRLF: several lines give one reply per recipient (RFC 2033).
        return "\r\n".join(replies) if replies else "503 5.5.1 No valid recipients"


class _Lmtp(LMTP):
    """aiosmtpd's LMTP protocol, counted as a connection and logging under an id of its own."""

    def __init__(self, handler: DeliveryHandler, **kwargs: object) -> None:
        super().__init__(handler, **kwargs)
        self._metrics = handler.metrics
        self._open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._open:
            self._open = True
            self._metrics.connection_opened("lmtp")
            # (a callback's own context, copied into the connection's task that aiosmtpd starts here)
            logs.bind(sid=logs.new_id("lmtp"))
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._open:
            self._open = False
            self._metrics.connection_closed("lmtp")
        super().connection_lost(error)


async def start_lmtp(store: Store, host: str | None, port: int | None, max_size: int, *,
                     sock: socket.socket | None = None, metrics: Metrics | None = None) -> asyncio.base_events.Server:
    """Listen at ``host:port``, or on ``sock`` (a listening socket inherited from ``serve --workers``)."""
    handler = DeliveryHandler(store, metrics)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Lmtp(handler, data_size_limit=max_size, enable_SMTPUTF8=True, decode_data=False,
                      hostname="janusmail", ident="Janus Mail LMTP"),
        host, port, sock=sock,
    )
