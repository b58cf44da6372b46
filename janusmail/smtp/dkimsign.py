"""DKIM signatures on outbound mail (RFC 6376, dkimpy), with one RSA key per sending domain.

Receivers trust (and DMARC aligns) mail whose From domain signed it, so the signing domain is the From
header's domain, and its key is made the first time that domain sends: RSA 2048 (``cryptography``), written
once into ``DATA/dkim/<domain>.<selector>.pem`` (mode 0600; when two processes race, both end up with the
first one's key). ``janusmail dkim show DOMAIN`` prints the TXT record that publishes the public half.

relaxed/relaxed canonicalization survives the re-folding and whitespace changes relays make. The signed
header fields are the ones a reader sees and a forger would change (From, To, Cc, Subject, Date,
Message-ID, the reply chain) and the MIME ones that decide how the body is shown; those absent from a
message are left out.
"""

from __future__ import annotations

import base64
import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from janusmail.auth.tokens import _create_once
from janusmail.mime.recipients import envelope_addresses

__all__ = ["SIGNED_HEADERS", "dns_record", "ensure_key", "key_path", "normalize_domain", "sign", "zone_line"]

SIGNED_HEADERS = ("from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id", "in-reply-to",
                  "references", "mime-version", "content-type", "content-transfer-encoding")
KEY_BITS = 2048
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def normalize_domain(domain: str) -> str:
    """A domain as DNS and a file name can carry it: lowercase, ASCII (IDNA), no final dot; ValueError when
    it is not a host name (``..``, ``/``, an address literal)."""
    name = domain.strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"not a domain name: {domain!r}") from None
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"not a domain name: {domain!r}")
    return name


def check_selector(selector: str) -> str:
    """The selector is one or more DNS labels (RFC 6376 §3.1); ValueError otherwise."""
    name = selector.strip().lower()
    if not name or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"not a DKIM selector: {selector!r}")
    return name


def key_path(data_dir: Path, domain: str, selector: str) -> Path:
    return Path(data_dir) / "dkim" / f"{normalize_domain(domain)}.{check_selector(selector)}.pem"


def ensure_key(data_dir: Path, domain: str, selector: str) -> bytes:
    """The PEM private key (PKCS#1, the form dkimpy reads) of ``domain``, generated on first use."""
    path = key_path(data_dir, domain, selector)
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        _create_once(path, pem)
    return path.read_bytes()


def dns_record(pem: bytes, domain: str, selector: str) -> tuple[str, str]:
    """(record name, TXT value) publishing the public half of ``pem`` (RFC 6376 §3.6.1)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    name = f"{check_selector(selector)}._domainkey.{normalize_domain(domain)}"
    return name, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def zone_line(name: str, value: str) -> str:
    """A zone file line: one TXT string holds at most 255 octets, so a 2048-bit key's value is split into
    several quoted strings, which DNS hands back joined (RFC 6376 §3.6.2.2)."""
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)]
    return f"{name}. IN TXT " + " ".join(f'"{c}"' for c in chunks)


def signing_domain(raw: bytes, mail_from: str) -> str | None:
    """The From header's domain (the envelope sender's when From has no address); None when neither has one."""
    senders, _ = envelope_addresses(raw)
    for address in [*senders, mail_from]:
        if "@" in address:
            try:
                return normalize_domain(address.rpartition("@")[2])
            except ValueError:
                continue
    return None


def sign(raw: bytes, domain: str, selector: str, pem: bytes) -> bytes:
    """``raw`` with a DKIM-Signature field on top (relaxed/relaxed, rsa-sha256). CPU-bound (dkimpy's RSA is
    pure Python, ~20 ms): callers off the event loop run it in a thread."""
    present = {k.lower() for k in BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True).keys()}
    include = [h.encode() for h in SIGNED_HEADERS if h in present]
    if b"from" not in include:
        raise ValueError("a message without From cannot be DKIM-signed")
    import dkim  # here: dkimpy pulls in dnspython's resolver, whose import cost every process start

    field = dkim.sign(raw, check_selector(selector).encode(), normalize_domain(domain).encode(), pem,
                      canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
    return field + raw
