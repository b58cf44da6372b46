"""issue 11, failure 1: a mailbox's FLAGS / PERMANENTFLAGS list the keywords in use, and a keyword new to a
selected session is announced by a new ``* FLAGS`` before any FETCH shows it (RFC 9051 §6.3.2, §7.3.5).

End to end through real sockets on SQLite and PostgreSQL: a raw client watches the exact order of the lines
while imaplib, our own STORE and JMAP Email/set add keywords.
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator

import httpx
import pytest

from janusmail.auth.passwords import make_credentials
from janusmail.imap.flags import mailbox_flags, permanent_flags_code
from janusmail.store.model import Mailbox
from tests.imap.e2e_util import Raw, Tenant, login, serve_shared, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

SYSTEM = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    return Tenant(shared_server)


def raw_login(srv) -> Raw:  # noqa: ANN001
    r = Raw(srv.imap_port)
    assert r.cmd("l", f'LOGIN {srv.address} "{srv.password}"')[-1].startswith(b"l OK")
    return r


def text(lines: list[bytes]) -> list[str]:
    return [ln.decode() for ln in lines]


def index_of(lines: list[str], pattern: str) -> int:
    """Index of the first line matching ``pattern`` (regex); fails the test with the lines if none does."""
    for i, ln in enumerate(lines):
        if re.search(pattern, ln):
            return i
    raise AssertionError(f"no line matches {pattern!r} in {lines}")


def flags_lines(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.startswith("* FLAGS ")]


def seed(srv) -> imaplib.IMAP4:  # noqa: ANN001
    """INBOX: 1 with $Label1 (and \\Seen), 2 with no keyword. Returns a second session with INBOX selected."""
    other = login(srv)
    for i, flags in ((1, "(\\Seen $Label1)"), (2, "()")):
        typ, _ = other.append("INBOX", flags, None, simple(i))
        assert typ == "OK"
    assert other.select("INBOX")[0] == "OK"
    return other


def test_select_lists_keywords_in_use(server) -> None:  # noqa: ANN001
    other = seed(server)
    other.append("Archive", "($Elsewhere)", None, simple(9))  # another mailbox's keyword stays out
    r = raw_login(server)
    out = text(r.cmd("s", "SELECT INBOX"))
    assert f"* FLAGS ({SYSTEM} $Label1)" in out
    assert f"* OK [PERMANENTFLAGS ({SYSTEM} $Label1 \\*)] Flags permitted" in out
    out = text(r.cmd("e", "EXAMINE INBOX"))
    assert f"* FLAGS ({SYSTEM} $Label1)" in out
    assert "* OK [PERMANENTFLAGS ()] Limited" in out  # nothing is permanent in a read-only mailbox
    r.close()
    other.logout()


def test_store_elsewhere_announces_flags_before_fetch(server) -> None:  # noqa: ANN001
    other = seed(server)
    r = raw_login(server)
    r.cmd("s", "SELECT INBOX")
    assert other.store("2", "+FLAGS", "($Label2)")[0] == "OK"
    out = text(r.cmd("n", "NOOP"))
    f = index_of(out, r"^\* FLAGS ")
    assert out[f] == f"* FLAGS ({SYSTEM} $Label1 $Label2)"
    p = index_of(out, r"^\* OK \[PERMANENTFLAGS ")
    assert out[p] == f"* OK [PERMANENTFLAGS ({SYSTEM} $Label1 $Label2 \\*)] Flags permitted"
    fetch = index_of(out, r"^\* 2 FETCH .*FLAGS \([^)]*\$Label2")
    assert f < fetch and p < fetch, out
    # the same keyword in another spelling is not new; a known keyword is never announced again
    assert other.store("1", "+FLAGS", "($LABEL2)")[0] == "OK"
    out = text(r.cmd("n2", "NOOP"))
    index_of(out, r"^\* 1 FETCH .*FLAGS \(.*\$LABEL2")  # spellings are kept per email; keywords match
                                                         # case-insensitively (RFC 9051 §2.3.2)
    assert flags_lines(out) == [], out
    r.close()
    other.logout()


def test_fetch_of_a_keyword_set_elsewhere_announces_first(server) -> None:  # noqa: ANN001
    """The FETCH itself (not only the unsolicited updates) may be the first to show a keyword."""
    other = seed(server)
    r = raw_login(server)
    r.cmd("s", "SELECT INBOX")
    assert other.store("1", "+FLAGS", "($Fetched)")[0] == "OK"
    out = text(r.cmd("f", "FETCH 1:2 (FLAGS)"))
    f = index_of(out, r"^\* FLAGS ")
    assert out[f] == f"* FLAGS ({SYSTEM} $Label1 $Fetched)"
    assert f < index_of(out, r"^\* 1 FETCH .*\$Fetched"), out
    assert len(flags_lines(out)) == 1, out
    r.close()
    other.logout()


def test_own_store_announces_new_keyword(server) -> None:  # noqa: ANN001
    other = seed(server)
    r = raw_login(server)
    r.cmd("s", "SELECT INBOX")
    out = text(r.cmd("t", "STORE 2 +FLAGS ($Mine)"))
    f = index_of(out, r"^\* FLAGS ")
    assert out[f] == f"* FLAGS ({SYSTEM} $Label1 $Mine)"
    assert f < index_of(out, r"^\* 2 FETCH .*\$Mine"), out
    assert out[-1].startswith("t OK")
    # the other session hears of it too, before its FETCH
    typ, data = other.noop()
    assert typ == "OK"
    got = other.untagged_responses
    assert any(b"$Mine" in d for d in got.get("FLAGS", []) if d), got
    r.close()
    other.logout()


def test_examine_gets_flags_without_permanentflags(server) -> None:  # noqa: ANN001
    other = seed(server)
    r = raw_login(server)
    r.cmd("e", "EXAMINE INBOX")
    assert other.store("2", "+FLAGS", "($Seen2)")[0] == "OK"
    out = text(r.cmd("n", "NOOP"))
    f = index_of(out, r"^\* FLAGS ")
    assert out[f] == f"* FLAGS ({SYSTEM} $Label1 $Seen2)"
    assert f < index_of(out, r"^\* 2 FETCH .*\$Seen2"), out
    assert not any("PERMANENTFLAGS" in ln for ln in out), out
    r.close()
    other.logout()


def test_jmap_keyword_is_announced_before_fetch(server) -> None:  # noqa: ANN001
    other = seed(server)
    r = raw_login(server)
    r.cmd("s", "SELECT INBOX")
    out = text(r.cmd("i", "FETCH 2 (EMAILID)"))
    email_id = re.search(r"EMAILID \(([^)]+)\)", " ".join(out)).group(1)
    with httpx.Client(auth=(server.address, server.password), timeout=30, follow_redirects=True) as http:
        session = http.get(server.config.session_url).json()
        account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        resp = http.post(session["apiUrl"], json={"using": USING, "methodCalls": [[
            "Email/set", {"accountId": account, "update": {email_id: {"keywords/$fromjmap": True}}}, "c"]]})
        resp.raise_for_status()
        name, result, _ = resp.json()["methodResponses"][0]
        assert name == "Email/set" and email_id in result["updated"], result
    out = text(r.cmd("n", "NOOP"))
    f = index_of(out, r"^\* FLAGS ")
    assert out[f] == f"* FLAGS ({SYSTEM} $Label1 $fromjmap)"
    assert f < index_of(out, r"^\* 2 FETCH .*FLAGS \([^)]*\$fromjmap"), out
    r.close()
    other.logout()


def test_mailbox_keywords_store_read(store) -> None:  # noqa: ANN001
    """The store read behind SELECT: distinct keywords of one mailbox, one spelling per key, nothing else."""
    acct = store.accounts.create("kw@example.test", *make_credentials("pw"))
    boxes: dict[str, Mailbox] = {b.name: b for b in store.mailboxes.list(acct.id)}
    inbox, archive = boxes["INBOX"].id, boxes["Archive"].id
    assert store.keywords.in_mailbox(acct.id, inbox) == []
    store.emails.ingest(acct.id, simple(1), [inbox], ["$seen", "$Label1", "Work"])
    store.emails.ingest(acct.id, simple(2), [inbox, archive], ["$label1", "$Zeta"])
    store.emails.ingest(acct.id, simple(3), [archive], ["$Only"])
    # sorted by key, one spelling per key, no system flag
    assert store.keywords.in_mailbox(acct.id, inbox) == ["$Label1", "$Zeta", "Work"]
    assert store.keywords.in_mailbox(acct.id, archive) == ["$label1", "$Only", "$Zeta"]
    other = store.accounts.create("other@example.test", *make_credentials("pw"))
    assert store.keywords.in_mailbox(other.id, inbox) == []  # not that account's mailbox


def test_flag_list_helpers() -> None:
    assert mailbox_flags([]) == ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]
    assert mailbox_flags(["$A", "b"])[-2:] == ["$A", "b"]
    assert permanent_flags_code(["$A"], readonly=False) == f"PERMANENTFLAGS ({SYSTEM} $A \\*)"
    assert permanent_flags_code(["$A"], readonly=True) == "PERMANENTFLAGS ()"
