"""Upload, download (whole and body-part blobs) and Blob/copy over real HTTP."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from janusmail.jmap import blobs
from janusmail.jmap.http import content_disposition
from tests.jmap.test_front_harness import CORE, Jmap, client_for, principal, start_server, start_shared
from tests.serverutil import ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One server for the module; each test's principals are accounts of its own."""
    yield from start_shared(tmp_path_factory)


@pytest.fixture
def alice(server: ServerThread) -> Iterator[Jmap]:
    yield from principal(server, "alice")


@pytest.fixture
def bob(server: ServerThread) -> Iterator[Jmap]:
    yield from principal(server, "bob")

ATTACHMENT = bytes(range(256)) * 40 + b"\x00end"


def _multipart() -> bytes:
    b64 = base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n")
    return (
        b"From: a@example.test\r\nTo: alice@example.test\r\nSubject: with attachment\r\n"
        b"Message-ID: <att1@example.test>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="BB"\r\n\r\n'
        b"--BB\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"caf=C3=A9 =\r\nlatte\r\n"
        b"--BB\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="data.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + b64 + b"--BB--\r\n"
    )


def _download(j, blob_id: str, name: str = "file.bin", type_: str = "application/octet-stream",
              account: str | None = None):  # noqa: ANN202
    url = f"/jmap/download/{account or j.account_id}/{blob_id}/{quote(name)}?type={quote(type_)}"
    return j.http.get(url)


@pytest.mark.parametrize("size", [0, 1, 70_000, 3 * 1024 * 1024 + 17])
def test_upload_download_round_trip(alice, size):  # noqa: F811
    data = os.urandom(size)
    r = alice.http.post(f"/jmap/upload/{alice.account_id}", content=data, headers={"Content-Type": "image/png"})
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["accountId"] == alice.account_id and up["size"] == size and up["type"] == "image/png"
    got = _download(alice, up["blobId"], "picture.png", "image/png")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "image/png"
    assert got.headers["cache-control"] == "private, immutable, max-age=31536000"
    assert 'filename="picture.png"' in got.headers["content-disposition"]
    assert got.headers["x-content-type-options"] == "nosniff"


def test_upload_same_bytes_same_blob(alice):  # noqa: F811
    a = alice.http.post(f"/jmap/upload/{alice.account_id}", content=b"same").json()
    b = alice.http.post(f"/jmap/upload/{alice.account_id}", content=b"same").json()
    assert a["blobId"] == b["blobId"]
    assert a["type"] == "application/octet-stream"


def test_download_name_encoding(alice):  # noqa: F811
    up = alice.http.post(f"/jmap/upload/{alice.account_id}", content=b"hi").json()
    name = 'Résumé "final"/v2.txt'
    got = _download(alice, up["blobId"], name, "text/plain; charset=utf-8")
    assert got.status_code == 200 and got.content == b"hi"
    cd = got.headers["content-disposition"]
    assert cd.startswith("attachment; filename=")
    assert "filename*=UTF-8''" + quote(name, safe="!#$&+-.^_`|~") in cd
    assert got.headers["content-type"] == "text/plain; charset=utf-8"


def test_content_disposition_unit():
    assert content_disposition("a.txt") == 'attachment; filename="a.txt"'
    cd = content_disposition("ü.txt")
    assert cd == "attachment; filename=\"_.txt\"; filename*=UTF-8''%C3%BC.txt"
    assert "\r" not in content_disposition("a\r\nb")


def test_download_isolation_and_unknown(alice, bob):  # noqa: F811
    up = bob.http.post(f"/jmap/upload/{bob.account_id}", content=b"bob's secret").json()
    # Alice cannot fetch bob's blob through her account, nor through bob's.
    assert _download(alice, up["blobId"]).status_code == 404
    assert _download(alice, up["blobId"], account=bob.account_id).status_code == 404
    assert _download(alice, "Gdoesnotexist").status_code == 404
    assert _download(alice, "not an id!").status_code == 404
    assert _download(alice, up["blobId"] + "_1").status_code == 404
    # Nor upload into bob's account.
    assert alice.http.post(f"/jmap/upload/{bob.account_id}", content=b"x").status_code == 404
    assert _download(bob, up["blobId"]).content == b"bob's secret"


def test_upload_limit(tmp_path):
    srv = start_server(tmp_path, jmap__max_size_upload=1000)
    try:
        j = client_for(srv, "alice@example.test")
        assert j.http.get("/.well-known/jmap").json()["capabilities"][CORE]["maxSizeUpload"] == 1000
        assert j.http.post(f"/jmap/upload/{j.account_id}", content=b"x" * 1000).status_code == 201
        r = j.http.post(f"/jmap/upload/{j.account_id}", content=b"x" * 1001)
        assert r.status_code == 413 and r.json()["limit"] == "maxSizeUpload"

        def gen():  # noqa: ANN202 - chunked, no Content-Length
            for _ in range(5):
                yield b"z" * 300

        r = j.http.post(f"/jmap/upload/{j.account_id}", content=gen())
        assert r.status_code == 413
    finally:
        srv.stop()


def test_part_blob_download(alice):  # noqa: F811
    delivered = alice.deliver(_multipart())
    whole = _download(alice, delivered.blob_id, "msg.eml", "message/rfc822")
    assert whole.status_code == 200 and whole.content.endswith(_multipart())
    att = _download(alice, blobs.part_blob_id(delivered.blob_id, "2"), "data.bin")
    assert att.status_code == 200 and att.content == ATTACHMENT
    text = _download(alice, blobs.part_blob_id(delivered.blob_id, "1"), "body.txt", "text/plain")
    assert text.content == "café latte".encode()  # the CRLF before a boundary belongs to the boundary
    assert _download(alice, blobs.part_blob_id(delivered.blob_id, "3")).status_code == 404
    assert _download(alice, blobs.part_blob_id(delivered.blob_id, "1.1")).status_code == 404


def test_part_blob_ids_unit():
    assert blobs.part_blob_id("Gabc", "1.2.3") == "Gabc_1_2_3"
    assert blobs.part_blob_id("Gabc", "") == "Gabc"
    assert blobs.split_part_blob_id("Gabc_1_2_3") == ("Gabc", "1.2.3")
    for bad in ["Gabc", "Gabc_", "Gabc_0", "Gabc_1__2", "_1", "Gabc_x", "Gabc_01"]:
        assert blobs.split_part_blob_id(bad) is None, bad


def test_resolve_blob_direct(server, alice):  # noqa: F811
    delivered = alice.deliver(_multipart())
    store = server.store
    assert blobs.resolve_blob(store, alice.account_id, blobs.part_blob_id(delivered.blob_id, "2")) == ATTACHMENT
    other = store.accounts.by_address("bob@example.test").id
    assert blobs.resolve_blob(store, other, delivered.blob_id) is None
    assert blobs.resolve_blob(store, alice.account_id, "Gnope") is None


def test_blob_copy(alice, bob):  # noqa: F811
    up = alice.http.post(f"/jmap/upload/{alice.account_id}", content=b"copy me").json()
    out = alice.call("Blob/copy", {"fromAccountId": alice.account_id, "blobIds": [up["blobId"], "Gmissing"]})
    assert out["copied"] == {up["blobId"]: up["blobId"]}
    assert out["notCopied"]["Gmissing"]["type"] == "blobNotFound"
    out = alice.call("Blob/copy", {"fromAccountId": bob.account_id, "blobIds": [up["blobId"]]})
    assert out["error"] == "fromAccountNotFound"
    out = alice.call("Blob/copy", {"accountId": bob.account_id, "fromAccountId": alice.account_id,
                                   "blobIds": [up["blobId"]]})
    assert out["error"] == "accountNotFound"
    out = alice.call("Blob/copy", {"fromAccountId": alice.account_id, "blobIds": "nope"})
    assert out["error"] == "invalidArguments"
