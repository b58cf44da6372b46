"""The "JMAPACCESS explain" page's reasoning: would an IMAP login with this kind of credential be offered
RFC 9698 ``JMAPACCESS`` (and answered by ``GETJMAPACCESS``), and which fact decides it?

Nothing is decided here. The steps are the ones an IMAP session takes, each answered by the code that takes it:
the login (``AuthPolicy.refusal`` for the kind on IMAP, the credential's own protocols, and for a token the
real validation: a short-lived token is issued and checked by ``Authenticator.check_bearer`` for ``imap``); the
JMAP URL the session would advertise (``Config.session_url``, as ``ImapSession.jmap_access`` reads it); then
``Authenticator.jmap_access_decision``, the predicate behind ``ImapSession.jmap_access``. The first step that
fails is the deciding fact; when all pass, the predicate's own fact is.

Blocking (store reads, token signing): run it on a thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from janusmail.auth import app_passwords
from janusmail.auth.authenticator import AuthResult
from janusmail.auth.policy import PROTOCOLS
from janusmail.auth.tokens import TokenError

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.runtime import Runtime

KINDS = ("password", "app_password", "token")
#: Lifetime of the token issued to test a token login (never sent anywhere, dropped at once).
PROBE_TTL = 300


@dataclass(frozen=True, slots=True)
class Step:
    what: str
    ok: bool
    fact: str


@dataclass(slots=True)
class Explanation:
    offered: bool = False
    deciding: str = ""
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, ok: bool, fact: str) -> bool:
        self.steps.append(Step(what, ok, fact))
        if not ok and not self.deciding:
            self.deciding = fact
        return ok


def explain(rt: Runtime, account_id: str, kind: str, *, protocols: frozenset[str] = frozenset(),
            scopes: frozenset[str] = frozenset(), app_password_id: str | None = None) -> Explanation:
    """Walk an IMAP login of ``kind`` for the account: ``protocols`` for a hypothetical app password (or
    ``app_password_id``, a real one of the account), ``scopes`` for a token."""
    out = Explanation()
    auth, store, policy = rt.auth, rt.store, rt.auth.policy
    row = store.credentials.login_account(account_id=account_id)
    if not out.add("account", row is not None and not row.disabled,
                   "the account exists" if row is not None and not row.disabled
                   else "the account is disabled: every login fails" if row is not None
                   else "no such account"):
        return out
    assert row is not None
    method = "password" if kind == "password" else "app_password" if kind == "app_password" else "bearer"
    refused = policy.refusal(method, "imap")
    if not out.add("IMAP accepts this kind of credential", refused is None,
                   f"[auth] {refused}" if refused else f"IMAP accepts {method.replace('_', ' ')}s"):
        return out
    hypothetical: app_passwords.AppPassword | None = None
    if kind == "password":
        if not out.add("the account has a password", bool(row.password_hash),
                       "the account has a password" if row.password_hash else "the account has no password"):
            return out
        result = AuthResult(row.id, row.address, "password", None, frozenset(PROTOCOLS))
    elif kind == "app_password":
        if app_password_id:
            ap = app_passwords.get(store, app_password_id)
            if ap is None or ap.account_id != row.id:
                out.add("the app password", False, "no such app password for this account")
                return out
            if not out.add("the app password is active", ap.active,
                           "the app password is active" if ap.active else "the app password was revoked"):
                return out
        else:
            now = int(time.time())
            ap = hypothetical = app_passwords.AppPassword("(hypothetical)", row.id, "(what if)",
                                                          frozenset(protocols), now, None, None)
        granted = "imap" in ap.protocols
        if not out.add("the app password is granted imap", granted,
                       f"the app password's protocols: {app_passwords.format_protocols(ap.protocols) or 'none'}"):
            return out
        result = AuthResult(row.id, row.address, "app_password", ap.id, ap.protocols)
    elif kind == "token":
        if auth.tokens is None:
            out.add("token issuer", False, "no token issuer is configured")
            return out
        try:
            token = auth.tokens.issue(row.id, sorted(scopes), PROBE_TTL)
            result = auth.check_bearer(token, "imap")
        except (TokenError, ValueError) as exc:
            reason = exc.description if isinstance(exc, TokenError) else str(exc)
            out.add("IMAP accepts the token", False, f"the token would be refused for IMAP: {reason}")
            return out
        out.add("IMAP accepts the token", True, f"a token with scope {' '.join(sorted(scopes))} logs in to IMAP")
    else:
        raise ValueError(f"unknown credential kind {kind!r}")
    if not policy.plaintext_allowed("imap", tls_active=False, peer_loopback=False):
        out.notes.append(f"Without TLS, IMAP refuses LOGIN and AUTHENTICATE PLAIN from other hosts ([imap] "
                         f"plaintext_auth = {policy.imap_plaintext_without_tls}): log in over TLS.")
    url = rt.config.session_url
    if not out.add("a JMAP URL to advertise", url is not None,
                   f"JMAPACCESS would point at {url}" if url is not None
                   else "no JMAP URL is known (JMAP is off here and no public_url is set)"):
        return out
    decision = auth.jmap_access_decision(result, app_password=hypothetical)
    out.add("JMAP accepts the same credential", decision.offered, decision.fact)
    out.offered = decision.offered
    if out.offered:
        out.deciding = decision.fact
    return out
