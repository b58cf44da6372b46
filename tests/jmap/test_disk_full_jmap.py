"""Issue 8, item 1 through JMAP: an upload the disk refuses gets a problem-details answer (507 when full, 503 on
an I/O error) on a connection that stays open, and Email/import answers the method error
``serverUnavailable``; every blob and email acknowledged reads back byte-exact, also after a restart. Faults
are injected into the real server (a thread of this process). SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.jmap.test_front_harness import client_for, start_server
from tests.mailgen import simple
from tests.serverutil import ServerThread
from tests.store.storage_faults import Faults, every_stored_email

ALICE = "alice@example.test"


@pytest.fixture
def server(tmp_path, db_url):  # noqa: ANN001, ANN201
    holder = {"srv": start_server(tmp_path, db_url, lmtp__listen=None)}
    yield holder
    holder["srv"].stop()


def restart(holder):  # noqa: ANN001, ANN201
    holder["srv"].stop()
    holder["srv"] = ServerThread(holder["srv"].config).start()
    return holder["srv"]


def _msg(i: int) -> bytes:
    return simple(i, body="\r\n".join(f"jmap {i} line {n} " + "j" * 60 for n in range(150 + i)))


def _local_port(response) -> int:  # noqa: ANN001
    """The client side port of the connection a response came on (same port = same kept-alive connection)."""
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


def upload(j, data: bytes, type_: str = "message/rfc822"):  # noqa: ANN001, ANN201
    return j.http.post(f"/jmap/upload/{j.account_id}", content=data, headers={"Content-Type": type_})


def download(j, blob_id: str) -> bytes:  # noqa: ANN001
    r = j.http.get(f"/jmap/download/{j.account_id}/{blob_id}/m.eml?type=message/rfc822")
    assert r.status_code == 200, r.text
    return r.content


UPLOAD_FAULTS = {
    "short write then ENOSPC": (lambda f, s: f.short_write_then_enospc(), 507),
    "EIO on fdatasync": (lambda f, s: f.sync_error(), 503),
    "database disk full at COMMIT": (lambda f, s: f.commit_disk_full(s.engine), 507),
}


@pytest.mark.parametrize("fault", list(UPLOAD_FAULTS))
def test_upload_refused_by_the_disk_is_a_problem_details_answer(server, monkeypatch, fault):
    arm, status = UPLOAD_FAULTS[fault]
    srv = server["srv"]
    j = client_for(srv, ALICE)
    kept: dict[str, bytes] = {}
    r = upload(j, _msg(0))
    assert r.status_code == 201
    kept[r.json()["blobId"]] = _msg(0)
    f = Faults(monkeypatch)
    arm(f, srv.store)
    refused = upload(j, _msg(50))
    assert f.fired == 1
    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["status"] == status and "try again later" in problem["detail"]
    assert refused.headers.get("connection", "").lower() != "close"
    r = upload(j, _msg(1))
    assert r.status_code == 201
    assert _local_port(r) == _local_port(refused)  # the keep-alive connection survived the refusal
    kept[r.json()["blobId"]] = _msg(1)
    for blob_id, data in kept.items():
        assert download(j, blob_id) == data
    j.http.close()
    srv = restart(server)
    j = client_for(srv, ALICE)
    for blob_id, data in kept.items():
        assert download(j, blob_id) == data
    j.http.close()


IMPORT_FAULTS = {
    "short write then ENOSPC": lambda f, s: f.short_write_then_enospc(),
    "EIO on fdatasync": lambda f, s: f.sync_error(),
    "database disk full at INSERT": lambda f, s: f.insert_disk_full(s.engine, "emails"),
    "database disk full at COMMIT": lambda f, s: f.commit_disk_full(s.engine),
}


def _forwarded(i: int) -> bytes:
    """A message carrying message ``i`` as a message/rfc822 attachment: importing that part's blob stores
    bytes the account does not have yet, so the import itself writes to a pack (an uploaded blob would be
    reused as it is)."""
    return (b"From: f@example.test\r\nTo: alice@example.test\r\nSubject: fwd %d\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="FW"\r\n\r\n--FW\r\nContent-Type: text/plain\r\n\r\n'
            b"see attached\r\n--FW\r\nContent-Type: message/rfc822\r\n\r\n" % i + _msg(i) + b"\r\n--FW--\r\n")


@pytest.mark.parametrize("fault", list(IMPORT_FAULTS))
def test_email_import_refused_by_the_disk_is_server_unavailable(server, monkeypatch, fault):
    srv = server["srv"]
    j = client_for(srv, ALICE)
    inbox = j.role("inbox")
    parts: dict[int, str] = {}
    expected: dict[int, bytes] = {}
    for i in range(4):
        r = upload(j, _forwarded(i))
        assert r.status_code == 201
        outer = r.json()["blobId"]
        parsed = j.call("Email/parse", {"blobIds": [outer], "properties": ["attachments"]})["parsed"][outer]
        parts[i] = parsed["attachments"][0]["blobId"]
        expected[i] = _msg(i)  # the part's body: what lies between its header and the CRLF before "--FW--"

    def import_(*nums: int) -> dict:
        return j.call("Email/import", {"emails": {f"k{n}": {"blobId": parts[n], "mailboxIds": {inbox: True}}
                                                  for n in nums}})

    imported = {}
    imported.update(import_(0)["created"])
    f = Faults(monkeypatch)
    IMPORT_FAULTS[fault](f, srv.store)
    out = import_(1, 2)
    assert f.fired == 1
    assert out["error"] == "serverUnavailable", out
    assert j.call("Email/query", {"filter": {"inMailbox": inbox}})["ids"] == [imported["k0"]["id"]]
    imported.update(import_(1, 2, 3)["created"])
    assert set(imported) == {"k0", "k1", "k2", "k3"}

    def check(jj) -> None:  # noqa: ANN001
        for key, created in imported.items():
            assert download(jj, created["blobId"]) == expected[int(key[1:])]
        got = jj.call("Email/get", {"ids": [e["id"] for e in imported.values()], "properties": ["subject"]})
        assert sorted(e["subject"] for e in got["list"]) == [f"Message number {i}" for i in range(4)]

    check(j)
    assert len(every_stored_email(srv.store)) == 4
    j.http.close()
    srv = restart(server)
    j = client_for(srv, ALICE)
    check(j)
    j.http.close()


def test_email_set_create_refused_by_the_disk_is_server_unavailable(server, monkeypatch):
    """Email/set create composes new bytes and stores them: a full disk is serverUnavailable, not serverFail."""
    srv = server["srv"]
    j = client_for(srv, ALICE)
    drafts = j.role("drafts")

    def create(subject: str) -> dict:
        return j.call("Email/set", {"create": {"d": {
            "mailboxIds": {drafts: True}, "subject": subject, "from": [{"email": ALICE}],
            "bodyValues": {"b": {"value": "draft body " * 200}},
            "textBody": [{"partId": "b", "type": "text/plain"}]}}})

    f = Faults(monkeypatch)
    f.short_write_then_enospc()
    out = create("refused")
    assert f.fired == 1
    assert out["error"] == "serverUnavailable", out
    made = create("stored")["created"]["d"]
    got = j.call("Email/get", {"ids": [made["id"]], "properties": ["subject", "bodyValues"],
                               "fetchTextBodyValues": True})["list"][0]
    assert got["subject"] == "stored"
    assert [v["value"].rstrip() for v in got["bodyValues"].values()] == [("draft body " * 200).rstrip()]
    assert len(every_stored_email(srv.store)) == 1  # its blob is whole and matches its digest
    assert j.call("Email/query", {"filter": {"inMailbox": drafts}})["ids"] == [made["id"]]
    j.http.close()
