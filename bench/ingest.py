"""Ingest benchmark: `janusmail import` and LMTP delivery (4 concurrent senders), on SQLite and PostgreSQL.

Generates a 10,000-message corpus (plain, multipart, 8-bit, broken, threaded mail) and prints messages/s.
Run: .venv/bin/python bench/ingest.py [--messages N] [--no-postgres] [--blob-store local|database]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from janusmail.cli.importer import import_path  # noqa: E402
from janusmail.store.store import Store  # noqa: E402
from tests.mailgen import corpus  # noqa: E402
from tests.serverutil import janusmail_cmd, make_config, spawn_server  # noqa: E402

PG = os.environ.get("JANUS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def write_mbox(path: Path, msgs: list[bytes]) -> None:
    with open(path, "wb") as fh:
        for raw in msgs:
            fh.write(b"From bench@example.test Fri Nov 27 08:00:00 2026\n" + raw)
            if not raw.endswith(b"\n"):
                fh.write(b"\n")
            fh.write(b"\n")


def bench_import(tmp: Path, db: str | None, mbox: Path, n: int, blob_store: str = "local") -> float:
    store = Store.open(tmp / f"imp-{uuid.uuid4().hex[:6]}", db, blob_store=blob_store)
    try:
        acct = store.accounts.create("bench@example.test", "x")
        report = import_path(store, acct.id, mbox, show_progress=False)
        assert report.imported == n, report
        return report.rate
    finally:
        store.close()


def bench_lmtp(tmp: Path, db: str | None, msgs: list[bytes], senders: int = 4, blob_store: str = "local") -> float:
    """The server runs as its own `janusmail serve` process, as in production; senders are threads here."""
    data = tmp / f"lmtp-{uuid.uuid4().hex[:6]}"
    data.mkdir()
    (data / "janusmail.toml").write_text(f'[store]\nblob_store = "{blob_store}"\n')
    janusmail_cmd(data, "user", "add", "bench@example.test", "--password", "x", db=db)
    cfg = make_config(data, db, imap__listen=None, imap__imaps=None, jmap__listen=None)
    proc = spawn_server(data, cfg, db)
    try:
        port = int(cfg.lmtp.listen.rsplit(":", 1)[1])
        chunks = [msgs[i::senders] for i in range(senders)]
        errors: list[BaseException] = []

        def send(chunk: list[bytes]) -> None:
            try:
                with smtplib.LMTP("127.0.0.1", port) as c:
                    for raw in chunk:
                        c.sendmail("s@example.test", ["bench@example.test"], raw)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(c,)) for c in chunks]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.perf_counter() - t0
        if errors:
            raise errors[0]
        return len(msgs) / dt
    finally:
        proc.terminate()
        proc.wait(30)


def pg_schema_url() -> tuple[str, sa.Engine, str]:
    schema = "bench_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(PG)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    return f"{PG}?options=-csearch_path%3D{schema}", admin, schema


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--lmtp-messages", type=int, default=5_000)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--blob-store", choices=["local", "database"], default="local",
                    help="where message bytes go ([store] blob_store)")
    args = ap.parse_args()
    msgs = corpus(args.messages)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        mbox = tmp / "corpus.mbox"
        write_mbox(mbox, msgs)
        backends: list[tuple[str, str | None]] = [("sqlite", None)]
        if not args.no_postgres:
            backends.append(("postgresql", "pg"))
        print(f"corpus: {args.messages} messages, {mbox.stat().st_size / 1e6:.1f} MB; blob store {args.blob_store}")
        for name, db in backends:
            admin = schema = None
            url = None
            if db:
                url, admin, schema = pg_schema_url()
            try:
                rate = bench_import(tmp, url, mbox, args.messages, args.blob_store)
                print(f"{name:10s} import           {rate:8,.0f} messages/s")
                if db:
                    with admin.begin() as conn:
                        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
                rate = bench_lmtp(tmp, url, msgs[: args.lmtp_messages], blob_store=args.blob_store)
                print(f"{name:10s} LMTP 4 senders   {rate:8,.0f} messages/s")
            finally:
                if admin is not None:
                    with admin.begin() as conn:
                        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                    admin.dispose()


if __name__ == "__main__":
    main()
