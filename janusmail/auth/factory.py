"""Build the one :class:`Authenticator` the server shares between IMAP, JMAP and SMTP, from the config tree.

Kept apart from the classes so they stay free of the config format: tests and tools construct
``AuthPolicy``/``TokenService`` directly, the server goes through :func:`build_authenticator`.

Mapping (``janusmail.config``): every ``[auth]`` key named like an :class:`AuthPolicy` field sets it (unknown
ones are left to the config loader); ``[imap] plaintext_auth`` is ``imap_plaintext_without_tls``, ``[submission] plaintext_auth``
``smtp_plaintext_without_tls``. The token
issuer is the data directory's recorded one (``oauth-issuer``, first taken from the public URL), the audience
``[auth] token_audience``, the key lives in ``data_dir``. An external issuer is configured by
``[auth] external_issuer`` with ``external_jwks_url`` or ``external_jwks_file``, ``external_audience``
(required) and ``external_address_claim``.
"""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from janusmail.config import check_public_url

from .authenticator import Authenticator
from .policy import AuthPolicy
from .tokens import ExternalIssuer, TokenService, load_or_create_issuer

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.config import Config
    from janusmail.store.store import Store


def policy_from_config(config: Config) -> AuthPolicy:
    """The AuthPolicy the config describes (defaults for everything it does not mention)."""
    # AuthConfig names its fields after the AuthPolicy fields they set; a policy field without a config key
    # (none today) keeps its default.
    values: dict[str, Any] = {
        f.name: getattr(config.auth, f.name)
        for f in dataclasses.fields(AuthPolicy)
        if hasattr(config.auth, f.name)
    }
    values.setdefault("imap_plaintext_without_tls", config.imap.plaintext_auth)
    values.setdefault("smtp_plaintext_without_tls", config.submission.plaintext_auth)
    return AuthPolicy.from_config(values)


def external_issuers(config: Config) -> list[ExternalIssuer]:
    auth_cfg = config.auth
    issuer = auth_cfg.external_issuer
    if not issuer:
        return []
    audience = auth_cfg.external_audience
    if not audience:
        raise ValueError("auth.external_issuer is set but auth.external_audience is not")
    return [
        ExternalIssuer(
            issuer=issuer,
            audience=audience,
            jwks_url=auth_cfg.external_jwks_url,
            jwks_file=auth_cfg.external_jwks_file,
            address_claim=auth_cfg.external_address_claim or "email",
        )
    ]


def build_token_service(config: Config) -> TokenService:
    """The built-in issuer of ``config.data_dir``: its name is the data directory's recorded one
    (:func:`~janusmail.auth.tokens.load_or_create_issuer`), the same for ``serve`` and every CLI command
    whatever public URL each was given; only the issuer documents follow the current public URL."""
    data_dir = Path(config.data_dir)
    initial = config.effective_public_url
    try:  # the first name recorded must be one the server could stand behind, else a neutral one
        check_public_url(initial or "")
    except ValueError:
        initial = f"urn:janusmail:issuer:{secrets.token_hex(8)}"
    return TokenService(
        load_or_create_issuer(data_dir, initial),
        data_dir,
        config.auth.token_audience,
        external=external_issuers(config),
        metadata_base=lambda: config.effective_public_url,
    )


def build_authenticator(config: Config, store: Store) -> Authenticator:
    """The server's authenticator over the store; raises ``ValueError`` on inconsistent settings."""
    return Authenticator(
        store,
        policy_from_config(config),
        build_token_service(config),
        realm=config.hostname or "Janus Mail",
    )
