"""Verdicts on RFC 9698 (JMAPACCESS), from what the server said: pure functions of recorded exchanges and of
the outcome of opening the advertised JMAP session.

What is judged, and why each detail matters to a client author:

* nothing about JMAP before authentication, nor after a failed login (a client must not learn the URL, and must
  not be told that credentials it did not prove would work);
* after a login, JMAPACCESS in *every* capability list the server sends (the tagged OK's code and CAPABILITY),
  together with OBJECTID, which RFC 9698 §3 requires alongside it;
* GETJMAPACCESS: exactly one untagged ``JMAPACCESS`` with a *quoted* URL, then OK; BAD with arguments;
* the URL opens a JMAP session for the very same credential: the capability is a promise about *these*
  credentials, so a refusal there means the advertisement was wrong, and the verdict says for which kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Check, Credential, not_run, summarize
from .wire import Exchange, capability_lists, parse_quoted, url_problem

PREAUTH = "RFC 9698: no JMAPACCESS before login"
FAILED_LOGIN = "RFC 9698: no JMAPACCESS after a failed login"
AFTER_LOGIN = "RFC 9698: JMAPACCESS and OBJECTID after login"
GETJMAPACCESS = "RFC 9698: GETJMAPACCESS gives one quoted URL"
GETJMAPACCESS_ARGS = "RFC 9698: GETJMAPACCESS with arguments is BAD"
SESSION = "RFC 9698: the URL opens JMAP for the same credential"


@dataclass(frozen=True)
class SessionOutcome:
    """What happened when the JMAP session URL was opened with the credential."""

    url: str
    ok: bool
    status: int | None = None  # HTTP status; None when nothing answered
    challenge: str | None = None  # WWW-Authenticate of a refusal
    error: str | None = None
    username: str | None = None
    account_id: str | None = None

    @property
    def refused(self) -> bool:
        return self.status in (401, 403)

    @property
    def brief(self) -> str:
        """``HTTP 401``, or why nothing usable answered."""
        return f"HTTP {self.status}" if self.status not in (None, 200) else self.error or "no session"


def _leaks(ex: Exchange | None) -> str | None:
    """How an exchange gave JMAP away (a URL, or OK to GETJMAPACCESS), or None."""
    if ex is None:
        return None
    if ex.untagged("JMAPACCESS"):
        return f"GETJMAPACCESS answered with a URL ({ex.transcript()})"
    if ex.status == "OK":
        return f"GETJMAPACCESS answered OK ({ex.transcript()})"
    return None


def judge_preauth(greeting: bytes, exchanges: list[Exchange], getjmapaccess: Exchange) -> Check:
    """``exchanges``: what was said before login (STARTTLS, CAPABILITY), each searched for capability lists."""
    problems: list[str] = []
    lists = capability_lists([greeting])
    if any("JMAPACCESS" in caps for caps in lists):
        problems.append("the greeting's capability list has JMAPACCESS")
    for ex in exchanges:
        if any("JMAPACCESS" in caps for caps in capability_lists(ex.lines)):
            problems.append(f"the answer to {ex.command} lists JMAPACCESS")
    leak = _leaks(getjmapaccess)
    if leak:
        problems.append(leak + "; it is valid only after login")
    if problems:
        return Check(PREAUTH, False, summarize(problems) + " (RFC 9698 §3: only after a login whose credentials "
                                                          "would also open JMAP)")
    return Check(PREAUTH, True, f"greeting and CAPABILITY list no JMAPACCESS; GETJMAPACCESS before login: "
                                f"{getjmapaccess.status or 'no answer'}")


def judge_failed_login(cred: Credential, login: Exchange, after: list[Exchange],
                       getjmapaccess: Exchange | None) -> Check:
    """A login with a deliberately wrong secret of the same kind, on its own connection: refused, and nothing
    in its answer or in later capability lists mentions JMAPACCESS."""
    if login.status == "OK":
        return Check(FAILED_LOGIN, False, f"the server accepted a deliberately wrong {cred.described} for "
                                          f"{cred.user} ({login.transcript()})")
    problems: list[str] = []
    for ex in (login, *after):
        if any("JMAPACCESS" in caps for caps in capability_lists(ex.lines)):
            problems.append(f"the answer to {ex.command} lists JMAPACCESS")
    leak = _leaks(getjmapaccess)
    if leak:
        problems.append(leak)
    if problems:
        return Check(FAILED_LOGIN, False, summarize(problems) + f" after a refused {cred.described}")
    return Check(FAILED_LOGIN, True, f"a wrong {cred.described} was refused ({login.status}); no capability list "
                                     "or GETJMAPACCESS answer mentions JMAPACCESS afterwards")


def judge_after_login(cred: Credential, login: Exchange, capability: Exchange,
                      silence_note: str = "") -> tuple[Check, bool]:
    """(verdict, whether JMAPACCESS is advertised). ``silence_note`` says what JMAP itself made of the credential
    when the server stays silent (see :func:`silence_note`)."""
    login_lists = capability_lists(login.lines)
    cmd_lists = capability_lists(capability.lines)
    if capability.status != "OK" or not cmd_lists:
        return Check(AFTER_LOGIN, False, f"CAPABILITY after login gave no capability list "
                                         f"({capability.transcript()})"), False
    lists = login_lists + cmd_lists
    with_it = [caps for caps in lists if "JMAPACCESS" in caps]
    if not with_it:
        text = (f"JMAPACCESS is not listed after a login with a {cred.described}: the server says this "
                f"{cred.described} would not open its JMAP session (a correct server stays silent for an app "
                f"password limited to IMAP, a token without JMAP scope, or a JMAP server that does not take "
                f"{cred.http_scheme}), so there is no JMAP promise to check.")
        return Check(AFTER_LOGIN, False, text + silence_note), False
    problems: list[str] = []
    missing = [where for where, group in (("the login's answer", login_lists), ("the CAPABILITY answer", cmd_lists))
               if any("JMAPACCESS" not in caps for caps in group)]
    if missing:
        problems.append(f"JMAPACCESS is missing from {' and '.join(missing)} while another list after login has "
                        "it (RFC 9698 §3: every capability list sent after such a login)")
    if not all("OBJECTID" in caps for caps in with_it):
        problems.append("OBJECTID is not listed with JMAPACCESS (RFC 9698 §3: a server offering JMAPACCESS "
                        "offers OBJECTID)")
    if problems:
        return Check(AFTER_LOGIN, False, summarize(problems)), True
    where = "the login's answer and CAPABILITY" if login_lists else "CAPABILITY"
    return Check(AFTER_LOGIN, True, f"after a {cred.described} login, {where} list JMAPACCESS and OBJECTID"), True


def silence_note(outcome: SessionOutcome | None, cred: Credential) -> str:
    """What ``--jmap URL`` made of a credential the IMAP server did not advertise JMAP for."""
    if outcome is None:
        return ""
    if outcome.ok:
        return (f" Yet {outcome.url} opens JMAP for this {cred.described} over {cred.http_scheme}: the server "
                "should have listed JMAPACCESS (RFC 9698 §3).")
    if outcome.refused:
        return (f" {outcome.url} refuses this {cred.described} too (HTTP {outcome.status}), so the silence is "
                "consistent.")
    return f" (--jmap {outcome.url}: {outcome.brief})"


def judge_getjmapaccess(ex: Exchange, advertised: bool) -> tuple[Check, str | None]:
    """(verdict, the URL when the answer was well formed)."""
    responses = ex.untagged("JMAPACCESS")
    if not advertised:
        if ex.status == "BAD" and not responses:
            return Check(GETJMAPACCESS, True, "JMAPACCESS is not listed, and GETJMAPACCESS is BAD as RFC 9698 §4 "
                                              "then requires"), None
        return Check(GETJMAPACCESS, False, f"JMAPACCESS is not listed, yet GETJMAPACCESS answered "
                                           f"{ex.transcript()} (RFC 9698 §4: BAD, and no URL)"), None
    problems: list[str] = []
    url: str | None = None
    if ex.status != "OK":
        problems.append(f"answered {ex.status or 'nothing'} ({ex.transcript()}), not one JMAPACCESS then OK")
    if len(responses) != 1:
        problems.append(f"{len(responses)} untagged JMAPACCESS responses instead of exactly one")
    if responses:
        raw = responses[0]
        value = parse_quoted(raw)
        if value is None:
            kind = "a literal" if raw.rstrip().endswith(b"}") else "not a quoted string"
            problems.append(f"the URL is {kind}: {raw[:100].decode('utf-8', 'replace')} (RFC 9698 §4: quoted)")
        else:
            bad = url_problem(value)
            if bad:
                problems.append(f"{value!r} is {bad}")
            else:
                url = value
    if problems:
        return Check(GETJMAPACCESS, False, summarize(problems)), None
    note = " (plain http: RFC 8620 §1.7 wants https beyond loopback tests)" if url and url.startswith("http:") \
        else ""
    return Check(GETJMAPACCESS, True, f'* JMAPACCESS "{url}" then {ex.status}{note}'), url


def judge_getjmapaccess_args(ex: Exchange) -> Check:
    if ex.status == "BAD" and not ex.untagged("JMAPACCESS"):
        return Check(GETJMAPACCESS_ARGS, True, f"{ex.command} answered BAD")
    return Check(GETJMAPACCESS_ARGS, False, f"{ex.command} answered {ex.transcript()} (RFC 9698 §4: the command "
                                            "takes no arguments, so BAD)")


def judge_session(url: str | None, outcome: SessionOutcome | None, cred: Credential, advertised: bool) -> Check:
    if not advertised:
        return not_run(SESSION, "the server advertised no JMAP session for this credential")
    if url is None or outcome is None:
        return not_run(SESSION, "GETJMAPACCESS gave no usable URL")
    if outcome.ok:
        return Check(SESSION, True, f"{cred.http_scheme} with the {cred.described} of {cred.user} opened {url} "
                                    f"(JMAP user {outcome.username}, mail account {outcome.account_id})")
    if outcome.refused:
        challenge = f"; WWW-Authenticate: {outcome.challenge}" if outcome.challenge else ""
        return Check(SESSION, False, f"JMAPACCESS was listed after a {cred.described} login, but {url} refused the "
                                     f"same {cred.described} over {cred.http_scheme} (HTTP {outcome.status}"
                                     f"{challenge}). The advertisement was wrong: RFC 9698 §3 lists JMAPACCESS "
                                     f"only when the credentials of the login also open JMAP")
    if outcome.status is None:
        return Check(SESSION, False, f"{outcome.error}: JMAPACCESS points at a JMAP server that cannot be "
                                     "reached (a wrong public URL?)")
    if outcome.status == 200:
        return Check(SESSION, False, f"{url} answered, but not with a JMAP session resource ({outcome.error})")
    return Check(SESSION, False, f"{url} answered HTTP {outcome.status} to the {cred.described} instead of a JMAP "
                                 "session resource")
