"""A counter every process on one SQLite store shares, bumped after each committed credential change.

Why: an IMAP session asks before every command whether its credential is still good (janusmail.auth.revocation:
one primary-key read of the account's credential epoch). Under the logged-in stress profile that read was 7.5% of
the event loop's time and 3.4% of the writer lane's (issue 10), to learn almost always that nothing changed.
Credential changes are rare; what a session needs first is "did ANY credential change since I last looked?", and
a word of shared memory answers that without a statement.

How: ``<database>-credentials`` holds one 64-bit counter, mapped into every process that opens the store (the
server's workers, ``janusmail user passwd`` and the other commands). The store bumps it after the COMMIT of each
credential change (a notifier watcher sees the change's event, published only after its commit; the SQLite
credential watcher's poll delivers changes a process made without it, such as one that died between its commit
and its bump, within a second). A session keeps the value it read *before* its last good check: while the
counter still shows that value, nothing committed since could have changed its credential, and the check is
skipped; any other value sends it to the database as before. A torn or racing read can only show a value other
than the remembered one, which costs one ordinary check. Bumps take an exclusive ``flock`` around the
read-modify-write, so two processes bumping at once never lose one (the mechanism:
:mod:`janusmail.store.shared_counter`).

PostgreSQL stores serve several hosts, which share no memory: there :meth:`read` is ``None`` and every command
reads the epoch, as before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .shared_counter import SharedCounter, counter_path

if TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

__all__ = ["CredentialSignal", "bump_for", "signal_path"]


class CredentialSignal(SharedCounter):
    """The shared credential counter of one store (see the module docstring); ``path`` None: no sharing,
    :meth:`read` is always ``None``."""

    def __init__(self, path: str | None) -> None:
        super().__init__(path, "credential signal")


def signal_path(engine: sa.Engine) -> str | None:
    """``<database>-credentials`` for a SQLite file, else ``None`` (PostgreSQL, an in-memory database)."""
    return counter_path(engine, "-credentials")


def bump_for(engine: sa.Engine) -> None:
    """Bump the signal of the store behind ``engine`` after a credential change committed by a tool that holds
    only an engine (no Store, so no notifier watcher to do it)."""
    path = signal_path(engine)
    if path is not None and os.path.exists(os.path.dirname(path) or "."):
        signal = CredentialSignal(path)
        try:
            signal.bump()
        finally:
            signal.close()
