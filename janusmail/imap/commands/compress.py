"""COMPRESS DEFLATE (RFC 4978): from the tagged OK on, both directions are raw deflate streams.

The session only decides and says "start compression" (:attr:`~janusmail.imap.session.ImapSession.compress_pending`,
as STARTTLS says "start TLS"); the asyncio adapter (:mod:`janusmail.imap.server`) does the transform. The tagged
OK itself goes out uncompressed, and anything the client sent after the command is already compressed, so the
parser stops at COMPRESS (a barrier command) and the adapter inflates what it holds.

Valid after login, as the RFC's examples and other servers use it (compressing a login exchange would only
help an attacker guess the secret from the sizes). A second COMPRESS gets ``NO [COMPRESSIONACTIVE]``; an unknown
mechanism ``BAD``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from janusmail.imap.codec import CompressArgs, serializer
from janusmail.imap.commands import Result, handler

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession

MECHANISMS = ("DEFLATE",)


@handler("COMPRESS", states=("auth", "selected"), capabilities=tuple(f"COMPRESS={m}" for m in MECHANISMS))
async def compress(s: ImapSession, cmd: Command) -> Result | None:
    args = cmd.args
    assert isinstance(args, CompressArgs)
    if args.mechanism.upper() not in MECHANISMS:
        return Result.bad(f"Unknown compression mechanism {args.mechanism}")
    if s.compressed or s.compress_pending:
        return Result.no("Compression is already active", "COMPRESSIONACTIVE")
    if await s.credential_problem() is None:  # a dead credential's client sees only the BYE, uncompressed
        s.write(serializer.tagged(cmd.tag, "OK", None, "DEFLATE active"))
        s.compress_pending = True
        return None
    return Result.no("Credential no longer valid")
