"""What a command handler returns, and the registry record the session dispatches on.

Handlers write untagged data with ``s.write(...)`` and return a :class:`Result`; the session turns it into
the tagged status line (``tag OK [CODE] text``). Keeping the tagged line out of the handlers lets the
session add codes it owns (``[CAPABILITY ...]`` after LOGIN) and run the post-command sync first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # pragma: no cover - typing only
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession

__all__ = ["ALL_STATES", "Handler", "HandlerFn", "Result", "Status"]

Status = Literal["OK", "NO", "BAD"]

#: Every state a command can be valid in ("logout" accepts nothing).
ALL_STATES: tuple[str, ...] = ("nonauth", "auth", "selected")


@dataclass(frozen=True, slots=True)
class Result:
    """The tagged completion of one command: ``status``, human ``text`` and an optional response code
    without brackets (``"TRYCREATE"``, ``"UIDVALIDITY 3"``, ``"COPYUID 7 1:3 10:12"``)."""

    status: Status
    text: str
    code: str | None = None

    @classmethod
    def ok(cls, text: str = "done", code: str | None = None) -> Result:
        return cls("OK", text, code)

    @classmethod
    def no(cls, text: str, code: str | None = None) -> Result:
        return cls("NO", text, code)

    @classmethod
    def bad(cls, text: str, code: str | None = None) -> Result:
        return cls("BAD", text, code)


HandlerFn = Callable[["ImapSession", "Command"], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class Handler:
    """One registered command name: the coroutine, the states it is valid in, and the capability
    atoms its presence advertises (``"MOVE"`` for MOVE; empty for core commands)."""

    name: str
    fn: HandlerFn
    states: tuple[str, ...]
    capabilities: tuple[str, ...] = ()
