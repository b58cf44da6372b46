"""Issue 8 item 2, measured on JMAP: four concurrent 48 MB uploads (an account's maxConcurrentUpload) to a real
``janusmail serve`` process, stalled before their last chunk, grow its resident memory by less than 64 MiB; so
do the completed uploads; and the blobs come back byte-exact."""

from __future__ import annotations

import hashlib
import os
import threading

import httpx
import pytest

from janusmail.spool import FLUSH_BYTES
from tests.procmem import MIB, ProcMem, wait_for
from tests.serverutil import janusmail_cmd, make_config, spawn_server

pytestmark = pytest.mark.slow

ADDRESS = "rss@example.test"
PASSWORD = "rss-password-1"
UPLOADS = 4
SIZE = 48_000_000
CHUNK = 1 << 20
LAST = 65536
AIM = 64 * MIB


@pytest.mark.timeout(600)
def test_four_stalled_48mb_uploads_grow_rss_by_less_than_64mib(tmp_path) -> None:  # noqa: ANN001
    data_dir = tmp_path / "d"
    janusmail_cmd(data_dir, "user", "add", ADDRESS, "--password", PASSWORD)
    cfg = make_config(data_dir, None, imap__listen=None, lmtp__listen=None)
    proc = spawn_server(data_dir, cfg)
    shared = os.urandom(SIZE)
    bodies = [b"%08d" % i + shared[8:] for i in range(UPLOADS)]
    release = threading.Event()
    results: list[httpx.Response | BaseException | None] = [None] * UPLOADS
    threads: list[threading.Thread] = []
    try:
        mem = ProcMem(proc.pid)
        client = httpx.Client(base_url=cfg.public_url, auth=(ADDRESS, PASSWORD), timeout=120)
        session = client.get("/.well-known/jmap").json()
        account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        up = client.post(f"/jmap/upload/{account}", content=b"warm" * 100_000)  # every code path loaded once
        assert up.status_code == 201, up.text

        def upload(i: int) -> None:
            body = bodies[i]

            def stream():  # noqa: ANN202
                for off in range(0, SIZE - LAST, CHUNK):
                    yield body[off : min(off + CHUNK, SIZE - LAST)]
                release.wait(300)  # stall before the last chunk until the memory was measured
                yield body[SIZE - LAST :]

            try:
                with httpx.Client(base_url=cfg.public_url, auth=(ADDRESS, PASSWORD), timeout=300) as c:
                    results[i] = c.post(f"/jmap/upload/{account}", content=stream(),
                                        headers={"Content-Length": str(SIZE), "Content-Type": "image/tiff"})
            except BaseException as exc:  # noqa: BLE001 - checked below
                results[i] = exc

        base = mem.rss()
        written0 = mem.written()
        threads = [threading.Thread(target=upload, args=(i,)) for i in range(UPLOADS)]
        for t in threads:
            t.start()
        # All but the withheld chunk (and at most one unflushed spool piece each) has reached the spool files.
        # Wait for EACH file, not the sum: on a busy machine one upload can trail the others.
        def all_spooled() -> bool:
            files = mem.open_files_under(str(data_dir / "tmp"))
            return len(files) == UPLOADS and all(s >= SIZE - LAST - FLUSH_BYTES for s in files)

        wait_for(lambda: mem.written() - written0 >= UPLOADS * (SIZE - LAST - FLUSH_BYTES) and all_spooled(),
                 "the uploads to spool")
        spooled = mem.open_files_under(str(data_dir / "tmp"))
        stalled_rss = mem.rss()
        release.set()
        for t in threads:
            t.join(300)
        answers = [r for r in results if isinstance(r, httpx.Response)]
        assert len(answers) == UPLOADS, results
        assert all(r.status_code == 201 for r in answers), [r.text for r in answers]
        wait_for(lambda: not mem.open_files_under(str(data_dir / "tmp")), "the spool files to be closed")
        after_rss = mem.rss()
        report = (f"baseline {base / MIB:.1f} MiB; stalled: RSS +{(stalled_rss - base) / MIB:.1f} MiB; "
                  f"after: RSS +{(after_rss - base) / MIB:.1f} MiB")
        print(report)
        assert len(spooled) == UPLOADS and all(s >= SIZE - LAST - FLUSH_BYTES for s in spooled), spooled
        assert stalled_rss - base < AIM, report
        assert after_rss - base < AIM, report
        for body, r in zip(bodies, answers, strict=True):
            blob = r.json()
            assert blob["size"] == SIZE
            with client.stream("GET", f"/jmap/download/{account}/{blob['blobId']}/b.tif?type=image/tiff") as got:
                assert got.status_code == 200
                digest = hashlib.sha256()
                for part in got.iter_bytes():
                    digest.update(part)
            assert digest.digest() == hashlib.sha256(body).digest()
        client.close()
    finally:
        release.set()
        for t in threads:
            t.join(60)
        proc.terminate()
        proc.wait(60)
