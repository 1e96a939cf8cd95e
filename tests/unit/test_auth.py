"""API keys, the admin token and HMAC embed tokens (no server, no model)."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import SecretStr

from coopbot.config import Settings
from coopbot.web.auth import (
    AuthError,
    Guard,
    _b64,
    _signed,
    _unb64,
    bearer,
    mint_embed_token,
    verify_embed_token,
)
from coopbot.web.server import embed_token_of

SECRET = "s3cret"


def test_embed_token_round_trip_and_expiry() -> None:
    now = 1_800_000_000.0
    token = mint_embed_token(SECRET, "portal-user", ttl=60, now=now)
    assert token.expires_at == int(now) + 60
    claims = verify_embed_token(SECRET, token.token, now=now + 59)
    assert claims.subject == "portal-user" and claims.expires_at == token.expires_at
    with pytest.raises(AuthError, match="过期"):
        verify_embed_token(SECRET, token.token, now=now + 60)


def test_embed_token_rejects_forgery_tampering_and_garbage() -> None:
    token = mint_embed_token(SECRET, "a", ttl=60).token
    with pytest.raises(AuthError, match="签名"):
        verify_embed_token("another", token)
    payload, signature = token.split(".")
    longer = json.loads(_unb64(payload)) | {"exp": int(time.time()) + 10**6}  # extend the expiry, keep the signature
    with pytest.raises(AuthError, match="签名"):
        verify_embed_token(SECRET, _b64(json.dumps(longer).encode()) + "." + signature)
    for bad in ("", "no-dot", ".", "a.", ".b", "é.é", "x" * 5000):
        with pytest.raises(AuthError):
            verify_embed_token(SECRET, bad)


def test_minting_needs_a_secret() -> None:
    with pytest.raises(AuthError) as raised:
        mint_embed_token("", "x", ttl=60)
    assert raised.value.status == 403
    assert mint_embed_token(SecretStr(SECRET), "x", ttl=60).token


def test_bearer_header_parsing() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") == ""
    assert bearer(None) == "" and bearer("") == ""


def test_guard_with_nothing_configured_is_open_but_admin_is_off() -> None:
    guard = Guard(Settings())
    assert guard.api_open and not guard.admin_enabled and not guard.embed_protected
    guard.check_api("")  # open API: no key needed
    assert guard.check_embed("") is None  # open embed page
    with pytest.raises(AuthError) as raised:
        guard.check_admin("anything")
    assert raised.value.status == 403 and "COOPBOT_ADMIN_TOKEN" in str(raised.value)
    with pytest.raises(AuthError):
        guard.check_mint("anything")  # no secret: no tokens


def test_guard_with_keys_admin_token_and_embed_secret() -> None:
    settings = Settings(
        api_keys=[SecretStr("k1"), SecretStr("k2")], admin_token=SecretStr("adm"), embed_secret=SecretStr(SECRET)
    )
    guard = Guard(settings)
    guard.check_api("k2")
    guard.check_api("adm")  # the admin may use the API too
    with pytest.raises(AuthError) as missing:
        guard.check_api("")
    assert missing.value.status == 401
    with pytest.raises(AuthError):
        guard.check_api("k3")
    guard.check_admin("adm")
    with pytest.raises(AuthError) as wrong:
        guard.check_admin("k1")  # an API key is not the admin token
    assert wrong.value.status == 403
    with pytest.raises(AuthError):
        guard.check_mint("")
    guard.check_mint("k1")
    token = guard.mint_embed_token("user-7")
    claims = guard.check_embed(token.token)
    assert claims is not None and claims.subject == "user-7"
    assert token.expires_at - time.time() <= settings.server.embed_token_ttl + 1


def test_settings_secrets_do_not_leak_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOPBOT_ADMIN_TOKEN", "very-secret-admin")
    monkeypatch.setenv("COOPBOT_API_KEYS", '["very-secret-key"]')
    settings = Settings()
    assert "very-secret" not in repr(settings)
    assert Guard(settings).is_admin("very-secret-admin")


def test_embed_token_found_in_query_or_referer() -> None:
    assert embed_token_of("token=abc&x=1", None) == "abc"
    assert embed_token_of("", "http://127.0.0.1:7860/embed/?token=def") == "def"
    assert embed_token_of("token=abc", "http://h/embed/?token=def") == "abc"
    assert embed_token_of("", None) == ""


def test_embed_tokens_are_bound_to_their_portal_and_audience() -> None:
    portal = "https://portal.example.org"
    settings = Settings().replace(
        server={"embed_secret": SecretStr(SECRET), "frame_ancestors": ["'self'", portal + "/"], "api_keys": []}
    )
    guard = Guard(settings)
    token = guard.mint_embed_token("u").token  # one portal allowed: bound to it by default
    assert guard.check_embed_page(token, portal + "/news/page.html") is not None
    for elsewhere in ("https://evil.example/page.html", "", None, "http://portal.example.org/"):
        with pytest.raises(AuthError, match="只能在"):
            guard.check_embed_page(token, elsewhere)
    assert guard.check_embed_call(token, None, "same-origin") is not None
    assert guard.check_embed_call(token, None, None) is not None  # not a browser: the token alone decides
    for replayed in ("cross-site", "same-site", "none"):
        with pytest.raises(AuthError):
            guard.check_embed_call(token, None, replayed)
    with pytest.raises(AuthError, match="不在允许嵌入的来源"):
        guard.mint_embed_token("u", origin="https://evil.example")
    with pytest.raises(ValueError, match="origin"):
        guard.mint_embed_token("u", origin="javascript:alert(1)")
    with pytest.raises(AuthError, match="版本"):  # well signed, but of version 1 (no audience, no origin)
        verify_embed_token(SECRET, _signed(SECRET, {"v": 1, "sub": "old", "exp": int(time.time()) + 60}))
    with pytest.raises(AuthError, match="不是嵌入令牌"):
        verify_embed_token(SECRET, _signed(SECRET, {"v": 2, "aud": "coopbot-session", "exp": int(time.time()) + 60}))
