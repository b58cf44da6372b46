"""Sending benchmark: EmailSubmission/set to a local SMTP sink, messages per second, end to end.

Starts `janusmail serve` as its own process with ``[outbound] relay`` pointing at an aiosmtpd sink on loopback,
then, with one keep-alive JMAP client, sends N messages in requests of ``--batch`` (each request: Email/set
creating the drafts + EmailSubmission/set submitting them, with onSuccessUpdateEmail filing them in Sent), and
measures until the sink has received every one: the time covers the JMAP requests, the durable queue rows,
the sender's claims and SMTP transactions, and the recorded delivery statuses' commits. Prints submissions/s
(accepted by JMAP) and delivered/s (received by the sink).

DKIM signing (``[outbound] dkim``, on by default) is part of the sender's work for every message that leaves;
``--dkim off`` measures without it and ``--dkim both`` runs each backend both ways, to show what it costs.

bench/jmap.py runs this after its own measurements (:func:`run_backend`).

Run: .venv/bin/python bench/submission.py [--messages N] [--batch B] [--postgres] [--dkim on|off|both]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from janusmail.auth import make_credentials  # noqa: E402
from janusmail.store.store import Store  # noqa: E402
from tests.serverutil import make_config, spawn_server  # noqa: E402

PG = os.environ.get("JANUS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADDRESS, PASSWORD = "bench@example.test", "bench-password-1"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"]


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.done = threading.Event()
        self.want = 0
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
                outer.count += 1
                if outer.count >= outer.want:
                    outer.done.set()
                return "250 2.0.0 Queued"

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()


def run(tmp: Path, name: str, db: str | None, n: int, batch: int, *, dkim: bool = True) -> tuple[float, float]:
    """One measurement on a fresh account (and data directory) in ``db``: (submissions accepted/s, delivered/s)."""
    sink = Sink()
    sink.want = n
    data = tmp / f"{name}-{uuid.uuid4().hex[:6]}"
    data.mkdir(parents=True)
    (data / "janusmail.toml").write_text(
        f'[outbound]\nrelay = "smtp://127.0.0.1:{sink.port}"\ndkim = {"true" if dkim else "false"}\n')
    store = Store.open(data, db)
    store.accounts.create(ADDRESS, *make_credentials(PASSWORD))
    store.close()
    cfg = make_config(data, db, imap__listen=None, imap__imaps=None, lmtp__listen=None)
    proc = spawn_server(data, cfg, db)
    try:
        http = httpx.Client(base_url=cfg.public_url, auth=(ADDRESS, PASSWORD), timeout=120)
        session = http.get("/jmap/session").json()
        account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]

        def call(calls: list) -> list:
            r = http.post("/jmap/api", json={"using": USING, "methodCalls": calls})
            r.raise_for_status()
            return r.json()["methodResponses"]

        boxes = {m["role"]: m["id"] for m in call([["Mailbox/get", {"accountId": account}, "m"]])[0][1]["list"]}
        identity = call([["Identity/get", {"accountId": account}, "i"]])[0][1]["list"][0]["id"]
        start = time.perf_counter()
        sent = 0
        while sent < n:
            k = min(batch, n - sent)
            drafts = {f"d{i}": {
                "mailboxIds": {boxes["drafts"]: True}, "keywords": {"$draft": True, "$seen": True},
                "from": [{"email": ADDRESS}], "to": [{"email": f"rcpt{sent + i}@remote.test"}],
                "subject": f"bench {sent + i}", "bodyValues": {"b": {"value": "Hello.\n" * 20}},
                "textBody": [{"partId": "b", "type": "text/plain"}]} for i in range(k)}
            subs = {f"s{i}": {"identityId": identity, "emailId": f"#d{i}"} for i in range(k)}
            moves = {f"#s{i}": {f"mailboxIds/{boxes['drafts']}": None, f"mailboxIds/{boxes['sent']}": True,
                                "keywords/$draft": None} for i in range(k)}
            out = call([["Email/set", {"accountId": account, "create": drafts}, "e"],
                        ["EmailSubmission/set", {"accountId": account, "create": subs,
                                                 "onSuccessUpdateEmail": moves}, "s"]])
            created = out[1][1].get("created") or {}
            assert len(created) == k, out[1]
            sent += k
        accepted = time.perf_counter() - start
        if not sink.done.wait(600):
            raise SystemExit(f"the sink received {sink.count} of {n}")
        delivered = time.perf_counter() - start
        print(f"  {name}, DKIM {'on' if dkim else 'off'}: {n} messages, batch {batch}: submissions accepted "
              f"{n / accepted:,.0f}/s, delivered to the sink {n / delivered:,.0f}/s ({delivered:.1f} s)")
        return n / accepted, n / delivered
    finally:
        proc.terminate()
        proc.wait(30)
        sink.controller.stop()


@contextlib.contextmanager
def database(postgres: bool) -> Iterator[str | None]:
    """None (SQLite in each run's data directory) or the URL of a fresh PostgreSQL schema, dropped after."""
    if not postgres:
        yield None
        return
    schema = "bench_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(PG)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def run_backend(tmp: Path, postgres: bool, n: int, batch: int, dkim: str = "on") -> dict[bool, tuple[float, float]]:
    """Every run one backend asks for (``dkim``: on, off or both), each on a fresh schema or data directory:
    {DKIM on?: (accepted/s, delivered/s)}."""
    name = "postgresql" if postgres else "sqlite"
    out = {}
    for signed in {"on": (True,), "off": (False,), "both": (True, False)}[dkim]:
        with database(postgres) as db:
            out[signed] = run(tmp, name, db, n, batch, dkim=signed)
    if len(out) == 2:
        cost = 1 / out[True][1] - 1 / out[False][1]
        print(f"  {name}: DKIM costs {cost * 1000:.1f} ms of sender time per message "
              f"({out[False][1]:,.0f}/s unsigned -> {out[True][1]:,.0f}/s signed)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--dkim", choices=["on", "off", "both"], default="on")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run_backend(tmp, False, args.messages, args.batch, args.dkim)
        if args.postgres:
            run_backend(tmp, True, args.messages, args.batch, args.dkim)


if __name__ == "__main__":
    main()
