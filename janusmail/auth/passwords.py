"""Account password storage: an argon2id hash for plaintext logins plus SCRAM-SHA-256 secrets.

Why two stored forms of one password:

* LOGIN, SASL PLAIN/LOGIN and HTTP Basic hand us the plaintext, which we check against an **argon2id** hash
  (memory-hard, so a stolen database resists offline guessing). Parameters are argon2-cffi's defaults (RFC 9106
  "low memory" profile); when those defaults grow, :func:`check_password` reports that the stored hash should
  be upgraded and the authenticator rewrites it on the next successful login.
* SCRAM-SHA-256 (RFC 5802 / RFC 7677) never sends the password; the server needs ``StoredKey`` and
  ``ServerKey`` derived with PBKDF2 from a salt and an iteration count. They cannot be computed from the
  argon2 hash, so they are computed from the plaintext when the password is set (:func:`make_credentials`) and
  kept in ``accounts.scram_sha256``.

The SCRAM text format is the one PostgreSQL uses, so operators may recognise it and it is easy to parse::

    SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>

Passwords are compared as the exact UTF-8 the client sent for argon2; SCRAM applies SASLprep (RFC 4013) on both
sides as the mechanism requires. A password SASLprep rejects (control characters, unassigned code points) can
still log in with plaintext mechanisms, it just gets no SCRAM secret (``None``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from dataclasses import dataclass

import argon2
import argon2.exceptions
from scramp import ScramMechanism
from scramp.utils import ScramException

#: RFC 7677 §4 asks for at least 4096 iterations. The cost of a SCRAM iteration count falls on the *client* at
#: every login (servers only store the result), and common clients cache nothing, so we keep the floor.
SCRAM_ITERATIONS = 4096
SCRAM_PREFIX = "SCRAM-SHA-256"
_SCRAM = ScramMechanism("SCRAM-SHA-256")

#: The process-wide argon2 hasher; tests swap in cheap parameters with :func:`set_hasher`.
_hasher: argon2.PasswordHasher = argon2.PasswordHasher()

#: A hash of a random password: verified against when the account does not exist, so "no such user" takes as
#: long as "wrong password" (an attacker can't enumerate addresses by timing).
_dummy_hash: str | None = None


def set_hasher(hasher: argon2.PasswordHasher) -> argon2.PasswordHasher:
    """Replace the argon2 hasher (e.g. cheaper parameters in tests); returns the previous one."""
    global _hasher, _dummy_hash
    previous, _hasher, _dummy_hash = _hasher, hasher, None
    return previous


def hash_password(password: str) -> str:
    """Return an argon2id PHC string for ``password``."""
    if not isinstance(password, str) or password == "":
        raise ValueError("a password must be a non-empty string")
    return _hasher.hash(password)


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """Outcome of :func:`check_password`: ``ok``, and a fresh hash to store when the old one is outdated."""

    ok: bool
    new_hash: str | None = None


def check_password(stored_hash: str | None, password: str) -> PasswordCheck:
    """Verify ``password`` against an argon2 hash in (argon2's) constant time.

    A missing or unparsable hash is a plain failure, never an exception: the caller answers "authentication
    failed" either way. When the hash was made with weaker parameters than the current ones, the result carries
    ``new_hash`` so the caller can store the upgrade.
    """
    if not stored_hash or not isinstance(password, str):
        burn_time()
        return PasswordCheck(False)
    try:
        _hasher.verify(stored_hash, password)
    except argon2.exceptions.VerifyMismatchError:
        return PasswordCheck(False)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError, ValueError):
        burn_time()
        return PasswordCheck(False)
    new_hash = _hasher.hash(password) if _hasher.check_needs_rehash(stored_hash) else None
    return PasswordCheck(True, new_hash)


def burn_time() -> None:
    """Spend about as long as one password verification (used for unknown accounts)."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(24))
    try:
        _hasher.verify(_dummy_hash, "not the password")
    except argon2.exceptions.VerificationError:
        pass


# --- SCRAM-SHA-256 -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScramSecret:
    """The four values a SCRAM server needs (RFC 5802 §3), in the order scramp's ``auth_fn`` returns them."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def as_auth_info(self) -> tuple[bytes, bytes, bytes, int]:
        return (self.salt, self.stored_key, self.server_key, self.iterations)


def make_scram_secret(
    password: str, iterations: int = SCRAM_ITERATIONS, salt: bytes | None = None
) -> ScramSecret:
    """Derive SCRAM-SHA-256 secrets; raises ``ValueError`` when SASLprep rejects the password."""
    try:
        salt_b, stored, server, i = _SCRAM.make_auth_info(password, iteration_count=iterations, salt=salt)
    except ScramException as exc:
        raise ValueError(f"password unusable for SCRAM: {exc}") from exc
    return ScramSecret(salt_b, stored, server, i)


def format_scram(secret: ScramSecret) -> str:
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731 - local shorthand
    return f"{SCRAM_PREFIX}${secret.iterations}:{b64(secret.salt)}${b64(secret.stored_key)}:{b64(secret.server_key)}"


def parse_scram(text: str | None) -> ScramSecret | None:
    """Parse the stored form; ``None`` for a missing or malformed value (the login then simply fails)."""
    if not text or not isinstance(text, str):
        return None
    try:
        prefix, params, keys = text.split("$")
        iter_s, salt_s = params.split(":")
        stored_s, server_s = keys.split(":")
        if prefix != SCRAM_PREFIX or not iter_s.isdigit():
            return None
        iterations = int(iter_s)
        salt = base64.b64decode(salt_s, validate=True)
        stored = base64.b64decode(stored_s, validate=True)
        server = base64.b64decode(server_s, validate=True)
    except (ValueError, binascii.Error):
        return None
    if iterations < SCRAM_ITERATIONS or not salt or len(stored) != 32 or len(server) != 32:
        return None
    return ScramSecret(salt, stored, server, iterations)


def check_scram_password(text: str | None, password: str) -> bool:
    """True when ``password`` produces the stored SCRAM secret (used to tell whether it needs refreshing)."""
    secret = parse_scram(text)
    if secret is None:
        return False
    try:
        again = make_scram_secret(password, secret.iterations, secret.salt)
    except ValueError:
        return False
    return hmac.compare_digest(again.stored_key, secret.stored_key)


def make_credentials(password: str) -> tuple[str, str | None]:
    """Everything the ``accounts`` row stores for a new or changed password: ``(password_hash, scram_text)``.

    ``scram_text`` is ``None`` when the password cannot be used with SCRAM (SASLprep refuses it).
    """
    password_hash = hash_password(password)
    try:
        scram_text: str | None = format_scram(make_scram_secret(password))
    except ValueError:
        scram_text = None
    return password_hash, scram_text
