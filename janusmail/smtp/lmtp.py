"""LMTP delivery into INBOX (RFC 2033), on aiosmtpd.

LMTP answers DATA once per accepted recipient, so one recipient's failure never bounces the others, and each
"250" is sent only after that recipient's copy is durable (blob fsynced, transaction committed). Unknown
recipients are refused at RCPT time with 550; oversized messages get 552 from aiosmtpd's size limit. When the
disk is full the recipient gets ``452 4.3.1`` (insufficient system storage; an I/O error gets ``451 4.3.0``):
a temporary failure, so the MTA keeps the message queued and retries, and nothing half-written is ever visible.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

from janusmail.store.model import StorageUnavailable, StoreError, TooLarge
from janusmail.store.store import Store

log = logging.getLogger("janusmail.lmtp")


def _address(addr: str) -> str:
    addr = addr.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1]
    return addr.lower()


class DeliveryHandler:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._inbox_cache: dict[str, tuple[str, str]] = {}

    async def _inbox(self, address: str) -> tuple[str, str] | None:
        """(account id, INBOX id) for an address, or None if there is no such account."""
        cached = self._inbox_cache.get(address)
        if cached:
            return cached
        account = await self.store.call(self.store.accounts.by_address, address)
        if account is None:
            return None
        boxes = await self.store.call(self.store.mailboxes.list, account.id)
        inbox = next((b for b in boxes if b.role == "inbox"), None)
        if inbox is None:
            return None
        self._inbox_cache[address] = (account.id, inbox.id)
        return account.id, inbox.id

    async def handle_RCPT(self, server: LMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if await self._inbox(_address(address)) is None:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: LMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        received_line = (
            f"Received: from {session.host_name or 'unknown'} by janusmail with LMTP; "
            f"{time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        ).encode()
        replies: list[str] = []
        for rcpt in envelope.rcpt_tos:
            target = await self._inbox(_address(rcpt))
            if target is None:  # account deleted between RCPT and DATA
                replies.append("550 5.1.1 No such user here")
                continue
            account_id, inbox_id = target
            try:
                await self.store.deliver(account_id, received_line + raw, (inbox_id,))
                replies.append("250 2.0.0 Delivered")
            except TooLarge:
                replies.append("552 5.3.4 Message too big")
            except StorageUnavailable as exc:  # nothing was stored: the sender keeps it and retries later
                log.warning("delivery to %s deferred: %s", rcpt, exc)
                replies.append("452 4.3.1 Insufficient system storage" if exc.full
                               else "451 4.3.0 Mail store I/O error, try again later")
            except StoreError as exc:
                self._inbox_cache.pop(_address(rcpt), None)
                log.warning("delivery to %s failed: %s", rcpt, exc)
                replies.append("451 4.3.0 Temporary failure, try again")
            except Exception:  # never acknowledge what we could not store
                log.exception("delivery to %s failed", rcpt)
                replies.append("451 4.3.0 Temporary failure, try again")
        # aiosmtpd writes the returned text plus CRLF: several lines give one reply per recipient (RFC 2033).
        return "\r\n".join(replies) if replies else "503 5.5.1 No valid recipients"


async def start_lmtp(store: Store, host: str, port: int, max_size: int) -> asyncio.base_events.Server:
    handler = DeliveryHandler(store)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: LMTP(handler, data_size_limit=max_size, enable_SMTPUTF8=True, decode_data=False,
                     hostname="janusmail", ident="Janus Mail LMTP"),
        host, port,
    )
