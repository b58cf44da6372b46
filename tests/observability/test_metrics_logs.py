"""Metrics and logs of a real ``janusmail -v serve --metrics ... --log-format json`` process, driven by real
clients (imaplib, httpx, smtplib): the counters move by exactly what the clients did, the JSON log parses line
by line with the connection ids that tie one principal's IMAP session to its JMAP requests, and no password,
app password or token reaches the log, in clear or in any base64 form it crossed the wire in.

One server for the module (starting one costs more than the tests): each test compares scrapes taken before
and after its own work.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import json
import re
import smtplib
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from janusmail.auth import app_passwords, passwords
from janusmail.auth.factory import build_token_service
from janusmail.config import Config
from janusmail.store.store import Store
from tests.imap.e2e_util import CHEAP
from tests.observability.util import WAIT, Served, sample, serve, wait_for_sample

ADDRESS = "obs@example.test"
PASSWORD = "Obs-pass-7Kq2-wq9Zt"
WRONG = "Wrong-guess-Hh41-pLm3"
CORE, MAIL = "urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"
MESSAGE = (b"From: Sender <sender@example.test>\r\nTo: obs@example.test\r\nSubject: metrics\r\n"
           b"Message-ID: <m1@example.test>\r\n\r\nbody\r\n")

CONFIG = """
[auth]
login_delay_base = 0.0
login_delay_max = 0.0
[metrics]
store_refresh = 0.0
[imap]
idle_poll_interval = 3600
[outbound]
dkim = false
nameservers = ["127.0.0.1:9"]
dns_timeout = 0.5
"""

imaplib.Commands.setdefault("GETJMAPACCESS", ("AUTH", "SELECTED"))


@dataclass
class World:
    served: Served
    account_id: str
    app_password: str
    token: str


def _data_dir(data: Path, then: Callable[[Store, str], None] | None = None) -> str:
    """A data directory with this module's config and the test account (cheap password hashing); ``then`` adds to
    the store before it closes. Returns the account id."""
    data.mkdir()
    (data / "janusmail.toml").write_text(CONFIG)
    previous = passwords.set_hasher(CHEAP)
    try:
        store = Store.open(data)
        try:
            account_id = store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD)).id
            if then is not None:
                then(store, account_id)
        finally:
            store.close()
    finally:
        passwords.set_hasher(previous)
    return account_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data: Path = tmp_path_factory.mktemp("observability") / "data"
    app_secret = ""

    def phone(store: Store, account_id: str) -> None:
        nonlocal app_secret
        _, app_secret = app_passwords.create(store, account_id, "phone", "imap,jmap,smtp")

    account_id = _data_dir(data, phone)
    token = build_token_service(Config(data_dir=data)).issue(account_id, ["imap", "jmap", "smtp"], 3600)
    served = serve(data, "--log-format", "json")
    try:
        yield World(served, account_id, app_secret, token)
    finally:
        served.stop()


def deltas(before: dict, after: dict):  # noqa: ANN201
    return lambda name, **labels: sample(after, name, **labels) - sample(before, name, **labels)


def imap(w: World) -> imaplib.IMAP4:
    return imaplib.IMAP4("127.0.0.1", w.served.port("imap"), timeout=WAIT)


def lmtp_deliver(w: World, rcpts: list[str]) -> None:
    with smtplib.LMTP("127.0.0.1", w.served.port("lmtp"), timeout=WAIT) as client:
        with contextlib.suppress(smtplib.SMTPRecipientsRefused):
            client.sendmail("sender@example.test", rcpts, MESSAGE)


def jmap_url(w: World) -> str:
    return f"http://127.0.0.1:{w.served.port('jmap')}"


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


# -- metrics -----------------------------------------------------------------------------------------------


def test_imap_commands_logins_and_deliveries_are_counted(world: World) -> None:
    before = world.served.scrape()
    lmtp_deliver(world, [ADDRESS, "nobody@example.test"])
    client = imap(world)
    with pytest.raises(imaplib.IMAP4.error):
        client.login(ADDRESS, WRONG)
    client.login(ADDRESS, PASSWORD)
    client.select("INBOX")
    for _ in range(5):
        client.fetch("1:*", "(FLAGS)")
    with pytest.raises(imaplib.IMAP4.error):
        client.fetch("1:*", "(NOSUCHITEM)")
    client.logout()
    d = deltas(before, world.served.scrape())
    assert d("janusmail_imap_commands_total", command="FETCH", result="ok") == 5
    assert d("janusmail_imap_commands_total", command="FETCH", result="bad") == 1
    assert d("janusmail_imap_command_duration_seconds_count", command="FETCH") == 5  # (a parse error has none)
    assert d("janusmail_imap_commands_total", command="LOGIN", result="no") == 1
    assert d("janusmail_imap_commands_total", command="LOGIN", result="ok") == 1
    assert d("janusmail_auth_failures_total", door="imap", kind="bad_credentials") == 1
    assert d("janusmail_auth_failures_total", door="jmap", kind="bad_credentials") == 0
    assert d("janusmail_connections_total", door="imap") == 1
    assert d("janusmail_connections_total", door="lmtp") == 1
    assert d("janusmail_deliveries_total", door="lmtp", result="accepted") == 1
    assert d("janusmail_deliveries_total", door="lmtp", result="refused") == 1
    assert d("janusmail_store_group_commit_calls_count") >= 1  # the delivery's write, at least
    assert d("janusmail_store_commit_duration_seconds_count") == d("janusmail_store_group_commit_calls_count")
    wait_for_sample(world.served, "janusmail_connections_open", lambda v: v == 0, door="imap")
    samples = world.served.scrape()
    assert sample(samples, "janusmail_store_accounts") == 1
    assert sample(samples, "janusmail_store_messages") >= 1 and sample(samples, "janusmail_store_bytes") >= len(MESSAGE)


def test_jmap_methods_requests_and_credentials_are_counted(world: World) -> None:
    before = world.served.scrape()
    with httpx.Client(auth=(ADDRESS, PASSWORD), timeout=WAIT) as client:
        session = client.get(jmap_url(world) + "/.well-known/jmap").json()
        account = session["primaryAccounts"][MAIL]
        response = client.post(session["apiUrl"], json={"using": [CORE, MAIL], "methodCalls": [
            ["Mailbox/get", {"accountId": account}, "0"],
            ["Mailbox/get", {"accountId": account}, "1"],
            ["Email/query", {"accountId": "no-such-account"}, "2"],
            ["Made/up", {}, "3"],
        ]})
    assert response.status_code == 200 and response.headers["x-request-id"].startswith("jmap-")
    assert httpx.get(jmap_url(world) + "/.well-known/jmap", auth=(ADDRESS, WRONG)).status_code == 401
    bad_bearer = {"Authorization": "Bearer " + world.token[:-4] + "AAAA"}
    assert httpx.get(jmap_url(world) + "/.well-known/jmap", headers=bad_bearer).status_code == 401
    assert httpx.get(jmap_url(world) + "/.well-known/jmap").status_code == 401  # no credentials: no failure
    # the web admin is a door too: a wrong password, and a valid account that is no administrator
    assert httpx.get(jmap_url(world) + "/admin/", auth=(ADDRESS, WRONG), timeout=WAIT).status_code == 401
    assert httpx.get(jmap_url(world) + "/admin/", auth=(ADDRESS, PASSWORD), timeout=WAIT).status_code == 403
    d = deltas(before, world.served.scrape())
    assert d("janusmail_auth_failures_total", door="admin", kind="bad_credentials") == 1
    assert d("janusmail_auth_failures_total", door="admin", kind="authz_denied") == 1
    assert d("janusmail_jmap_method_calls_total", method="Mailbox/get", result="ok") == 2
    assert d("janusmail_jmap_method_duration_seconds_count", method="Mailbox/get") == 2
    assert d("janusmail_jmap_method_calls_total", method="Email/query", result="accountNotFound") == 1
    assert d("janusmail_jmap_method_calls_total", method="unknown", result="unknownMethod") == 1
    assert d("janusmail_http_requests_total", route="api", status="200") == 1
    assert d("janusmail_http_requests_total", route="session", status="200") == 1
    assert d("janusmail_http_requests_total", route="session", status="401") == 3
    assert d("janusmail_http_request_duration_seconds_count", route="api") == 1
    assert d("janusmail_auth_failures_total", door="jmap", kind="bad_credentials") == 1  # (not the admin's)
    assert d("janusmail_auth_failures_total", door="jmap", kind="token_invalid") == 1
    assert d("janusmail_connections_total", door="jmap_http") == 7  # the admin's two requests included


def test_submission_local_and_remote_deliveries_and_the_queue(world: World) -> None:
    before = world.served.scrape()
    with smtplib.SMTP("127.0.0.1", world.served.port("submission"), timeout=WAIT) as client:
        client.ehlo()
        client.user, client.password = ADDRESS, WRONG
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.auth("PLAIN", client.auth_plain)  # (login() would try the next mechanism too)
        client.login(ADDRESS, PASSWORD)
        message = MESSAGE.replace(b"sender@example.test", ADDRESS.encode()).replace(b"<m1@", b"<m2@")
        client.sendmail(ADDRESS, [ADDRESS, "someone@remote.invalid"], message)
    after = world.served.scrape()
    d = deltas(before, after)
    assert d("janusmail_deliveries_total", door="submission", result="accepted") == 1
    assert d("janusmail_auth_failures_total", door="submission", kind="bad_credentials") == 1
    assert d("janusmail_connections_total", door="submission") == 1
    # the sender delivers the local copy, and the remote one waits for DNS that does not answer (queued)
    local = sample(before, "janusmail_deliveries_total", door="local", result="accepted")
    wait_for_sample(world.served, "janusmail_deliveries_total", lambda v: v == local + 1, door="local",
                    result="accepted")
    remote = sample(before, "janusmail_deliveries_total", door="remote", result="deferred")
    wait_for_sample(world.served, "janusmail_deliveries_total", lambda v: v >= remote + 1, door="remote",
                    result="deferred")
    wait_for_sample(world.served, "janusmail_outbound_queue_depth", lambda v: v >= 1, state="pending")
    assert sample(world.served.scrape(), "janusmail_outbound_queue_depth", state="held") == 0


def test_push_listeners_are_gauged(world: World) -> None:
    client = imap(world)
    client.login(ADDRESS, PASSWORD)
    client.select("INBOX")
    client.send(b"I1 IDLE\r\n")
    assert client.readline().startswith(b"+")
    wait_for_sample(world.served, "janusmail_push_subscribers", lambda v: v == 1, kind="imap_idle")
    url = jmap_url(world) + "/jmap/eventsource?types=*&closeafter=no&ping=0"
    with httpx.Client(auth=(ADDRESS, PASSWORD), timeout=WAIT) as http, http.stream("GET", url) as stream:
        assert stream.status_code == 200
        chunks = stream.iter_bytes()  # (kept: a dropped iterator closes the stream)
        assert next(chunks).startswith(b":")  # the stream is open
        wait_for_sample(world.served, "janusmail_push_subscribers", lambda v: v == 1, kind="eventsource")
        assert sample(world.served.scrape(), "janusmail_connections_open", door="jmap_eventsource") == 1
    wait_for_sample(world.served, "janusmail_push_subscribers", lambda v: v == 0, kind="eventsource")
    client.send(b"DONE\r\n")
    assert client.readline().startswith(b"I1 OK")
    wait_for_sample(world.served, "janusmail_push_subscribers", lambda v: v == 0, kind="imap_idle")
    client.logout()


# -- logs ------------------------------------------------------------------------------------------------------


def json_lines(served: Served, start: int = 0) -> list[dict]:
    """Every log line from ``start`` on, parsed (the ready banner is no log line)."""
    out = []
    for line in served.output()[start:]:
        if "\t" in line or line.strip() == "ready":
            continue
        doc = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= doc.keys(), doc
        out.append(doc)
    return out


def test_json_log_ties_an_imap_session_to_the_jmap_requests_of_its_account(world: World) -> None:
    start = len(world.served.output())
    client = imap(world)
    client.login(ADDRESS, PASSWORD)
    typ, data = client._simple_command("GETJMAPACCESS")
    assert typ == "OK"
    client.logout()
    response = httpx.get(jmap_url(world) + "/.well-known/jmap", auth=(ADDRESS, PASSWORD), timeout=WAIT)
    rid = response.headers["x-request-id"]
    world.served.wait_for_line(lambda line: rid in line and "jmap.request" in line)
    docs = json_lines(world.served)  # every line of the run parses, not only this test's
    mine = json_lines(world.served, start)
    access = next(d for d in mine if d["msg"] == "imap.getjmapaccess")
    assert access["sid"].startswith("imap-") and access["account"] == world.account_id
    assert access["url"].endswith("/.well-known/jmap")
    login = next(d for d in mine if d["msg"] == "imap.login" and d["sid"] == access["sid"])
    assert login["account"] == world.account_id and login["method"] == "password"
    session_lines = [d for d in mine if d.get("sid") == access["sid"]]
    assert {d["msg"] for d in session_lines} >= {"imap.connect", "imap.login", "imap.command", "imap.getjmapaccess"}
    assert all(d["command"] != "UNKNOWN" for d in session_lines if d["msg"] == "imap.command")
    request = next(d for d in mine if d["msg"] == "jmap.request" and d["sid"] == rid)
    assert request["account"] == world.account_id and request["route"] == "session" and request["status"] == 200
    assert rid != access["sid"]
    assert any(d["msg"] == "imap.command" and "sid" in d for d in docs)


def _imap_raw(world: World, line: bytes) -> bytes:
    """Send one raw command line on a fresh IMAP connection; what came back up to its tagged response."""
    with socket.create_connection(("127.0.0.1", world.served.port("imap")), timeout=WAIT) as sock:
        stream = sock.makefile("rb")
        stream.readline()
        sock.sendall(line + b"\r\n")
        tag, out = line.split(b" ", 1)[0], b""
        while True:
            got = stream.readline()
            out += got
            if not got or got.startswith(tag + b" "):
                return out


def test_no_secret_reaches_the_log(world: World) -> None:
    bad_token = world.token[:-6] + "AAAAAA"
    secrets = [PASSWORD, WRONG, world.app_password, world.token, bad_token]
    # IMAP: LOGIN with each kind, AUTHENTICATE PLAIN (challenge, and SASL-IR), XOAUTH2, OAUTHBEARER
    for secret, ok in ((PASSWORD, True), (WRONG, False), (world.app_password, True)):
        client = imap(world)
        if ok:
            client.login(ADDRESS, secret)
        else:
            with pytest.raises(imaplib.IMAP4.error):
                client.login(ADDRESS, secret)
        client.logout()
    client = imap(world)
    client.authenticate("PLAIN", lambda _: f"\0{ADDRESS}\0{PASSWORD}".encode())
    client.logout()
    for secret, status in ((world.app_password, b"OK"), (WRONG, b"NO")):  # SASL-IR
        answer = _imap_raw(world, b"a1 AUTHENTICATE PLAIN " + b64(f"\0{ADDRESS}\0{secret}").encode())
        assert b"a1 " + status in answer
    client = imap(world)
    client.authenticate("XOAUTH2", lambda _: f"user={ADDRESS}\x01auth=Bearer {world.token}\x01\x01".encode())
    client.logout()
    client = imap(world)
    with pytest.raises(imaplib.IMAP4.error):
        client.authenticate("OAUTHBEARER", lambda c: b"\x01" if c else
                            f"n,a={ADDRESS},\x01auth=Bearer {bad_token}\x01\x01".encode())
    client.logout()
    # JMAP: Basic with the password and the app password, Bearer good and bad
    for auth in ((ADDRESS, PASSWORD), (ADDRESS, world.app_password), (ADDRESS, WRONG)):
        httpx.get(jmap_url(world) + "/.well-known/jmap", auth=auth, timeout=WAIT)
    for token in (world.token, bad_token):
        httpx.get(jmap_url(world) + "/.well-known/jmap", headers={"Authorization": f"Bearer {token}"}, timeout=WAIT)
    # SMTP AUTH: PLAIN with an initial response, LOGIN, XOAUTH2, a refused one
    port = world.served.port("submission")
    for mechanism, secret in (("PLAIN", PASSWORD), ("LOGIN", world.app_password)):
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp:
            smtp.ehlo()
            smtp.user, smtp.password = ADDRESS, secret
            smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp:
        smtp.ehlo()
        smtp.auth("XOAUTH2", lambda challenge=None: f"user={ADDRESS}\x01auth=Bearer {world.token}\x01\x01")
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp, pytest.raises(smtplib.SMTPAuthenticationError):
        smtp.login(ADDRESS, WRONG)
    # a last failed login with a name of its own: once its line is read, every earlier line is too
    marker = f"marker-{uuid.uuid4().hex}@example.test"
    with pytest.raises(imaplib.IMAP4.error):
        imap(world).login(marker, WRONG)
    world.served.wait_for_line(lambda line: marker in line)
    log = "".join(world.served.output())
    assert '"auth.failure"' in log and '"imap.login"' in log and "mail.log" in log  # debug logging was on
    for secret in secrets:
        forms = {
            secret, b64(secret), b64(secret).rstrip("="), base64.urlsafe_b64encode(secret.encode()).decode(),
            b64(f"\0{ADDRESS}\0{secret}"), b64(f"{ADDRESS}:{secret}"),
            b64(f"user={ADDRESS}\x01auth=Bearer {secret}\x01\x01"),
            b64(f"n,a={ADDRESS},\x01auth=Bearer {secret}\x01\x01"),
        }
        for form in forms:
            assert form not in log, f"a secret reached the log as {form[:12]}..."
    if world.app_password.replace("-", "") != world.app_password:
        assert world.app_password.replace("-", "") not in log


def test_text_log_format_of_a_real_server(tmp_path: Path) -> None:
    """``serve --log-format text`` (the default): ``TIME LEVEL LOGGER: event key=value ... [sid=... account=...]``,
    no JSON, and the same ids: the IMAP session's lines share its sid, the JMAP request's sid is its X-Request-Id."""
    data = tmp_path / "data"
    account_id = _data_dir(data)
    served = serve(data, "--log-format", "text")
    try:
        start = len(served.output())
        client = imaplib.IMAP4("127.0.0.1", served.port("imap"), timeout=WAIT)
        client.login(ADDRESS, PASSWORD)
        client.logout()
        rid = httpx.get(f"http://127.0.0.1:{served.port('jmap')}/.well-known/jmap", auth=(ADDRESS, PASSWORD),
                        timeout=WAIT).headers["x-request-id"]
        request = served.wait_for_line(lambda line: f"[sid={rid} " in line and " jmap.request " in line)
    finally:
        served.stop()
    lines = [line.rstrip("\n") for line in served.output()[start:]]
    assert not any(line.lstrip().startswith("{") for line in lines), lines
    login = next(line for line in lines if ": imap.login " in line)
    m = re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} INFO [\w.]+: imap\.login .*method=password.*"
                     rf"\[sid=(imap-\S+) account={account_id}\]", login)
    assert m, login
    assert any(f"[sid={m.group(1)} " in line and ": imap.command " in line for line in lines), lines
    assert request.rstrip("\n").endswith(f"[sid={rid} account={account_id}]") and "status=200" in request
    assert PASSWORD not in "".join(served.output())


def test_readme_lists_every_metric_served(world: World) -> None:
    """The README's table of metrics names exactly what ``/metrics`` serves (counters with their ``_total``)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Metrics and logs\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(janusmail_\w+)` \|", section, re.MULTILINE))
    host, port = world.served.bound["metrics"]
    text = httpx.get(f"http://{host}:{port}/metrics", timeout=WAIT).text
    served = {f.name + ("_total" if f.type == "counter" else "") for f in text_string_to_metric_families(text)
              if f.name.startswith("janusmail_")}
    assert listed == served, f"only in the README: {sorted(listed - served)}; only served: {sorted(served - listed)}"
