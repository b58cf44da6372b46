"""One mailstore, two doors: every id and change made through IMAP is the same through JMAP, and back.

Runs the real server (IMAP + JMAP + LMTP on one loop) on SQLite and on PostgreSQL, and drives it with
imaplib / imapclient over IMAP and httpx over JMAP. One server per backend for the module; each test's Alice
and Bob are accounts of its own.
"""

from __future__ import annotations

import imaplib
import re
import time
from collections.abc import Iterator

import httpx
import imapclient
import pytest

from tests.imap.e2e_util import Tenant, serve_shared
from tests.mailgen import simple
from tests.serverutil import ServerThread

USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
PASSWORD = "correct horse battery staple"


class Jmap:
    def __init__(self, srv: ServerThread, address: str, password: str) -> None:
        self.http = httpx.Client(auth=(address, password), timeout=30, follow_redirects=True)
        session = self.http.get(srv.config.session_url).json()
        self.api = session["apiUrl"]
        self.account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]

    def call(self, method: str, args: dict) -> dict:
        resp = self.http.post(self.api, json={"using": USING, "methodCalls": [[method, {"accountId": self.account,
                                                                                          **args}, "c"]]})
        resp.raise_for_status()
        name, result, _ = resp.json()["methodResponses"][0]
        assert name == method, result
        return result

    def mailboxes(self) -> dict[str, dict]:
        return {m["id"]: m for m in self.call("Mailbox/get", {"ids": None})["list"]}

    def email(self, email_id: str, props: list[str] | None = None) -> dict | None:
        got = self.call("Email/get", {"ids": [email_id], "properties": props or ["threadId", "mailboxIds", "keywords"]})
        return got["list"][0] if got["list"] else None


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    """Alice (``server.address``) and Bob (``server.bob``): accounts of this test's own on the module's server."""
    alice = Tenant(shared_server, PASSWORD)
    alice.bob = Tenant(shared_server, PASSWORD)
    return alice


@pytest.fixture
def imap(server):  # noqa: ANN001, ANN201
    client = imapclient.IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=30)
    client.login(server.address, PASSWORD)
    yield client
    client.logout()


@pytest.fixture
def jmap(server):  # noqa: ANN001, ANN201
    return Jmap(server, server.address, PASSWORD)


def mailboxid(client: imapclient.IMAPClient, name: str) -> str:
    return client.folder_status(name, ["MAILBOXID"])[b"MAILBOXID"][0].decode()


def append(client: imapclient.IMAPClient, folder: str, raw: bytes, flags=()) -> int:  # noqa: ANN001
    resp = client.append(folder, raw, flags)
    return int(re.search(rb"APPENDUID \d+ (\d+)", resp).group(1))


def ids_of(client: imapclient.IMAPClient, uid: int, folder: str = "INBOX") -> tuple[str, str]:
    client.select_folder(folder)
    data = client.fetch([uid], ["EMAILID", "THREADID"])[uid]
    return data[b"EMAILID"][0].decode(), data[b"THREADID"][0].decode()


def test_mailbox_ids_match_both_ways(imap, jmap):
    imap.create_folder("Projects/Janus")
    boxes = jmap.mailboxes()
    by_name = {m["name"]: m for m in boxes.values()}
    assert mailboxid(imap, "Projects/Janus") == by_name["Janus"]["id"]
    assert by_name["Janus"]["parentId"] == by_name["Projects"]["id"] == mailboxid(imap, "Projects")
    created = jmap.call("Mailbox/set", {"create": {"k": {"name": "Reçus", "parentId": None}}})["created"]["k"]
    assert mailboxid(imap, "Reçus") == created["id"]
    assert mailboxid(imap, "INBOX") == next(m["id"] for m in boxes.values() if m["role"] == "inbox")


def test_append_ids_are_jmap_ids_and_rename_keeps_them(server, imap, jmap):
    uid = append(imap, "INBOX", simple(1))
    email_id, thread_id = ids_of(imap, uid)
    got = jmap.email(email_id)
    assert got["threadId"] == thread_id
    assert list(got["mailboxIds"]) == [mailboxid(imap, "INBOX")]
    box = jmap.call("Mailbox/set", {"create": {"k": {"name": "Old"}}})["created"]["k"]["id"]
    jmap.call("Mailbox/set", {"update": {box: {"name": "Ärchiv"}}})
    assert mailboxid(imap, "Ärchiv") == box
    # An IMAP4rev1 client that did not enable UTF-8 sees the same mailbox in modified UTF-7.
    raw = imaplib.IMAP4("127.0.0.1", server.imap_port)
    raw.login(server.address, PASSWORD)
    typ, lines = raw.list()
    assert typ == "OK" and any(b'"&AMQ-rchiv"' in line or b" &AMQ-rchiv" in line for line in lines)
    typ, status = raw.status("&AMQ-rchiv", "(MAILBOXID)")
    assert box.encode() in status[0]
    raw.logout()


def test_copy_and_move_change_mailbox_ids_not_email_ids(imap, jmap):
    uid = append(imap, "INBOX", simple(2))
    email_id, _ = ids_of(imap, uid)
    imap.select_folder("INBOX")
    imap.copy([uid], "Archive")
    assert set(jmap.email(email_id)["mailboxIds"]) == {mailboxid(imap, "INBOX"), mailboxid(imap, "Archive")}
    imap.move([uid], "Trash")
    assert set(jmap.email(email_id)["mailboxIds"]) == {mailboxid(imap, "Archive"), mailboxid(imap, "Trash")}
    imap.select_folder("Trash")
    moved = imap.search(["EMAILID", email_id])
    assert len(moved) == 1 and ids_of(imap, moved[0], "Trash")[0] == email_id


def test_keywords_and_flags_are_one_set(server, imap, jmap):
    uid = append(imap, "INBOX", simple(3))
    email_id, _ = ids_of(imap, uid)
    state = jmap.call("Email/get", {"ids": [], "properties": ["id"]})["state"]
    imap.select_folder("INBOX")
    imap.add_flags([uid], [b"\\Flagged", b"$Forwarded"])
    changes = jmap.call("Email/changes", {"sinceState": state})
    assert email_id in changes["updated"] + changes["created"]
    assert jmap.email(email_id)["keywords"] == {"$flagged": True, "$forwarded": True}
    jmap.call("Email/set", {"update": {email_id: {"keywords/$seen": True, "keywords/$flagged": None}}})
    flags = set(imap.get_flags([uid])[uid])
    assert flags == {b"\\Seen", b"$Forwarded"}


def test_jmap_changes_are_pushed_to_idle(server, imap, jmap):
    uid = append(imap, "INBOX", simple(4))
    email_id, _ = ids_of(imap, uid)
    imap.select_folder("INBOX")
    imap.idle()
    jmap.call("Email/set", {"update": {email_id: {"keywords/$answered": True}}})
    responses: list = []
    deadline = time.monotonic() + 30  # wait for the push itself, however busy the machine is
    while not any(r[1] == b"FETCH" and b"\\Answered" in str(r).encode() for r in responses if len(r) > 1):
        assert time.monotonic() < deadline, responses
        responses += imap.idle_check(timeout=1)
    imap.idle_done()


def test_destroy_over_jmap_expunges_over_imap(imap, jmap):
    uid = append(imap, "INBOX", simple(5))
    email_id, _ = ids_of(imap, uid)
    imap.select_folder("INBOX")
    before = imap.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"]
    assert jmap.call("Email/set", {"destroy": [email_id]})["destroyed"] == [email_id]
    imap.noop()
    assert imap.search(["EMAILID", email_id]) == []
    assert imap.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == before - 1


def test_search_by_objectid_finds_what_jmap_names(imap, jmap):
    parent = append(imap, "INBOX", simple(6, subject="plans", msgid="p6@x"))
    reply = append(imap, "INBOX", simple(7, subject="Re: plans", msgid="r7@x", in_reply_to="p6@x",
                                         references=["p6@x"]))
    email_id, thread_id = ids_of(imap, reply)
    got = jmap.call("Thread/get", {"ids": [thread_id]})["list"][0]
    imap.select_folder("INBOX")
    assert sorted(imap.search(["THREADID", thread_id])) == sorted([parent, reply])
    assert imap.search(["EMAILID", email_id]) == [reply]
    assert len(got["emailIds"]) == 2 and email_id in got["emailIds"]


def test_another_account_sees_none_of_it(server, imap, jmap):
    uid = append(imap, "INBOX", simple(8))
    email_id, thread_id = ids_of(imap, uid)
    alice_inbox = mailboxid(imap, "INBOX")
    bob = Jmap(server, server.bob.address, PASSWORD)
    assert bob.account != jmap.account
    assert bob.call("Email/get", {"ids": [email_id], "properties": ["id"]})["notFound"] == [email_id]
    assert bob.call("Thread/get", {"ids": [thread_id]})["notFound"] == [thread_id]
    assert bob.call("Mailbox/get", {"ids": [alice_inbox]})["notFound"] == [alice_inbox]
    resp = bob.http.post(bob.api, json={"using": USING, "methodCalls": [
        ["Email/get", {"accountId": jmap.account, "ids": [email_id]}, "x"]]}).json()
    assert resp["methodResponses"][0][0] == "error"
    assert resp["methodResponses"][0][1]["type"] in ("accountNotFound", "forbidden")
    bob_imap = imapclient.IMAPClient("127.0.0.1", port=server.imap_port, ssl=False)
    bob_imap.login(server.bob.address, PASSWORD)
    bob_imap.select_folder("INBOX")
    assert bob_imap.search(["EMAILID", email_id]) == []
    bob_imap.logout()
