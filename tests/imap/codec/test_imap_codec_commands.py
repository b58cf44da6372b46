"""Typed arguments for every command except SEARCH and FETCH/STORE (which have their own files)."""

from __future__ import annotations

import datetime as dt

import pytest

from janusmail.imap.codec import (
    NO_ARGS,
    AppendArgs,
    AppendMessage,
    AuthenticateArgs,
    CompressArgs,
    CopyArgs,
    CreateArgs,
    EnableArgs,
    ExpungeArgs,
    IdArgs,
    ListArgs,
    LoginArgs,
    LsubArgs,
    MailboxArgs,
    QResync,
    QuotaRootArgs,
    RenameArgs,
    SelectArgs,
    SequenceSet,
    SetQuotaArgs,
    StatusArgs,
)
from tests.imap.codec.imap_codec_util import bad, cmd

NO_ARG_COMMANDS = [
    "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "IDLE", "CHECK", "CLOSE", "UNSELECT", "NAMESPACE",
    "GETJMAPACCESS",
]  # fmt: skip


@pytest.mark.parametrize("name", NO_ARG_COMMANDS)
def test_commands_without_arguments(name: str) -> None:
    c = cmd(f"t1 {name.lower()}")
    assert (c.tag, c.name, c.args) == ("t1", name, NO_ARGS)


@pytest.mark.parametrize("name", NO_ARG_COMMANDS)
def test_arguments_after_argumentless_command_are_bad(name: str) -> None:
    e = bad(f"t1 {name} extra")
    assert e.tag == "t1" and e.status == "BAD" and e.command == name


def test_getjmapaccess_rfc9698() -> None:
    assert cmd("1b GETJMAPACCESS").name == "GETJMAPACCESS"
    assert cmd("1b getJmapAccess").name == "GETJMAPACCESS"
    # erratum 8635: a bare JMAPACCESS is not a command
    e = bad("2b JMAPACCESS")
    assert e.tag == "2b" and "Unknown command" in e.text and e.command is None
    assert bad("2b GETJMAPACCESS ").tag == "2b"  # trailing space is an argument too


def test_unknown_command_keeps_tag() -> None:
    e = bad("x1 FROBNICATE a b c")
    assert (e.tag, e.status, e.code) == ("x1", "BAD", None)
    e = bad("x2 UID FROBNICATE 1")
    assert e.tag == "x2" and "UID FROBNICATE" in e.text


def test_missing_command_and_bad_tag() -> None:
    assert bad("x1").tag == "x1"
    assert bad("+ NOOP").tag is None
    assert bad("(a) NOOP").tag is None


def test_login_forms() -> None:
    assert cmd("a LOGIN fred secret").args == LoginArgs("fred", "secret")
    assert cmd('a LOGIN "arnt" "trondheim"').args == LoginArgs("arnt", "trondheim")
    assert cmd('a LOGIN "a\\"b\\\\c" "p w"').args == LoginArgs('a"b\\c', "p w")
    assert cmd("a LOGIN {4}\r\nfred {6}\r\nsecret").args == LoginArgs("fred", "secret")
    assert cmd('a LOGIN "ünïcode" "pässwörd"'.encode()).args == LoginArgs("ünïcode", "pässwörd")
    assert cmd("a login fr]ed x").args == LoginArgs("fr]ed", "x")  # ']' is an ASTRING-CHAR


@pytest.mark.parametrize(
    "line",
    [
        "a LOGIN fred",
        "a LOGIN fred  secret",
        "a LOGIN  fred secret",
        'a LOGIN "fred secret',
        'a LOGIN "a\\x" b',  # only \" and \\ may be escaped
        "a LOGIN (fred) secret",
        "a LOGIN fred secret extra",
        "a LOGIN fr%ed x",
    ],
)
def test_login_syntax_errors(line: str) -> None:
    e = bad(line)
    assert e.tag == "a" and e.command == "LOGIN"


def test_invalid_utf8_in_quoted_string_is_bad() -> None:
    assert bad(b'a LOGIN "\xff\xfe" x').command == "LOGIN"


def test_authenticate() -> None:
    assert cmd("a AUTHENTICATE plain").args == AuthenticateArgs("PLAIN", None)
    assert cmd("a AUTHENTICATE PLAIN =").args == AuthenticateArgs("PLAIN", b"")
    assert cmd("a AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0").args == AuthenticateArgs("PLAIN", b"\0fred\0secret")
    assert cmd("1 AUTHENTICATE OAUTHBEARER bixhPXVzZXI=").args == AuthenticateArgs("OAUTHBEARER", b"n,a=user")
    assert bad("a AUTHENTICATE PLAIN abc").command == "AUTHENTICATE"  # not valid base64
    assert bad("a AUTHENTICATE PLAIN a!b=").command == "AUTHENTICATE"
    assert bad("a AUTHENTICATE").command == "AUTHENTICATE"


def test_enable() -> None:
    assert cmd("a ENABLE condstore UTF8=ACCEPT IMAP4rev2").args == EnableArgs(
        ("CONDSTORE", "UTF8=ACCEPT", "IMAP4REV2")
    )
    assert bad("a ENABLE").command == "ENABLE"


def test_select_and_examine() -> None:
    assert cmd("a SELECT inbox").args == SelectArgs("INBOX")
    assert cmd("a EXAMINE Archive").args == SelectArgs("Archive")
    assert cmd("a EXAMINE Archive").name == "EXAMINE"
    assert cmd('a SELECT "My Mail" (CONDSTORE)').args == SelectArgs("My Mail", condstore=True)
    c = cmd("A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))")
    assert c.args == SelectArgs(
        "INBOX", qresync=QResync(67890007, 20050715194045000, SequenceSet.parse("41,43:211,214:541"))
    )
    c = cmd(
        "B02 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))"
    )
    q = c.args.qresync
    assert q is not None and q.seq_match is not None
    assert q.seq_match[0].to_string() == "5000,7500,9000,9990:9999"
    c = cmd("a SELECT INBOX (QRESYNC (1 2 (1:3 4:6)) CONDSTORE)")
    assert c.args.condstore and c.args.qresync == QResync(
        1, 2, None, (SequenceSet.parse("1:3"), SequenceSet.parse("4:6"))
    )


@pytest.mark.parametrize(
    "line",
    [
        "a SELECT",
        "a SELECT INBOX (FOO)",
        "a SELECT INBOX (CONDSTORE",
        "a SELECT INBOX (CONDSTORE )",
        "a SELECT INBOX (QRESYNC (0 5))",  # uidvalidity is nz-number
        "a SELECT INBOX (QRESYNC (1 0))",  # mod-sequence-value is >= 1
        "a SELECT INBOX ()",
        "a SELECT INBOX CONDSTORE",
    ],
)
def test_select_errors(line: str) -> None:
    assert bad(line).tag == "a"


def test_create_delete_rename_subscribe() -> None:
    assert cmd("a CREATE Work/Projects").args == CreateArgs("Work/Projects")
    assert cmd("a CREATE Sent (USE (\\sent))").args == CreateArgs("Sent", ("\\Sent",))
    assert cmd("a CREATE x (USE (\\Archive \\Junk))").args == CreateArgs("x", ("\\Archive", "\\Junk"))
    assert bad("a CREATE x (USE (Sent))").command == "CREATE"
    assert bad("a CREATE x (FOO)").command == "CREATE"
    assert cmd("a DELETE x").args == MailboxArgs("x")
    assert cmd("a SUBSCRIBE &AMk-t&AOk-").args == MailboxArgs("&AMk-t&AOk-")
    assert cmd('a UNSUBSCRIBE "a b"').args == MailboxArgs("a b")
    assert cmd("a RENAME old new").args == RenameArgs("old", "new")
    assert cmd("a RENAME Inbox Old-Inbox").args == RenameArgs("INBOX", "Old-Inbox")
    assert bad("a RENAME old").command == "RENAME"


def test_list_basic() -> None:
    c = cmd('a LIST "" *')
    assert c.args == ListArgs("", ("*",))
    assert not c.args.extended
    assert cmd('a LIST "" ""').args == ListArgs("", ("",))
    assert cmd("a LIST ~/Mail/ %").args == ListArgs("~/Mail/", ("%",))
    assert cmd('a LIST "" INBOX/%/]x').args.patterns == ("INBOX/%/]x",)


def test_list_extended() -> None:
    c = cmd(
        'a LIST (SUBSCRIBED RECURSIVEMATCH) "" (% "Other/*") RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN MAILBOXID))'
    )
    assert c.args == ListArgs(
        "",
        ("%", "Other/*"),
        frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
        return_children=True,
        return_special_use=True,
        return_status=("MESSAGES", "UNSEEN", "MAILBOXID"),
        extended=True,
    )
    c = cmd('a LIST (SPECIAL-USE) "" *')
    assert c.args.selection == frozenset({"SPECIAL-USE"}) and c.args.extended
    c = cmd('a LIST () "" % RETURN ()')
    assert c.args.extended and c.args.selection == frozenset()
    c = cmd('a list "" % return (subscribed)')
    assert c.args.return_subscribed and c.args.extended
    assert cmd('a LIST (REMOTE) "" %').args.selection == frozenset({"REMOTE"})


@pytest.mark.parametrize(
    "line",
    [
        'a LIST (RECURSIVEMATCH) "" %',  # RFC 5258: needs a base option
        'a LIST (REMOTE RECURSIVEMATCH) "" %',
        'a LIST (BOGUS) "" %',
        'a LIST "" % RETURN (BOGUS)',
        'a LIST "" % FOO (CHILDREN)',
        'a LIST "" % RETURN (STATUS (FOO))',
        'a LIST "" ()',
        'a LIST ""',
    ],
)
def test_list_errors(line: str) -> None:
    assert bad(line).command == "LIST"


def test_lsub_namespace_status() -> None:
    assert cmd('a LSUB "" news.*').args == LsubArgs("", "news.*")
    c = cmd(
        "a STATUS blurdybloop (UIDNEXT MESSAGES deleted SIZE MAILBOXID HIGHESTMODSEQ RECENT UNSEEN UIDVALIDITY)"
    )
    assert c.args == StatusArgs(
        "blurdybloop",
        (
            "UIDNEXT",
            "MESSAGES",
            "DELETED",
            "SIZE",
            "MAILBOXID",
            "HIGHESTMODSEQ",
            "RECENT",
            "UNSEEN",
            "UIDVALIDITY",
        ),
    )
    assert bad("a STATUS x ()").command == "STATUS"
    assert bad("a STATUS x (BOGUS)").command == "STATUS"
    assert bad("a STATUS x MESSAGES").command == "STATUS"


def test_append_single() -> None:
    c = cmd(b"A003 APPEND saved-messages (\\Seen) {11}\r\nHello World")
    assert c.args == AppendArgs("saved-messages", (AppendMessage(b"Hello World", ("\\Seen",)),))
    c = cmd(b'a APPEND INBOX "17-Jul-1996 02:44:25 -0700" {3+}\r\nabc')
    msg = c.args.messages[0]
    assert msg.date == dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    c = cmd(b'a APPEND INBOX () " 7-Jul-1996 02:44:25 +0130" {0+}\r\n')
    assert c.args.messages[0].date.day == 7 and c.args.messages[0].data == b""
    assert c.args.messages[0].date.utcoffset() == dt.timedelta(hours=1, minutes=30)
    # RFC 9051 wants a 2-wide day; a 1-digit day is unambiguous, so it is accepted
    assert cmd(b'a APPEND INBOX "1-jan-2020 00:00:00 +0000" {0+}\r\n').args.messages[0].date.day == 1


def test_append_binary_and_utf8() -> None:
    c = cmd(b"a APPEND INBOX ~{5+}\r\na\x00b\r\n")
    assert c.args.messages == (AppendMessage(b"a\x00b\r\n", binary=True),)
    c = cmd("a APPEND INBOX (\\Seen) UTF8 (~{5+}\r\nhé\r\n)".encode())
    assert c.args.messages == (AppendMessage("hé\r\n".encode(), ("\\Seen",), utf8=True),)


def test_multiappend() -> None:
    data = (
        b"A003 APPEND saved-messages (\\Seen) {4+}\r\nmsg1 "
        b'"07-Feb-1994 22:43:04 -0800" {4+}\r\nmsg2 (\\Draft $Label) ~{4+}\r\nmsg3 UTF8 (~{4+}\r\nmsg4)'
    )
    c = cmd(data)
    msgs = c.args.messages
    assert [m.data for m in msgs] == [b"msg1", b"msg2", b"msg3", b"msg4"]
    assert (
        msgs[0].flags == ("\\Seen",) and msgs[1].date is not None and msgs[2].flags == ("\\Draft", "$Label")
    )
    assert msgs[2].binary and msgs[3].utf8


@pytest.mark.parametrize(
    "line",
    [
        b"a APPEND INBOX",
        b"a APPEND INBOX (\\Seen)",
        b'a APPEND INBOX "31-Feb-2020 00:00:00 +0000" {1+}\r\nx',
        b'a APPEND INBOX "01-Jan-2020 0:00:00 +0000" {1+}\r\nx',
        b'a APPEND INBOX "01-Jan-2020 00:00:00 +2400" {1+}\r\nx',
        b'a APPEND INBOX "01-Foo-2020 00:00:00 +0000" {1+}\r\nx',
        b"a APPEND INBOX hello",
        b"a APPEND INBOX {1+}\r\nx extra",
        b"a APPEND INBOX UTF8 {1+}\r\nx",
        b"a APPEND INBOX (\\Seen {1+}\r\nx",
    ],
)
def test_append_errors(line: bytes) -> None:
    assert bad(line).command == "APPEND"


def test_expunge_copy_move() -> None:
    assert cmd("a EXPUNGE").args == ExpungeArgs(None)
    c = cmd("a UID EXPUNGE 3000:3002")
    assert c.name == "UID EXPUNGE" and c.uid
    assert cmd("a UID EXPUNGE 3000:3002").args == ExpungeArgs(SequenceSet.parse("3000:3002"))
    assert cmd("a UID EXPUNGE $").args == ExpungeArgs(SequenceSet.parse("$"))
    assert bad("a UID EXPUNGE").command == "UID EXPUNGE"
    assert cmd("a COPY 2:4 MEETING").args == CopyArgs(SequenceSet.parse("2:4"), "MEETING")
    assert cmd("a MOVE 1:* Trash").name == "MOVE"
    c = cmd('a uid move 42 "Archive/2024"')
    assert (c.name, c.args) == ("UID MOVE", CopyArgs(SequenceSet.parse("42"), "Archive/2024"))
    assert cmd("a UID COPY $ inbox").args == CopyArgs(SequenceSet.parse("$"), "INBOX")
    assert bad("a COPY 0 x").command == "COPY"
    assert bad("a COPY 1").command == "COPY"


def test_uid_expunge_rejects_mixed_saved_set() -> None:
    assert bad("a UID EXPUNGE 3000:3002,$").command == "UID EXPUNGE"


def test_id() -> None:
    assert cmd("a ID NIL").args == IdArgs(None)
    assert cmd('a ID ("name" "sodr" "version" NIL)').args == IdArgs((("name", "sodr"), ("version", None)))
    assert cmd("a ID ()").args == IdArgs(())
    assert bad("a ID (name sodr)").command == "ID"  # field names are strings, not atoms
    assert bad("a ID").command == "ID"


def test_compress_and_quota() -> None:
    assert cmd("a COMPRESS deflate").args == CompressArgs("DEFLATE")
    assert cmd('a GETQUOTA ""').args == QuotaRootArgs("")
    assert cmd("a GETQUOTAROOT inbox").args == MailboxArgs("INBOX")
    assert cmd('a SETQUOTA "" (STORAGE 512 message 100)').args == SetQuotaArgs(
        "", (("STORAGE", 512), ("MESSAGE", 100))
    )
    assert bad("a COMPRESS").command == "COMPRESS"


def test_case_insensitive_names_and_uid_prefix() -> None:
    assert cmd("a uId fEtCh 1 flags").name == "UID FETCH"
    assert cmd("a Uid Search all").name == "UID SEARCH"
    assert cmd("a uid store 1 flags ()").name == "UID STORE"
    assert cmd("a uid copy 1 x").name == "UID COPY"
    assert cmd("a uid sort (date) utf-8 all").name == "UID SORT"
    assert cmd("a uid thread references utf-8 all").name == "UID THREAD"
