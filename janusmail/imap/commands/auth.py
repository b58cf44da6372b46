"""Not-authenticated state: STARTTLS, LOGIN, AUTHENTICATE (SASL through :mod:`janusmail.auth.sasl`).

Secrets never cross a plaintext connection unless policy allows it (loopback by default): LOGIN and the
mechanisms that expose a secret are refused with ``NO [PRIVACYREQUIRED]`` and the capability list says
LOGINDISABLED / leaves those AUTH= out. Failed logins wait out the throttle's delay before the NO.

Logins cannot starve the server (:mod:`janusmail.auth.throttle`): LOGIN asks the throttle on the event loop
before anything else, so a (client, account) pair that keeps failing is refused (``NO [AUTHENTICATIONFAILED]``
after the rest of its penalty) without a thread, a query or argon2, unless its password may be one the
success cache remembers (then it goes on, and gets in only on a real cache hit: an attacker sharing the owner's
address cannot keep the owner out); verification runs on the authenticator's own threads behind its bounded
hashing gate (full: ``NO [UNAVAILABLE]`` at once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from janusmail.auth.throttle import LoginRefused
from janusmail.imap.codec import AuthenticateArgs, Command, LoginArgs, serializer

from . import handler
from .base import Result

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession


@handler("STARTTLS", states=("nonauth",))
async def starttls(s: ImapSession, cmd: Command) -> Result | None:
    if s.tls_active:
        return Result.bad("TLS is already active")
    if s.tls_context is None:
        return Result.bad("STARTTLS is not available")
    s.write(serializer.tagged(cmd.tag, "OK", None, "Begin TLS negotiation now"))
    s.parser.take_buffer()  # plaintext pipelined after STARTTLS must not run inside TLS (CVE-2011-0411 class)
    s.starttls_pending = True
    return None


@handler("LOGIN", states=("nonauth",))
async def login(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, LoginArgs)
    auth = s.rt.auth
    if not s.plaintext_ok():
        return Result.no("Use STARTTLS or the TLS port before logging in", "PRIVACYREQUIRED")
    try:
        auth.precheck(s.peer, args.username, args.password)
        result = await auth.run(auth.verify_password, args.username, args.password, "imap", client_ip=s.peer)
    except LoginRefused as exc:
        return await s.login_refused(exc)
    if result is None:
        return await s.login_failed(args.username)
    return await s.login_succeeded(result)


@handler("AUTHENTICATE", states=("nonauth",))
async def authenticate(s: ImapSession, cmd: Command) -> Result | None:
    from janusmail.auth.sasl import MECHANISMS, SaslServer

    args = cmd.args
    assert isinstance(args, AuthenticateArgs)
    auth = s.rt.auth
    mech = SaslServer(auth, "imap", client_ip=s.peer).create(args.mechanism, s.tls_active, s.peer_loopback)
    if mech is None:
        known = MECHANISMS.get(args.mechanism.upper())
        if known is not None and known.exposes_secret and not s.plaintext_ok():
            return Result.no("Use STARTTLS or the TLS port before authenticating", "PRIVACYREQUIRED")
        return Result.no(f"Unsupported authentication mechanism {args.mechanism}", "CANNOT")
    return await s.start_sasl(cmd, mech, args.initial_response)
