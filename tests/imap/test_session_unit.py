"""The session state machine without sockets: capabilities, LOGINDISABLED off loopback, states, errors,
SASL framing, mailbox-name encodings and the JMAPACCESS rules that do not need a real client."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from janusmail.auth import passwords
from janusmail.imap.session import ImapSession
from janusmail.runtime import Runtime
from tests.imap.e2e_util import ADDRESS, PASSWORD, Harness, make_runtime, use_cheap_argon2

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = make_runtime(tmp_path)
    runtime.store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
    yield runtime
    runtime.store.close()


def caps_of(data: bytes) -> list[str]:
    m = re.search(rb"CAPABILITY ([^\]\r\n]*)", data)
    assert m, data
    return m.group(1).decode().split()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_greeting_has_capabilities_loopback(rt: Runtime) -> None:
    h = Harness(rt, peer="127.0.0.1", starttls=True)
    caps = caps_of(h.greeting)
    assert h.greeting.startswith(b"* OK [CAPABILITY IMAP4rev2 IMAP4rev1 ")
    for c in ("STARTTLS", "AUTH=PLAIN", "AUTH=SCRAM-SHA-256", "SASL-IR", "LITERAL+", "ENABLE", "IDLE", "NAMESPACE",
              "UNSELECT", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE",
              "STATUS=SIZE", "UTF8=ACCEPT", "OBJECTID", "ID", "CONDSTORE", "APPENDLIMIT=67108864"):
        assert c in caps, c
    assert "LOGINDISABLED" not in caps
    assert "JMAPACCESS" not in caps
    await h.close()


async def test_offloopback_plaintext_logindisabled(rt: Runtime) -> None:
    h = Harness(rt, peer="192.0.2.7", starttls=True)
    caps = caps_of(h.greeting)
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps
    assert "AUTH=PLAIN" not in caps and "AUTH=LOGIN" not in caps and "AUTH=OAUTHBEARER" not in caps
    assert "AUTH=SCRAM-SHA-256" in caps  # SCRAM never exposes the password
    out = await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')
    assert out.startswith(b"a NO [PRIVACYREQUIRED]")
    out = await h.send("b AUTHENTICATE PLAIN " + b64(f"\0{ADDRESS}\0{PASSWORD}".encode()))
    assert out.startswith(b"b NO [PRIVACYREQUIRED]")
    assert h.session.state == "nonauth"
    await h.close()


async def test_offloopback_with_tls_allows_login(rt: Runtime) -> None:
    h = Harness(rt, peer="192.0.2.7", tls=True)
    caps = caps_of(h.greeting)
    assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps and "AUTH=PLAIN" in caps
    out = await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')
    assert out.startswith(b"a OK [CAPABILITY IMAP4rev2 ")
    assert "AUTH=PLAIN" not in caps_of(out)
    await h.close()


async def test_plaintext_always_and_never(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path / "a", imap__plaintext_auth="always")
    rt.store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
    h = Harness(rt, peer="192.0.2.7")
    assert "LOGINDISABLED" not in caps_of(h.greeting)
    assert (await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')).startswith(b"a OK")
    await h.close()
    rt.store.close()
    rt = make_runtime(tmp_path / "b", imap__plaintext_auth="never")
    rt.store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
    h = Harness(rt, peer="127.0.0.1")
    assert "LOGINDISABLED" in caps_of(h.greeting)
    assert (await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')).startswith(b"a NO [PRIVACYREQUIRED]")
    await h.close()
    rt.store.close()


async def test_states_and_unknown_commands(rt: Runtime) -> None:
    h = Harness(rt, peer="127.0.0.1")
    assert (await h.send("a SELECT INBOX")).startswith(b"a BAD")
    assert (await h.send("b GETJMAPACCESS")).startswith(b"b BAD")
    assert (await h.send("c JMAPACCESS")).startswith(b"c BAD")
    assert (await h.send("d FROBNICATE")).startswith(b"d BAD")
    assert (await h.send("e NOOP")) == b"e OK NOOP completed\r\n"
    out = await h.send(f'f LOGIN {ADDRESS} "{PASSWORD}"')
    assert out.startswith(b"f OK")
    assert (await h.send(f'g LOGIN {ADDRESS} "{PASSWORD}"')).startswith(b"g BAD")
    assert (await h.send("h FETCH 1 FLAGS")).startswith(b"h BAD")  # not selected
    assert (await h.send("i JMAPACCESS")).startswith(b"i BAD")  # the erratum's typo is not a command
    assert (await h.send("j GETJMAPACCESS extra")).startswith(b"j BAD")
    out = await h.send("k LOGOUT")
    assert out.startswith(b"* BYE") and b"k OK" in out
    assert h.session.closed
    await h.close()


async def test_failed_login_no_jmapaccess(rt: Runtime) -> None:
    h = Harness(rt, peer="127.0.0.1")
    out = await h.send(f'a LOGIN {ADDRESS} "wrong"')
    assert out == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    out = await h.send("b CAPABILITY")
    assert b"JMAPACCESS" not in out
    assert (await h.send("c GETJMAPACCESS")).startswith(b"c BAD")
    await h.close()


async def test_too_many_errors_disconnects(rt: Runtime) -> None:
    h = Harness(rt, peer="127.0.0.1")
    out = b""
    for i in range(25):
        out += await h.send(f"x{i} BOGUS")
        if h.session.closed:
            break
    assert b"* BYE" in out and h.session.closed
    await h.close()


async def test_sasl_plain_with_continuation_and_cancel(rt: Runtime) -> None:
    h = Harness(rt, peer="127.0.0.1")
    assert await h.send("a AUTHENTICATE PLAIN") == b"+ \r\n"
    out = await h.send("*")
    assert out.startswith(b"a BAD")
    assert h.session.state == "nonauth"
    assert await h.send("b AUTHENTICATE PLAIN") == b"+ \r\n"
    out = await h.send("!!notbase64")
    assert out.startswith(b"b BAD")
    assert await h.send("c AUTHENTICATE PLAIN") == b"+ \r\n"
    out = await h.send(b64(f"\0{ADDRESS}\0{PASSWORD}".encode()))
    assert out.startswith(b"c OK [CAPABILITY ")
    assert h.session.state == "auth"
    await h.close()


async def test_sasl_ir_empty_and_pipelined_after(rt: Runtime) -> None:
    h = Harness(rt, peer="127.0.0.1")
    # SASL-IR "=" is an empty initial response: PLAIN then fails on it.
    out = await h.send("a AUTHENTICATE PLAIN =")
    assert out.startswith(b"a NO")
    # a command pipelined right after a one-step AUTHENTICATE runs afterwards
    ir = b64(f"\0{ADDRESS}\0{PASSWORD}".encode())
    out = await h.send(f"b AUTHENTICATE PLAIN {ir}\r\nc NOOP\r\n")
    assert out.startswith(b"b OK") and out.endswith(b"c OK NOOP completed\r\n")
    await h.close()


async def test_unknown_mechanism(rt: Runtime) -> None:
    h = Harness(rt, peer="127.0.0.1")
    out = await h.send("a AUTHENTICATE GSSAPI")
    assert out.startswith(b"a NO")
    await h.close()


async def test_enable_and_names(rt: Runtime) -> None:
    h = Harness(rt, peer="127.0.0.1")
    await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')
    s: ImapSession = h.session
    assert s.parse_mailbox("Entw&APw-rfe/x") == ["Entwürfe", "x"]
    assert s.parse_mailbox("inbox/Sub") == ["INBOX", "Sub"]
    out = await h.send("b CREATE &AGE-&AGE-")  # non-canonical modified UTF-7: a name we can never make
    assert out.startswith(b"b NO [CANNOT]")
    out = await h.send("c CREATE Entw&APw-rfe")
    assert out.startswith(b"c OK [MAILBOXID (")
    out = await h.send('d LIST "" Entw*')
    assert b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe\r\n' in out
    out = await h.send("e ENABLE IMAP4rev2 FOO")
    assert out == b"* ENABLED IMAP4rev2\r\ne OK ENABLE completed\r\n"
    assert s.rev2 and s.utf8
    out = await h.send('f LIST "" Entw*')
    assert '* LIST (\\HasNoChildren) "/" "Entwürfe"\r\n'.encode() in out
    out = await h.send("g ENABLE UTF8=ACCEPT CONDSTORE QRESYNC")
    assert out.startswith(b"* ENABLED UTF8=ACCEPT CONDSTORE QRESYNC")
    assert s.condstore and s.qresync
    await h.close()


async def test_select_responses_rev1_and_rev2(rt: Runtime) -> None:
    h = Harness(rt, peer="127.0.0.1")
    await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')
    out = await h.send("b SELECT inbox")
    text = out.decode()
    assert "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in text
    assert "* 0 EXISTS" in text and "* 0 RECENT" in text
    assert "[UIDVALIDITY " in text and "[UIDNEXT 1]" in text and "[PERMANENTFLAGS (" in text and "\\*)" in text
    assert "[HIGHESTMODSEQ " in text and "[MAILBOXID (" in text
    assert text.endswith("b OK [READ-WRITE] SELECT completed\r\n")
    assert "* LIST" not in text
    out = await h.send("c EXAMINE Sent")
    text = out.decode()
    assert text.startswith("* OK [CLOSED]")
    assert "[PERMANENTFLAGS ()]" in text and text.endswith("c OK [READ-ONLY] EXAMINE completed\r\n")
    await h.send("d ENABLE IMAP4rev2")
    out = (await h.send("e SELECT Sent")).decode()
    assert "RECENT" not in out and '* LIST (\\HasNoChildren \\Sent) "/" Sent' in out
    assert (await h.send("f SELECT nosuch")).endswith(b"f NO [NONEXISTENT] No such mailbox\r\n")
    assert h.session.state == "auth"  # a failed SELECT leaves no mailbox selected
    await h.close()


async def test_preauth_literal_limit(rt: Runtime) -> None:
    h = Harness(rt, peer="127.0.0.1")
    out = await h.send("a APPEND INBOX {100000}")
    assert out.startswith(b"a ")
    assert not out.startswith(b"+")
    out = await h.send("b NOOP")
    assert out == b"b OK NOOP completed\r\n"
    await h.close()


async def test_draft_debugging_reason_is_generic(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, imap__jmapaccess_draft_response_code=True, auth__jmap_accepts_basic=False)
    rt.store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
    from janusmail.auth.factory import build_authenticator
    from tests.imap.e2e_util import no_delay

    rt.auth = build_authenticator(rt.config, rt.store)
    no_delay(rt.auth)
    h = Harness(rt, peer="127.0.0.1")
    out = (await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')).decode()
    lines = out.splitlines()
    assert lines[0] == '* OK [DEBUGGING "JMAP does not accept passwords"] JMAP access is not available'
    assert lines[1].startswith("a OK [CAPABILITY ") and "JMAPACCESS" not in lines[1]
    assert ADDRESS not in out
    await h.close()
    rt.store.close()


# -- properties -----------------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from janusmail.imap.codec import mutf7  # noqa: E402
from janusmail.imap.commands.mailboxes import matcher  # noqa: E402
from tests.fuzzing import examples  # noqa: E402


def _reference_match(pattern: str, name: str) -> bool:
    """Straightforward recursive LIST wildcard matcher to check the regex one against."""
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        return any(_reference_match(rest, name[i:]) for i in range(len(name) + 1))
    if head == "%":
        for i in range(len(name) + 1):
            if "/" in name[:i]:
                break
            if _reference_match(rest, name[i:]):
                return True
        return False
    return bool(name) and name[0] == head and _reference_match(rest, name[1:])


_names = st.text(alphabet="ab/c%*.", max_size=8)


@given(pattern=_names, name=st.text(alphabet="ab/c.", max_size=8))
@settings(max_examples=400)
def test_list_matcher_agrees_with_reference(pattern: str, name: str) -> None:
    if name.upper().startswith("INBOX"):
        return
    assert matcher(pattern)(name) == _reference_match(pattern, name)


_component = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=6).filter(
    lambda c: "/" not in c and c.strip() == c and c.strip() != "")


@given(path=st.lists(_component, min_size=1, max_size=3))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_names_round_trip_through_mutf7(rt: Runtime, path: list[str]) -> None:
    import unicodedata

    s = ImapSession(rt, peer="127.0.0.1")
    path = [unicodedata.normalize("NFC", c) for c in path]
    name = s.mailbox_name(path)
    wire = mutf7.encode(name)
    assert s.parse_mailbox(wire) == name.split("/")
    s.utf8 = True
    assert s.parse_mailbox(name) == name.split("/")


_junk = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from([b"a ", b"LOGIN ", b"SELECT ", b"{5}\r\n", b"{3+}\r\nabc", b"\"", b"(", b")",
                              b"\r\n", b"UID ", b"FETCH 1:* ", b"*", b"IDLE\r\n", b"DONE\r\n",
                              b"AUTHENTICATE PLAIN\r\n", b"=\r\n", b"LIST \"\" *\r\n", b"\x00", b"\xff"]),
             max_size=30).map(b"".join),
)


@given(chunks=st.lists(_junk, max_size=6))
@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@pytest.mark.fuzz
async def test_garbage_never_crashes_the_session(rt: Runtime, chunks: list[bytes]) -> None:
    h = Harness(rt, peer="127.0.0.1")
    await h.send(f'x LOGIN {ADDRESS} "{PASSWORD}"')
    for chunk in chunks:
        if h.session.closed:
            break
        await h.session.feed(chunk)
        out = h.session.take_output()
        assert not out or out.endswith(b"\r\n")
    await h.close()
