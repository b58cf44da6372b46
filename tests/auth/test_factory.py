from __future__ import annotations

import json
from pathlib import Path

import pytest

from janusmail.auth import tokens
from janusmail.auth.factory import build_authenticator, policy_from_config
from janusmail.config import Config
from janusmail.store.store import Store

from .conftest import MakeAccount


def test_build_from_default_config(auth_store: Store, tmp_path: Path, make_account: MakeAccount) -> None:
    cfg = Config(data_dir=tmp_path)
    auth = build_authenticator(cfg, auth_store)
    assert (tmp_path / tokens.KEY_FILE).exists()
    assert auth.policy.imap_plaintext_without_tls == "loopback" and auth.policy.jmap_accepts_basic
    acct = make_account("ann@example.test")
    assert auth.tokens is not None
    token = auth.tokens.issue(acct, ["imap", "jmap"])
    assert auth.tokens.validate(token).audiences == {"janusmail"}
    result = auth.verify_bearer(token, "imap")
    assert result is not None and auth.jmap_access_ok(result)


def test_policy_mapping(tmp_path: Path) -> None:
    cfg = Config(data_dir=tmp_path)
    cfg.auth.jmap_accepts_basic = False
    cfg.imap.plaintext_auth = "never"
    p = policy_from_config(cfg)
    assert not p.jmap_accepts_basic and p.imap_plaintext_without_tls == "never"
    cfg.imap.plaintext_auth = "sometimes"
    with pytest.raises(ValueError):
        policy_from_config(cfg)


def test_external_issuer_from_config(auth_store: Store, tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": []}))
    cfg = Config(data_dir=tmp_path)
    cfg.auth.external_issuer = "https://idp.test"
    cfg.auth.external_jwks_file = str(jwks)
    with pytest.raises(ValueError, match="external_audience"):
        build_authenticator(cfg, auth_store)
    cfg.auth.external_audience = "janus"
    auth = build_authenticator(cfg, auth_store)
    assert auth.tokens is not None and auth.tokens.trusts("https://idp.test")
    assert auth.tokens.resolve_address is not None  # wired to the account table by the Authenticator
