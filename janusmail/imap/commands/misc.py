"""Commands valid in any state or with no mailbox semantics: CAPABILITY NOOP LOGOUT ID ENABLE NAMESPACE CHECK."""

from __future__ import annotations

from typing import TYPE_CHECKING

import janusmail
from janusmail.imap.codec import Command, EnableArgs, IdArgs, responses, serializer

from . import ALL_STATES, handler
from .base import Result

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession

#: ENABLE-able extensions: upper-case request -> canonical name echoed in ``* ENABLED``.
ENABLEABLE = {"IMAP4REV2": "IMAP4rev2", "UTF8=ACCEPT": "UTF8=ACCEPT", "CONDSTORE": "CONDSTORE", "QRESYNC": "QRESYNC"}
MAX_ID_PARAMS = 30


@handler("CAPABILITY", states=ALL_STATES)
async def capability(s: ImapSession, cmd: Command) -> Result:
    s.write(responses.capability_response(await s.capabilities()))
    return Result.ok("CAPABILITY completed")


@handler("NOOP", states=ALL_STATES)
async def noop(s: ImapSession, cmd: Command) -> Result:
    return Result.ok("NOOP completed")  # the session's post-command sync (forced for NOOP) does the work


@handler("CHECK", states=("selected",))
async def check(s: ImapSession, cmd: Command) -> Result:
    return Result.ok("CHECK completed")


@handler("LOGOUT", states=ALL_STATES)
async def logout(s: ImapSession, cmd: Command) -> Result:
    s.write(serializer.untagged_status("BYE", None, "Janus Mail logging out"))
    s.deselect()
    s.state = "logout"
    return Result.ok("LOGOUT completed")


@handler("ID", states=ALL_STATES)
async def id_(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, IdArgs)
    if args.params is not None:
        if len(args.params) > MAX_ID_PARAMS:
            return Result.bad("Too many ID parameters")
        s.client_id = {k.lower()[:30]: (v[:1024] if v is not None else None) for k, v in args.params}
    version = getattr(janusmail, "__version__", "0")
    s.write(responses.id_response([("name", "Janus Mail"), ("vendor", "Janus Mail"), ("version", str(version))],
                                  s.utf8))
    return Result.ok("ID completed")


@handler("ENABLE", states=("auth", "selected"))
async def enable(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, EnableArgs)
    newly: list[str] = []
    condstore_before = s.condstore
    for cap in args.capabilities:
        name = ENABLEABLE.get(cap.upper())
        if name is None:
            continue  # RFC 5161: unknown extensions are ignored
        if name == "IMAP4rev2" and not s.rev2:
            s.rev2 = True
            s.utf8 = True
            newly.append(name)
        elif name == "UTF8=ACCEPT" and not s.utf8:
            s.utf8 = True
            newly.append(name)
        elif name == "UTF8=ACCEPT" and s.utf8 and s.rev2 and name not in newly:
            newly.append(name)  # IMAP4rev2 implied it, but the client asked by name: report it
        elif name == "CONDSTORE" and not s.condstore:
            s.condstore = True
            newly.append(name)
        elif name == "QRESYNC" and not s.qresync:
            s.qresync = True
            s.condstore = True  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
            newly.append(name)
    s.write(responses.enabled_response(newly))
    if s.condstore and not condstore_before and s.selected is not None:
        s.write(serializer.untagged_status("OK", serializer.highestmodseq_code(s.selected.known_modseq),
                                           "Highest"))
    return Result.ok("ENABLE completed")


@handler("NAMESPACE", states=("auth", "selected"))
async def namespace(s: ImapSession, cmd: Command) -> Result:
    s.write(responses.namespace_response([("", "/")], None, None, s.utf8))
    return Result.ok("NAMESPACE completed")
