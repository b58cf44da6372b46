"""Direct delivery to the recipients' MX hosts, and DKIM, end to end: the real server sends through JMAP
EmailSubmission with no smarthost; a small DNS server started here answers MX/A for the test domains, and an
aiosmtpd sink with STARTTLS on 127.0.0.1 is every "remote MX" (``[outbound] mx_port`` points at it).
The message the sink receives must verify with dkimpy against the record ``janusmail dkim show`` prints.
A smarthost over implicit TLS with AUTH and a verified certificate has a test of its own.

One server for the module: each case sends to its own domain. The pure parts (MX ordering, nameserver
settings, DKIM helpers) are unit-tested at the end."""

from __future__ import annotations

import email
import os
import random
import re
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner

from janusmail.cli.main import cli
from janusmail.imap.tls import ensure_self_signed
from janusmail.smtp import dkimsign, mx
from tests.jmap.test_email_submission import send, submission
from tests.jmap.test_front_harness import Jmap, client_for, start_server
from tests.procmem import wait_for
from tests.serverutil import ServerThread, free_port
from tests.smtp.submission_util import make_certificate

#: name -> {type: [rdata]}; a name listed here exists (an empty type answers NOERROR with no records).
ZONE: dict[str, dict[str, list[str]]] = {
    "direct.test": {"MX": ["10 mx1.direct.test."]},
    "mx1.direct.test": {"A": ["127.0.0.1"]},
    # the preferred host refuses connections (nothing listens on 127.0.0.2), the backup answers
    "backup.test": {"MX": ["20 mx2.backup.test.", "10 mx1.backup.test."]},
    "mx1.backup.test": {"A": ["127.0.0.2"]},
    "mx2.backup.test": {"A": ["127.0.0.1"]},
    "bare.test": {"A": ["127.0.0.1"]},  # no MX: the domain is its own mail host
    "nomail.test": {"MX": ["0 ."]},  # RFC 7505 null MX
    "down.test": {"MX": ["10 mx1.down.test."]},  # its only host refuses: a temporary failure
    "mx1.down.test": {"A": ["127.0.0.2"]},
    "ghost.test": {"MX": ["10 mx1.ghost.test."]},  # its only host does not exist
}
SILENT = {"slow.test"}  # queries dropped: the resolver times out
SERVFAIL = {"broken.test"}


class FakeDns:
    """A UDP DNS server on 127.0.0.1 answering from ZONE (NXDOMAIN for other names)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)  # how soon stop() is noticed
        self.port = self.sock.getsockname()[1]
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            if name in SILENT:
                continue
            response = dns.message.make_response(query)
            if name in SERVFAIL:
                response.set_rcode(dns.rcode.SERVFAIL)
            elif name not in ZONE:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif ZONE[name].get(rdtype):
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", rdtype, *ZONE[name][rdtype]))
            self.sock.sendto(response.to_wire(), peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class MxSink:
    """Every remote MX: accepts all but ``nobody@...``, offers STARTTLS, keeps (rcpts, bytes, tls) per message."""

    def __init__(self, tls_dir: Path) -> None:
        self.messages: list[tuple[list[str], bytes, bool]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
                if address.startswith("nobody@"):
                    return "550 5.1.1 No such user here"
                envelope.rcpt_tos.append(address)
                return "250 2.1.5 OK"

            async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
                with outer.lock:
                    outer.messages.append((list(envelope.rcpt_tos), bytes(envelope.content), session.ssl is not None))
                return "250 2.0.0 Queued"

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(ensure_self_signed(tls_dir))
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=context)
        self.controller.start()

    def to(self, rcpt: str) -> list[tuple[list[str], bytes, bool]]:
        with self.lock:
            return [m for m in self.messages if rcpt in m[0]]

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, MxSink, FakeDns]]:
    tmp = tmp_path_factory.mktemp("mx")
    resolver = FakeDns()
    sink = MxSink(tmp / "sink-tls")
    srv = start_server(tmp, None, outbound__mx_port=sink.port, outbound__nameservers=[f"127.0.0.1:{resolver.port}"],
                       outbound__dns_timeout=1.0, outbound__retry_base=3600)
    try:
        yield srv, sink, resolver
    finally:
        srv.stop()
        sink.stop()
        resolver.stop()


@pytest.fixture(scope="module")
def alice(world: tuple[ServerThread, MxSink, FakeDns]) -> Iterator[Jmap]:
    j = client_for(world[0], "alice@example.test")
    yield j
    j.http.close()


def status_of(j: Jmap, sub_id: str, rcpt: str) -> dict[str, Any]:
    return submission(j, sub_id)["deliveryStatus"][rcpt]


def cli_record(data_dir: Path, domain: str) -> str:
    result = CliRunner().invoke(cli, ["--data", str(data_dir), "dkim", "show", domain], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def dnsfunc_for(record_line: str):  # noqa: ANN201
    """What dkimpy asks DNS for, answered from the zone line ``janusmail dkim show`` printed."""
    name, _, rest = record_line.strip().partition(" IN TXT ")
    value = "".join(re.findall(r'"([^"]*)"', rest)).encode()

    def lookup(qname: bytes, timeout: int = 5) -> bytes | None:
        return value if qname.decode().rstrip(".") == name.rstrip(".") else None

    return lookup


@pytest.mark.parametrize(("rcpt", "host"), [
    ("carol@direct.test", "mx1.direct.test"),
    ("dave@backup.test", "mx2.backup.test"),  # mx1 (preference 10) refuses the connection
    ("erin@bare.test", "bare.test"),  # implicit MX
])
def test_delivered_to_the_mx(world: Any, alice: Jmap, rcpt: str, host: str) -> None:
    _, sink, _ = world
    sub_id = send(alice, [rcpt], on_success=False)[1][1]["created"]["sub"]["id"]
    wait_for(lambda: status_of(alice, sub_id, rcpt)["delivered"] == "yes", f"{rcpt} delivered")
    assert status_of(alice, sub_id, rcpt)["smtpReply"] == f"250 2.0.0 Accepted by {host}"
    [(rcpts, data, tls)] = sink.to(rcpt)
    assert rcpts == [rcpt] and tls, "opportunistic STARTTLS with the sink's self-signed certificate"
    assert email.message_from_bytes(data)["Subject"] == "Hello"


def test_one_connection_per_domain_and_the_answers_per_recipient(world: Any, alice: Jmap) -> None:
    _, sink, _ = world
    rcpts = ["f1@direct.test", "f2@direct.test", "nobody@direct.test", "f3@bare.test"]
    sub_id = send(alice, rcpts, on_success=False)[1][1]["created"]["sub"]["id"]
    wait_for(lambda: all(status_of(alice, sub_id, r)["delivered"] != "queued" for r in rcpts), "every answer")
    got = {r: status_of(alice, sub_id, r) for r in rcpts}
    assert got["nobody@direct.test"]["delivered"] == "no"
    assert got["nobody@direct.test"]["smtpReply"].startswith("550 5.1.1")
    assert {r for r in rcpts if got[r]["delivered"] == "yes"} == {"f1@direct.test", "f2@direct.test", "f3@bare.test"}
    [(direct, _, _)] = sink.to("f1@direct.test")
    assert direct == ["f1@direct.test", "f2@direct.test"]  # one transaction for the domain
    assert sink.to("f3@bare.test")[0][0] == ["f3@bare.test"]


@pytest.mark.parametrize(("rcpt", "status"), [
    ("gina@nomail.test", "5.1.10"),  # RFC 7505 null MX
    ("hank@missing.test", "5.1.2"),  # NXDOMAIN
])
def test_permanent_dns_failures_bounce(world: Any, alice: Jmap, rcpt: str, status: str) -> None:
    _, sink, _ = world
    sub_id = send(alice, [rcpt], on_success=False)[1][1]["created"]["sub"]["id"]
    wait_for(lambda: status_of(alice, sub_id, rcpt)["delivered"] == "no", f"{rcpt} refused for good")
    assert status in status_of(alice, sub_id, rcpt)["smtpReply"]
    [dsn_blob] = submission(alice, sub_id)["dsnBlobIds"]
    inbox = alice.call("Email/query", {"filter": {"inMailbox": alice.role("inbox")}})["ids"]
    blobs = [g["blobId"] for g in alice.call("Email/get", {"ids": inbox, "properties": ["blobId"]})["list"]]
    assert dsn_blob in blobs
    raw = alice.http.get(f"/jmap/download/{alice.account_id}/{dsn_blob}/dsn.eml?type=message/rfc822").content
    assert f"Final-Recipient: rfc822; {rcpt}".encode() in raw and f"Status: {status}".encode() in raw
    assert not sink.to(rcpt)


@pytest.mark.parametrize(("rcpt", "reply"), [
    ("ivan@slow.test", "451 4.4.3 DNS lookup for slow.test timed out"),
    ("judy@broken.test", "451 4.4.3 DNS servers failed"),
    ("kate@down.test", "451 4.4.1 No mail server of down.test answered"),
    ("liam@ghost.test", "451 4.4.4 No address for any mail server of ghost.test"),
])
def test_temporary_failures_stay_queued(world: Any, alice: Jmap, rcpt: str, reply: str) -> None:
    sub_id = send(alice, [rcpt], on_success=False)[1][1]["created"]["sub"]["id"]
    wait_for(lambda: status_of(alice, sub_id, rcpt)["smtpReply"].startswith(reply), f"{rcpt}: {reply}")
    record = submission(alice, sub_id)
    assert record["deliveryStatus"][rcpt]["delivered"] == "queued" and record["dsnBlobIds"] == []


def test_dkim_signature_verifies_with_the_published_record(world: Any, alice: Jmap) -> None:
    srv, sink, _ = world
    rcpt = "lena@direct.test"
    sub_id = send(alice, [rcpt], on_success=False)[1][1]["created"]["sub"]["id"]
    wait_for(lambda: status_of(alice, sub_id, rcpt)["delivered"] == "yes", "delivered")
    [(_, data, _)] = sink.to(rcpt)
    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test;")
    signature = email.message_from_bytes(data)["DKIM-Signature"]
    assert "s=janus;" in signature and re.search(r"h=from : to\s*:\s*subject", signature)
    # the key the server made on its first send is the one the CLI prints (and does not replace)
    data_dir = srv.config.data_dir
    key_file = data_dir / "dkim" / "example.test.janus.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    line = cli_record(data_dir, "example.test")
    assert line.startswith('janus._domainkey.example.test. IN TXT "v=DKIM1; k=rsa; p=')
    assert dkim.verify(data, dnsfunc=dnsfunc_for(line))
    # and it is the signature that holds: a changed subject fails
    tampered = data.replace(b"Subject: Hello", b"Subject: Hellp")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc_for(line))


def test_the_relay_path_is_signed_too(world: Any, tmp_path: Path) -> None:
    """With a smarthost the same signature goes out (the sink stands in for the relay here)."""
    _, sink, _ = world
    srv = start_server(tmp_path, None, outbound__relay=f"smtp://127.0.0.1:{sink.port}",
                       outbound__relay_tls_verify=False, outbound__retry_base=3600)
    try:
        alice = client_for(srv, "alice@example.test")
        rcpt = "mona@relayed.test"  # not in the zone: only the relay can deliver it
        sub_id = send(alice, [rcpt], on_success=False)[1][1]["created"]["sub"]["id"]
        wait_for(lambda: status_of(alice, sub_id, rcpt)["delivered"] == "yes", "relayed")
        alice.http.close()
        [(_, data, tls)] = sink.to(rcpt)
        assert tls and dkim.verify(data, dnsfunc=dnsfunc_for(cli_record(srv.config.data_dir, "example.test")))
    finally:
        srv.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # it is implicit TLS (see below)
def test_relay_over_implicit_tls_with_auth_and_a_verified_certificate(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``smtps://`` relay with AUTH: the certificate is verified (refused until the test trusts it), the
    password from ``relay_password_file`` is accepted, and the message arrives over that TLS session."""
    cert, key = make_certificate(tmp_path / "relay-tls", ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    got: list[tuple[str, list[str], bool]] = []
    logins: list[tuple[str, bool]] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
            tls = session.peer is not None and server.transport.get_extra_info("ssl_object") is not None
            got.append((envelope.mail_from, list(envelope.rcpt_tos), tls and session.authenticated))
            return "250 2.0.0 Queued"

    def authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN202
        ok = (auth_data.login, auth_data.password) == (b"relayuser", b"relay secret")
        logins.append((mechanism, ok))
        return AuthResult(success=ok)

    port = free_port()
    # implicit TLS: aiosmtpd counts only STARTTLS as TLS for AUTH, so its own TLS rule is off here
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, ssl_context=context,
                            authenticator=authenticator, auth_required=True, auth_require_tls=False)
    controller.start()
    secret = tmp_path / "relay.secret"
    secret.write_text("relay secret\n")
    srv = start_server(tmp_path, None, outbound__relay=f"smtps://127.0.0.1:{port}",
                       outbound__relay_username="relayuser", outbound__relay_password_file=str(secret),
                       outbound__retry_base=3600)
    try:
        alice = client_for(srv, "alice@example.test")
        first = send(alice, ["nina@relayed.test"], on_success=False)[1][1]["created"]["sub"]["id"]
        wait_for(lambda: status_of(alice, first, "nina@relayed.test")["smtpReply"].startswith("451 4.4.1"),
                 "an untrusted relay certificate refused")
        assert "CERTIFICATE_VERIFY_FAILED" in status_of(alice, first, "nina@relayed.test")["smtpReply"]
        assert got == [] and logins == []  # no password was offered to it
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now the relay's certificate is trusted
        second = send(alice, ["omar@relayed.test"], on_success=False)[1][1]["created"]["sub"]["id"]
        wait_for(lambda: status_of(alice, second, "omar@relayed.test")["delivered"] == "yes", "relayed over TLS")
        alice.http.close()
        assert got == [("alice@example.test", ["omar@relayed.test"], True)]
        assert [ok for _, ok in logins] == [True]
    finally:
        srv.stop()
        controller.stop()


def test_dkim_show_creates_a_key_for_a_new_domain(tmp_path: Path) -> None:
    line = cli_record(tmp_path, "Other.Example")
    assert line.startswith('janus._domainkey.other.example. IN TXT "v=DKIM1; k=rsa; p=')
    assert (tmp_path / "dkim" / "other.example.janus.pem").exists()
    assert cli_record(tmp_path, "other.example") == line  # the same key the second time
    result = CliRunner().invoke(cli, ["--data", str(tmp_path), "dkim", "show", "../etc"])
    assert result.exit_code != 0 and "not a domain name" in result.output
    help_text = CliRunner().invoke(cli, ["dkim", "show", "--help"]).output
    assert "TXT" in help_text


# -- the pure parts -------------------------------------------------------------------------------------------

def test_mx_order_by_preference_with_equal_ones_shuffled() -> None:
    records = [(20, "c"), (10, "b"), (10, "a"), (30, "d"), (10, "a")]
    seen = set()
    for seed in range(40):
        order = mx.order_mx(records, random.Random(seed))
        assert sorted(order[:2]) == ["a", "b"] and order[2:] == ["c", "d"]
        seen.add(tuple(order[:2]))
    assert seen == {("a", "b"), ("b", "a")}


@pytest.mark.parametrize(("text", "want"), [
    ("192.0.2.1", ("192.0.2.1", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("[::1]:5353", ("::1", 5353)),
    ("2001:db8::1", ("2001:db8::1", 53)),
])
def test_nameserver_settings(text: str, want: tuple[str, int]) -> None:
    assert mx.parse_nameserver(text) == want


@pytest.mark.parametrize("text", ["dns.example:53", "127.0.0.1:0", "[::1", "127.0.0.1:x"])
def test_bad_nameserver_settings(text: str) -> None:
    with pytest.raises(ValueError):
        mx.parse_nameserver(text)


def test_zone_line_splits_long_values_into_255_octet_strings() -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * 400
    line = dkimsign.zone_line("s._domainkey.example.test", value)
    strings = re.findall(r'"([^"]*)"', line)
    assert [len(s) for s in strings] == [255, 418 - 255] and "".join(strings) == value


@pytest.mark.parametrize("domain", ["a..b", "x", "exa mple.test", "../etc", "[192.0.2.1]"])
def test_no_key_file_for_a_bad_domain(domain: str) -> None:
    with pytest.raises(ValueError):
        dkimsign.normalize_domain(domain)
