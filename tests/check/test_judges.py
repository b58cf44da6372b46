"""The checker's pure parts, on wire lines and values a real server would not produce on demand: literals,
two JMAPACCESS responses, capability lists that disagree, loops in a JMAP tree, \\Deleted mail shown by JMAP."""

from __future__ import annotations

from janusmail.check import rfc8474, rfc9698
from janusmail.check.model import Credential, Report, not_run
from janusmail.check.rfc8474 import ImapMailbox, ImapMessage
from janusmail.check.wire import Exchange, capability_lists, parse_quoted, url_problem
from janusmail.client import JmapBridge
from janusmail.client.keywords import flags_to_keywords, keywords_to_flags, normalize_keywords

PW = Credential("u@example.test", "s3cret-pw")
URL = "https://mail.example.test/.well-known/jmap"


def ex(command: str, *lines: str) -> Exchange:
    return Exchange(command, "a1", tuple(line.encode() for line in lines))


def test_quoted_strings_exactly():
    assert parse_quoted(b'"https://x.test/s/[jmap]"') == "https://x.test/s/[jmap]"
    assert parse_quoted(b'"a\\"b\\\\c"') == 'a"b\\c'
    for raw in (b"https://x.test/", b"{20}", b'"x" trailing', b'"unterminated', b'"bad \\n escape"', b'"\xff"'):
        assert parse_quoted(raw) is None, raw
    assert url_problem(URL) is None
    assert url_problem("mail.example.test/jmap") and url_problem("ftp://x.test/")


def test_capability_lists_from_codes_and_responses():
    lines = [b"* OK [CAPABILITY IMAP4rev2 AUTH=PLAIN] ready", b"* CAPABILITY IMAP4rev2 jmapaccess",
             b"a1 OK [CAPABILITY IMAP4rev2] done", b"* OK [UIDNEXT 4] not a capability list"]
    assert capability_lists(lines) == [frozenset({"IMAP4REV2", "AUTH=PLAIN"}), frozenset({"IMAP4REV2", "JMAPACCESS"}),
                                       frozenset({"IMAP4REV2"})]


def test_getjmapaccess_answers():
    good = ex("GETJMAPACCESS", f'* JMAPACCESS "{URL}"', "a1 OK done")
    check, url = rfc9698.judge_getjmapaccess(good, advertised=True)
    assert check.ok and url == URL
    bad_cases = {
        "2 untagged JMAPACCESS": ex("GETJMAPACCESS", f'* JMAPACCESS "{URL}"', f'* JMAPACCESS "{URL}"', "a1 OK"),
        "the URL is a literal": ex("GETJMAPACCESS", "* JMAPACCESS {42}", "", "a1 OK"),
        "not a quoted string": ex("GETJMAPACCESS", f"* JMAPACCESS {URL}", "a1 OK"),
        "not an absolute http(s) URL": ex("GETJMAPACCESS", '* JMAPACCESS "/jmap"', "a1 OK"),
        "answered NO": ex("GETJMAPACCESS", "a1 NO later"),
    }
    for words, exchange in bad_cases.items():
        check, url = rfc9698.judge_getjmapaccess(exchange, advertised=True)
        assert not check.ok and words in check.detail and url is None, (words, check)
    # Not advertised: BAD is right, a URL is wrong.
    assert rfc9698.judge_getjmapaccess(ex("GETJMAPACCESS", "a1 BAD unknown"), advertised=False)[0].ok
    assert not rfc9698.judge_getjmapaccess(good, advertised=False)[0].ok
    assert not rfc9698.judge_getjmapaccess_args(ex("GETJMAPACCESS X", f'* JMAPACCESS "{URL}"', "a1 OK")).ok


def test_capabilities_after_login_must_all_agree():
    cap = ex("CAPABILITY", "* CAPABILITY IMAP4rev2 OBJECTID JMAPACCESS", "a1 OK")
    login_without = ex("LOGIN u ***", "a1 OK [CAPABILITY IMAP4rev2 OBJECTID] hi")
    check, advertised = rfc9698.judge_after_login(PW, login_without, cap)
    assert advertised and not check.ok and "missing from the login's answer" in check.detail
    no_objectid = ex("CAPABILITY", "* CAPABILITY IMAP4rev2 JMAPACCESS", "a1 OK")
    check, _ = rfc9698.judge_after_login(PW, ex("LOGIN u ***", "a1 OK hi"), no_objectid)
    assert not check.ok and "OBJECTID is not listed" in check.detail
    check, advertised = rfc9698.judge_after_login(PW, ex("LOGIN u ***", "a1 OK hi"), cap)
    assert check.ok and advertised


def test_before_and_after_a_failed_login():
    clean = ex("CAPABILITY", "* CAPABILITY IMAP4rev2 AUTH=PLAIN", "a1 OK")
    bad = ex("GETJMAPACCESS", "a1 BAD not now")
    assert rfc9698.judge_preauth(b"* OK [CAPABILITY IMAP4rev2] hi", [clean], bad).ok
    leaky = rfc9698.judge_preauth(b"* OK [CAPABILITY IMAP4rev2 JMAPACCESS] hi", [clean], bad)
    assert not leaky.ok and "greeting" in leaky.detail
    early = rfc9698.judge_preauth(b"* OK hi", [clean], ex("GETJMAPACCESS", f'* JMAPACCESS "{URL}"', "a1 OK"))
    assert not early.ok and "valid only after login" in early.detail
    accepted = rfc9698.judge_failed_login(PW, ex("LOGIN u ***", "a1 OK welcome"), [], None)
    assert not accepted.ok and "accepted a deliberately wrong password" in accepted.detail
    refused = ex("LOGIN u ***", "a1 NO [AUTHENTICATIONFAILED] no")
    assert rfc9698.judge_failed_login(PW, refused, [clean], bad).ok
    told = rfc9698.judge_failed_login(PW, ex("LOGIN u ***", "a1 NO [CAPABILITY IMAP4rev2 JMAPACCESS] no"), [], bad)
    assert not told.ok


def test_session_verdicts_name_the_credential_kind():
    token = Credential("u", "t", "token")
    refused = rfc9698.SessionOutcome(URL, False, 401, 'Basic realm="x"', "HTTP 401")
    check = rfc9698.judge_session(URL, refused, token, advertised=True)
    assert not check.ok and "refused the same bearer token over HTTP Bearer (HTTP 401" in check.detail
    assert 'WWW-Authenticate: Basic realm="x"' in check.detail
    assert "refuses this bearer token too" in rfc9698.silence_note(refused, token)
    opened = rfc9698.SessionOutcome(URL, True, 200, username="u", account_id="A1")
    assert "should have listed JMAPACCESS" in rfc9698.silence_note(opened, PW)
    assert not rfc9698.judge_session(URL, rfc9698.SessionOutcome(URL, False, 404), PW, True).ok
    assert rfc9698.judge_session(None, None, PW, advertised=False).detail.startswith("not checked:")


def test_sampling_spreads_over_the_mailbox():
    assert rfc8474.sample_positions(0, 5) == []
    assert rfc8474.sample_positions(3, 5) == [1, 2, 3]
    spread = rfc8474.sample_positions(100_000, 20)
    assert len(spread) == 20 and spread[0] == 1 and spread[-1] == 100_000 and spread == sorted(set(spread))
    assert rfc8474.sample_positions(7, 1) == [1]


def test_names_and_the_jmap_tree():
    assert rfc8474.split_name("inbox", "/", "") == ("INBOX",)
    assert rfc8474.split_name("INBOX.Sent.2026", ".", "INBOX.") == ("Sent", "2026")
    assert rfc8474.split_name("Inbox/Sub", "/", "") == ("INBOX", "Sub")
    boxes = [{"id": "i", "name": "Inbox", "role": "inbox", "parentId": None},
             {"id": "s", "name": "Sub", "parentId": "i"},
             {"id": "a", "name": "A", "parentId": "b"}, {"id": "b", "name": "B", "parentId": "a"}]  # a loop
    paths = rfc8474.jmap_paths(boxes)
    assert paths["s"] == ("INBOX", "Sub") and len(paths["a"]) == 2
    assert JmapBridge.mailbox_paths(boxes)["s"] == ["Inbox", "Sub"]
    imap = [ImapMailbox("INBOX", ("INBOX",), True, "i", "i"), ImapMailbox("Other", ("Other",), True, "s", "s")]
    tree = rfc8474.judge_mailbox_tree(imap, boxes[:2], "/")
    assert not tree.ok and "'Other' is 'INBOX/Sub' in JMAP" in tree.detail
    ids = rfc8474.judge_mailbox_ids([ImapMailbox("INBOX", ("INBOX",), True, "i", "x")], boxes[:2])
    assert not ids.ok and "EXAMINE says MAILBOXID x, STATUS says i" in ids.detail and "JMAP Mailbox s" in ids.detail


def test_messages_compared_with_emails():
    def msg(uid: int, flags: tuple[str, ...], email_id: str = "M1", thread: str | None = "T1") -> ImapMessage:
        return ImapMessage("INBOX", "i", uid, email_id, thread, True, flags)

    emails = {"M1": {"id": "M1", "threadId": "T1", "mailboxIds": {"i": True}, "keywords": {"$seen": True}}}
    good = [msg(1, ("\\Seen", "\\Recent"))]
    assert rfc8474.judge_email_ids(good, emails, 1).ok
    assert rfc8474.judge_thread_ids(good, emails).ok and rfc8474.judge_keywords(good, emails).ok
    shown_deleted = rfc8474.judge_email_ids([msg(1, ("\\Deleted",))], emails, 1)
    assert not shown_deleted.ok and "RFC 8621 §4.1.1" in shown_deleted.detail
    assert rfc8474.judge_email_ids([msg(1, ("\\Deleted",), "M9")], emails, 1).ok  # not visible: right
    refused = rfc8474.judge_email_ids(good, emails, 2, ["Work: FETCH was refused: BAD"])
    assert not refused.ok and "Work: FETCH was refused" in refused.detail
    kw = rfc8474.judge_keywords([msg(1, ("\\Flagged",))], emails)
    assert not kw.ok and "only in IMAP: $flagged" in kw.detail and "only in JMAP: $seen" in kw.detail
    assert not rfc8474.judge_thread_ids([msg(1, (), thread="T2")], emails).ok
    assert "NIL" in rfc8474.judge_thread_ids([msg(1, (), thread=None)], emails).detail
    assert not rfc8474.judge_keywords([msg(1, (), email_id="nope")], emails).ok  # nothing could be paired


def test_keyword_mapping():
    assert flags_to_keywords([b"\\Seen", "\\Deleted", "\\Recent", "$Forwarded", "\\ANSWERED"]) == {
        "$seen", "$forwarded", "$answered"}
    assert keywords_to_flags({"$seen": True, "$draft": True, "Work": True}) == ["\\Draft", "\\Seen", "Work"]
    assert normalize_keywords({"$Seen": True, "x": False}) == {"$seen"}


def test_report_json_shape():
    report = Report()
    assert not report.ok  # nothing checked is not "all ok"
    report.add(not_run("a", "why"))
    assert report.as_json() == {"ok": False, "checks": [{"name": "a", "ok": False, "detail": "not checked: why"}]}
    assert "s3cret" not in repr(PW)
