"""What ``janusmail check`` produces and what it is given: checks with a verdict, the report, the credential.

Kept free of I/O so that the judging code (``rfc9698``, ``rfc8474``) and the renderers share plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CredentialKind = Literal["password", "token"]


@dataclass(frozen=True)
class Credential:
    """The one credential the whole check uses, for IMAP and for JMAP alike: that is RFC 9698's promise."""

    user: str
    secret: str = field(repr=False)
    kind: CredentialKind = "password"

    @property
    def described(self) -> str:
        """How the credential is named in a verdict ("password", "bearer token")."""
        return "password" if self.kind == "password" else "bearer token"

    @property
    def http_scheme(self) -> str:
        """How it is presented to JMAP (RFC 8620 leaves the scheme to the server; these two are the usual)."""
        return "HTTP Basic" if self.kind == "password" else "HTTP Bearer"


@dataclass(frozen=True)
class Check:
    """One verdict: ``detail`` says what was seen, and when it failed, what the server should have done."""

    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True only when there were checks and every one held."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def as_json(self) -> dict[str, object]:
        """The documented JSON shape: ``{"ok": bool, "checks": [{"name", "ok", "detail"}, ...]}``."""
        return {"ok": self.ok, "checks": [c.as_json() for c in self.checks]}


def not_run(name: str, why: str) -> Check:
    """A check that could not be made: it does not hold (exit status 1), and the detail says why."""
    return Check(name, False, f"not checked: {why}")


def summarize(problems: list[str], limit: int = 4) -> str:
    """The first few problems, and how many more there were (a detail must stay readable in a table)."""
    shown = "; ".join(problems[:limit])
    rest = len(problems) - limit
    return shown + (f"; and {rest} more" if rest > 0 else "")
