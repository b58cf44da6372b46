"""Two server nodes, one mailstore: two `janusmail serve` processes with their own data directories on one
PostgreSQL database, blob bytes in the database (``[store] blob_store = "database"``). Mail delivered over
LMTP to node A wakes an IMAP IDLE session and a JMAP EventSource on node B (PostgreSQL LISTEN/NOTIFY), and
node B serves its bytes exactly (a big message spanning several database chunks included)."""

from __future__ import annotations

import base64
import hashlib
import imaplib
import queue
import re
import smtplib
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.imap.e2e_util import Raw
from tests.mailgen import simple
from tests.serverutil import janusmail_cmd, make_config, spawn_server

ADDRESS = "multi@example.test"
PASSWORD = "two nodes one store"
#: A generous deadline for the whole exchange: a busy machine is slow, not broken.
WAIT = 120.0
#: How long one delivery is waited for before sending the next. A NOTIFY sent before node B's listener has
#: said LISTEN is lost (PostgreSQL keeps none), and the listener says nothing when it is ready; so deliveries
#: repeat until one is heard. Node B's IDLE poll is switched off, so only a notification can wake it.
ATTEMPT = 10.0


def _node_dir(root: Path, name: str) -> Path:
    data = root / name
    data.mkdir()
    (data / "janusmail.toml").write_text('[store]\nblob_store = "database"\n\n[imap]\nidle_poll_interval = 86400\n')
    return data


def _big_message(i: int) -> bytes:
    """A message of about 2.5 MB (three 1 MiB database chunks): text and a base64 attachment."""
    payload = b"".join(hashlib.sha256(b"%d" % n).digest() for n in range(60_000))
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    head = simple(i, subject="Big message across nodes").split(b"\r\nContent-Type:", 1)[0]
    return (head + b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe attachment crossed nodes.\r\n"
            b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\n" + b64 + b"--b1--\r\n")


class EventStream:
    """A JMAP EventSource read on a thread; events land in a queue."""

    def __init__(self, base_url: str) -> None:
        self.events: queue.Queue = queue.Queue()
        self.opened = threading.Event()
        self.status: int | None = None
        self._client = httpx.Client(base_url=base_url, auth=(ADDRESS, PASSWORD), timeout=None)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", "/jmap/eventsource?types=*&closeafter=no&ping=0") as r:
                self.status = r.status_code
                self.opened.set()
                event: dict[str, str] = {}
                for line in r.iter_lines():
                    if line == "":
                        if event:
                            self.events.put(event)
                        event = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        event[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()

    def delivery(self, deadline: float) -> dict:
        """The first StateChange that reports a delivery (EmailDelivery), before ``deadline``."""
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "node B's EventSource never reported the delivery"
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev.get("event") == "state":
                change = orjson.loads(ev["data"])
                if any("EmailDelivery" in ch for ch in change["changed"].values()):
                    return change

    def close(self) -> None:
        self._client.close()


def test_mail_delivered_on_one_node_is_pushed_and_served_by_the_other(pg_url: str, tmp_path: Path) -> None:
    data_a, data_b = _node_dir(tmp_path, "a"), _node_dir(tmp_path, "b")
    janusmail_cmd(data_a, "user", "add", ADDRESS, "--password", PASSWORD, db=pg_url)
    cfg_a = make_config(data_a, pg_url, imap__listen=None, imap__imaps=None, jmap__listen=None)
    cfg_b = make_config(data_b, pg_url, imap__imaps=None, lmtp__listen=None)
    node_a = spawn_server(data_a, cfg_a, pg_url)
    node_b = spawn_server(data_b, cfg_b, pg_url)
    stream: EventStream | None = None
    idle: Raw | None = None
    try:
        imap_port = int(cfg_b.imap.listen.rsplit(":", 1)[1])
        idle = Raw(imap_port)
        assert idle.cmd("a1", f'LOGIN "{ADDRESS}" "{PASSWORD}"')[-1].startswith(b"a1 OK")
        assert any(line.endswith(b" 0 EXISTS") for line in idle.cmd("a2", "SELECT INBOX"))
        stream = EventStream(cfg_b.public_url)
        assert stream.opened.wait(WAIT) and stream.status == 200
        idle.send(b"a3 IDLE\r\n")
        assert idle.line().startswith(b"+")

        lmtp_port = int(cfg_a.lmtp.listen.rsplit(":", 1)[1])
        sent: list[bytes] = []
        deadline = time.monotonic() + WAIT
        exists = 0
        idle.sock.settimeout(ATTEMPT)
        with smtplib.LMTP("127.0.0.1", lmtp_port) as lmtp:
            while not exists:
                assert time.monotonic() < deadline, "node B's IDLE never heard of node A's deliveries"
                raw = _big_message(len(sent)) if not sent else simple(len(sent))
                lmtp.sendmail("sender@example.test", [ADDRESS], raw)  # acknowledged: committed on node A
                sent.append(raw)
                try:
                    while not exists:
                        m = re.fullmatch(rb"\* (\d+) EXISTS", idle.line())
                        exists = int(m.group(1)) if m else 0
                except TimeoutError:
                    continue  # sent before node B listened: send another
        idle.sock.settimeout(30)
        assert exists <= len(sent)
        change = stream.delivery(deadline)
        assert change["@type"] == "StateChange"
        idle.send(b"DONE\r\n")
        assert idle.until("a3")[-1].startswith(b"a3 OK")

        # Node B serves every byte node A stored (LMTP adds one Received: line in front).
        client = imaplib.IMAP4("127.0.0.1", imap_port)
        try:
            client.login(ADDRESS, PASSWORD)
            client.select("INBOX", readonly=True)
            for uid in range(1, exists + 1):
                typ, data = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
                assert typ == "OK"
                body = data[0][1]
                trace, _, rest = body.partition(b"\r\n")
                assert trace.startswith(b"Received: from ") and rest == sent[uid - 1], uid
        finally:
            client.logout()
    finally:
        if stream is not None:
            stream.close()
        if idle is not None:
            idle.close()
        for proc in (node_a, node_b):
            proc.terminate()
        for proc in (node_a, node_b):
            proc.wait(60)


def test_serve_refuses_an_unknown_blob_store(tmp_path: Path) -> None:
    """A bad setting stops the start with a clear message (config file and flag both)."""
    data = tmp_path / "data"
    data.mkdir()
    bad_flag = janusmail_cmd(data, "serve", "--blob-store", "s3", check=False)
    assert bad_flag.returncode != 0 and "blob-store" in bad_flag.stderr
    (data / "janusmail.toml").write_text('[store]\nblob_store = "nfs"\n')
    bad_file = janusmail_cmd(data, "serve", "--imap", "off", "--jmap", "off", "--lmtp", "off", check=False)
    assert bad_file.returncode != 0 and "store.blob_store" in bad_file.stderr


@pytest.mark.parametrize("flag", ["database", "local"])
def test_the_blob_store_flag_overrides_the_config_file(tmp_path: Path, flag: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve --blob-store` wins over [store] blob_store in the configuration the server runs with."""
    from click.testing import CliRunner

    from janusmail.cli.main import cli

    data = tmp_path / "data"
    data.mkdir()
    other = "local" if flag == "database" else "database"
    (data / "janusmail.toml").write_text(f'[store]\nblob_store = "{other}"\n')
    ran: list = []
    monkeypatch.setattr("janusmail.server.run", lambda cfg, ready=None: ran.append(cfg))
    result = CliRunner().invoke(cli, ["--data", str(data), "serve", "--workers", "1", "--blob-store", flag])
    assert result.exit_code == 0, result.output
    assert [cfg.store.blob_store for cfg in ran] == [flag]
    ran.clear()
    assert CliRunner().invoke(cli, ["--data", str(data), "serve", "--workers", "1"]).exit_code == 0
    assert [cfg.store.blob_store for cfg in ran] == [other]
