"""TLS for IMAP: the configured certificate, or a self-signed one generated once into the data directory.

``make run`` and tests need TLS without an operator having bought a certificate, so when ``[tls] cert`` is
unset (and ``self_signed`` is on, the default) we mint an ECDSA P-256 certificate for the configured hostname,
``localhost``, 127.0.0.1 and ::1, valid ten years, and reuse it on every start. Key and certificate are written
together into one PEM file, atomically, so two processes starting at once can never pair one's key with the
other's certificate; ``selfsigned.crt`` (certificate only) is what clients can be told to trust.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.config import Config

__all__ = ["SELF_SIGNED_CERT", "SELF_SIGNED_PEM", "ensure_self_signed", "server_context"]

SELF_SIGNED_PEM = "selfsigned.pem"  # key + certificate
SELF_SIGNED_CERT = "selfsigned.crt"  # certificate only, for clients to trust


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _generate(hostname: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if hostname and hostname != "localhost":
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
        except ValueError:
            names.insert(0, x509.DNSName(hostname))
    names += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname or "localhost"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Janus Mail self-signed")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def ensure_self_signed(data_dir: Path, hostname: str = "localhost") -> Path:
    """Path of the combined key+certificate PEM in ``data_dir/tls``, generating it the first time."""
    tls_dir = Path(data_dir) / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True)
    pem = tls_dir / SELF_SIGNED_PEM
    if not pem.exists():
        key_pem, cert_pem = _generate(hostname)
        _atomic_write(pem, key_pem + cert_pem, 0o600)
    crt = tls_dir / SELF_SIGNED_CERT
    data = pem.read_bytes()
    cert_part = data[data.find(b"-----BEGIN CERTIFICATE-----"):]
    if not crt.exists() or crt.read_bytes() != cert_part:
        _atomic_write(crt, cert_part, 0o644)
    return pem


def server_context(config: Config) -> ssl.SSLContext | None:
    """The server-side SSLContext for STARTTLS and implicit TLS, or None when TLS is not configured."""
    tls = config.tls
    if tls.cert:
        certfile, keyfile = tls.cert, tls.key
    elif tls.self_signed:
        certfile, keyfile = str(ensure_self_signed(config.data_dir, config.hostname)), None
    else:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    return ctx
