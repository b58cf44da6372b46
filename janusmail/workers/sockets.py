"""The listening sockets of ``serve --workers``: bound once by the supervisor, inherited by every worker.

The names are the listeners' (``imap``, ``imaps``, ``jmap``, ``lmtp``, ``submission``, ``submissions``: the keys of ``Runtime.bound`` and
``Runtime.listeners``), and a socket is bound only where the starter would open that listener itself: IMAPS
needs a TLS certificate (made here, once, when it is self-signed, so workers do not race to make it, for
STARTTLS too).
"""

from __future__ import annotations

import contextlib
import socket

from janusmail.config import Config, parse_hostport
from janusmail.imap import tls

__all__ = ["BACKLOG", "bind_listeners", "close_all"]

#: Accept queue of each shared socket (several workers take from it).
BACKLOG = 1024


def _bind(address: str) -> socket.socket:
    host, port = parse_hostport(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    sock.setblocking(False)
    return sock


def bind_listeners(config: Config) -> dict[str, socket.socket]:
    """Bind every listener ``config`` names; settles the public URL on the JMAP port actually bound. On
    failure (an address in use) nothing stays bound and the error propagates."""
    wanted: list[tuple[str, str]] = []
    # Made here, before any worker exists: two workers making a self-signed certificate at once would each
    # offer their own (STARTTLS on the plain listener needs it as much as IMAPS does).
    tls_ready = (config.imap.listen or config.imap.imaps or config.submission.listen
                 or config.submission.listen_tls) and tls.server_context(config) is not None
    if config.imap.listen:
        wanted.append(("imap", config.imap.listen))
    if config.imap.imaps and tls_ready:  # the IMAP starter skips IMAPS without TLS
        wanted.append(("imaps", config.imap.imaps))
    if config.jmap.listen:
        wanted.append(("jmap", config.jmap.listen))
    if config.lmtp.listen:
        wanted.append(("lmtp", config.lmtp.listen))
    if config.submission.listen:
        wanted.append(("submission", config.submission.listen))
    if config.submission.listen_tls and tls_ready:  # the submission starter skips implicit TLS without TLS
        wanted.append(("submissions", config.submission.listen_tls))
    bound: dict[str, socket.socket] = {}
    try:
        for name, address in wanted:
            bound[name] = _bind(address)
    except BaseException:
        close_all(bound)
        raise
    if "jmap" in bound:
        config.settle_public_url(*bound["jmap"].getsockname()[:2])
    return bound


def close_all(sockets: dict[str, socket.socket]) -> None:
    for sock in sockets.values():
        with contextlib.suppress(OSError):
            sock.close()
