"""JMAPACCESS points at a JMAP server that exists (RFC 9698 §4), and tokens keep one issuer per data directory.

Through the real ``janusmail serve`` process and the real CLI: without ``--public-url`` the advertised URL (and
every URL in the session resource) is the JMAP listener's own, the bound port when it was 0; with no JMAP in the
process and no public URL there is nothing to advertise; a public URL with a query or fragment is refused at
start; and a token from ``janusmail token issue`` works against a server started with any public URL.
"""

from __future__ import annotations

import imaplib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import imapclient
import pytest

from janusmail.config import Config, check_public_url, listener_url
from tests.serverutil import free_port, janusmail_cmd

ADDRESS = "a@example.test"
PASSWORD = "pw for the public url tests"
CORE = "urn:ietf:params:jmap:core"
imaplib.Commands.setdefault("GETJMAPACCESS", ("AUTH", "SELECTED"))


@contextmanager
def serving(data: Path, *args: str) -> Iterator[dict[str, int]]:
    """``janusmail --data DATA serve ARGS`` until the block ends; yields the bound ports it reported."""
    proc = subprocess.Popen([sys.executable, "-m", "janusmail.cli.main", "--data", str(data), "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stderr and proc.stdout
    bound: dict[str, int] = {}
    seen: list[str] = []
    try:
        for line in proc.stderr:
            seen.append(line)
            m = re.fullmatch(r"(\w+)\t(.+):(\d+)", line.strip())
            if m:
                bound[m.group(1)] = int(m.group(3))
            if line.strip() == "ready":
                break
        else:
            raise AssertionError("serve exited before it was ready:\n" + "".join(seen))
        for stream in (proc.stderr, proc.stdout):  # keep draining: a full pipe must never block the server
            threading.Thread(target=lambda s=stream: [None for _ in s], daemon=True).start()
        yield bound
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    janusmail_cmd(d, "user", "add", ADDRESS, "--password", PASSWORD)
    return d


def imap_login(port: int) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    m.login(ADDRESS, PASSWORD)
    return m


def advertised(m: imaplib.IMAP4) -> str | None:
    """The GETJMAPACCESS URL, or None when JMAPACCESS is not listed (then the command must be BAD)."""
    if "JMAPACCESS" not in m.capability()[1][0].decode().split():
        with pytest.raises(imaplib.IMAP4.error, match="BAD|Unknown command"):
            m._simple_command("GETJMAPACCESS")
        return None
    typ, dat = m._simple_command("GETJMAPACCESS")
    assert typ == "OK"
    (line,) = m.untagged_responses.pop("JMAPACCESS")
    return line.decode().strip('"')


def assert_jmap_answers_at(url: str, base: str) -> None:
    """The session resource answers at ``url``, and every URL in it, used, answers too."""
    session = httpx.get(url, auth=(ADDRESS, PASSWORD), timeout=30)
    assert session.status_code == 200, session.text
    body = session.json()
    assert body["apiUrl"] == base + "/jmap/api"
    for key in ("uploadUrl", "downloadUrl", "eventSourceUrl"):
        assert body[key].startswith(base + "/jmap/"), body[key]
    call = {"using": [CORE], "methodCalls": [["Core/echo", {"hello": "janus"}, "0"]]}
    resp = httpx.post(body["apiUrl"], json=call, auth=(ADDRESS, PASSWORD), timeout=30)
    assert resp.status_code == 200 and resp.json()["methodResponses"][0][1] == {"hello": "janus"}


# -- the advertised URL is the JMAP listener's when no public URL is given ----------------------------------


def test_jmap_listener_without_public_url_is_what_is_advertised(data: Path) -> None:
    imap_port, jmap_port = free_port(), free_port()
    with serving(data, "--imap", f"127.0.0.1:{imap_port}", "--jmap", f"127.0.0.1:{jmap_port}", "--lmtp", "off"):
        base = f"http://127.0.0.1:{jmap_port}"
        m = imap_login(imap_port)
        url = advertised(m)
        assert url == base + "/.well-known/jmap"  # not the default port 8080, where nothing answers
        assert_jmap_answers_at(url, base)
        m.logout()


def test_ephemeral_jmap_port_advertises_the_bound_port(data: Path) -> None:
    imap_port = free_port()
    with serving(data, "--imap", f"127.0.0.1:{imap_port}", "--jmap", "127.0.0.1:0", "--lmtp", "off") as bound:
        jmap_port = bound["jmap"]
        assert jmap_port != 0
        base = f"http://127.0.0.1:{jmap_port}"
        m = imap_login(imap_port)
        url = advertised(m)
        assert url == base + "/.well-known/jmap"
        assert_jmap_answers_at(url, base)
        m.logout()


def test_no_jmap_and_no_public_url_means_no_jmapaccess(data: Path) -> None:
    imap_port = free_port()
    with serving(data, "--imap", f"127.0.0.1:{imap_port}", "--jmap", "off", "--lmtp", "off"):
        m = imaplib.IMAP4("127.0.0.1", imap_port, timeout=30)
        typ, dat = m.login(ADDRESS, PASSWORD)
        assert typ == "OK" and b"JMAPACCESS" not in dat[0] and b"OBJECTID" in dat[0]
        assert advertised(m) is None  # absent from CAPABILITY, and GETJMAPACCESS is BAD
        m.logout()
    # JMAP served by another process or node: naming it is enough.
    elsewhere = f"http://127.0.0.1:{free_port()}"
    with serving(data, "--imap", f"127.0.0.1:{imap_port}", "--jmap", "off", "--lmtp", "off",
                 "--public-url", elsewhere):
        m = imap_login(imap_port)
        assert advertised(m) == elsewhere + "/.well-known/jmap"
        m.logout()


@pytest.mark.parametrize(("url", "complaint"), [
    ("http://127.0.0.1:8080/?tenant=1", "query or fragment"),
    ("http://127.0.0.1:8080/mail#top", "query or fragment"),
    ("https://mail.example.com/?", "query or fragment"),
    ("http://user:secret@127.0.0.1:8080", "user name or password"),
    ("http://mail.example.com", "https"),
])
def test_unusable_public_url_is_refused_at_start(tmp_path: Path, url: str, complaint: str) -> None:
    out = janusmail_cmd(tmp_path / "d", "serve", "--imap", "off", "--jmap", "off", "--lmtp", "off",
                        "--public-url", url, check=False)
    assert out.returncode != 0 and complaint in out.stderr, out.stderr
    assert "ready" not in out.stderr


def test_public_url_with_query_in_the_config_file_is_refused_too(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "janusmail.toml").write_text('public_url = "https://mail.example.com/jmap?x=1"\n')
    out = janusmail_cmd(data, "serve", "--imap", "off", "--jmap", "off", "--lmtp", "off", check=False)
    assert out.returncode != 0 and "query or fragment" in out.stderr, out.stderr


def test_wildcard_jmap_listener_needs_a_public_url(tmp_path: Path) -> None:
    out = janusmail_cmd(tmp_path / "d", "serve", "--imap", "off", "--lmtp", "off", "--jmap", "0.0.0.0:0",
                        check=False)
    assert out.returncode != 0 and "--public-url" in out.stderr, out.stderr


# -- one token issuer per data directory -------------------------------------------------------------------


def token_login(imap_port: int, token: str) -> bool:
    c = imapclient.IMAPClient("127.0.0.1", port=imap_port, ssl=False, timeout=30)
    try:
        caps = c.oauthbearer_login(ADDRESS, token)[0]
        assert b"JMAPACCESS" in caps
        return True
    except imapclient.exceptions.LoginError:
        return False
    finally:
        c.shutdown()


def jmap_with_token(url: str, token: str) -> int:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


def issue(data: Path, *extra: str) -> str:
    out = janusmail_cmd(data, *extra, "token", "issue", ADDRESS, "--scope", "imap,jmap", "--ttl", "1h")
    return out.stdout.strip().splitlines()[-1]


def test_cli_tokens_work_against_a_server_with_any_public_url(data: Path, tmp_path: Path) -> None:
    first = issue(data)  # before any server ran: the CLI records the data directory's issuer
    issuer_file = data / "oauth-issuer"
    recorded = issuer_file.read_text()
    other_config = tmp_path / "elsewhere.toml"  # a CLI started with other settings agrees all the same
    other_config.write_text('public_url = "https://elsewhere.example.net"\n')
    second = issue(data, "--config", str(other_config))
    for _ in range(2):  # two servers, each with a public URL of its own
        imap_port, jmap_port = free_port(), free_port()
        public = f"http://127.0.0.1:{jmap_port}"
        with serving(data, "--imap", f"127.0.0.1:{imap_port}", "--jmap", f"127.0.0.1:{jmap_port}", "--lmtp", "off",
                     "--public-url", public):
            for token in (first, second):
                assert token_login(imap_port, token)
                assert jmap_with_token(public + "/.well-known/jmap", token) == 200
            third = issue(data)  # issued while this server runs: the same issuer
            assert token_login(imap_port, third)
            doc = httpx.get(public + "/.well-known/openid-configuration", timeout=30).json()
            assert doc["issuer"] == recorded.strip() and doc["jwks_uri"] == public + "/.well-known/jwks.json"
    assert issuer_file.read_text() == recorded  # nobody rewrote it


# -- the config rules, directly --------------------------------------------------------------------------------


def test_effective_public_url_rules() -> None:
    cfg = Config()
    assert cfg.public_url is None and cfg.effective_public_url == "http://127.0.0.1:8080"
    cfg.jmap.listen = "[::1]:9000"
    assert cfg.session_url == "http://[::1]:9000/.well-known/jmap"
    cfg.jmap.listen = "127.0.0.1:0"
    assert cfg.session_url is None  # not bound yet: nothing to advertise
    cfg.settle_public_url("127.0.0.1", 40123)
    assert cfg.session_url == "http://127.0.0.1:40123/.well-known/jmap"
    cfg.settle_public_url("127.0.0.1", 1)  # settled once; a configured URL is never replaced either
    assert cfg.public_url == "http://127.0.0.1:40123"
    cfg.jmap.listen = None
    cfg.public_url = None
    assert cfg.session_url is None
    cfg.public_url = "https://mail.example.com/base/"
    assert cfg.session_url == "https://mail.example.com/base/.well-known/jmap"
    assert listener_url("::1", 5) == "http://[::1]:5"
    check_public_url("https://mail.example.com/base/")
    check_public_url("http://localhost:8080")
    for bad in ("ftp://x", "https://", "https://mail.example.com:99999", "https://m.example/?", "https://m.example#"):
        with pytest.raises(ValueError):
            check_public_url(bad)


def test_issuer_file_is_created_once(tmp_path: Path) -> None:
    from janusmail.auth.tokens import load_or_create_issuer

    assert load_or_create_issuer(tmp_path, "http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert load_or_create_issuer(tmp_path, "https://other.example") == "http://127.0.0.1:8080"
    assert (tmp_path / "oauth-issuer").stat().st_mode & 0o777 == 0o600
    (tmp_path / "oauth-issuer").write_text("two words\n")
    with pytest.raises(ValueError):
        load_or_create_issuer(tmp_path, "x")
