"""Who may do what: API keys for the HTTP API, the admin token, and short-lived signed embed tokens.

An embed token is what a portal puts in the page that embeds `/embed`: its own backend mints it with
an API key (`POST /api/embed-token`), so no long-lived secret ever reaches a browser. The token is
`base64url(payload).base64url(HMAC-SHA256(secret, payload))` with an expiry in the payload; checking
it needs only the secret, no server-side state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from pydantic import SecretStr

from coopbot.config import Settings

TOKEN_VERSION = 1
_MAX_SUBJECT = 200


class AuthError(Exception):
    """Missing or wrong credentials; the message says what is needed (401/403)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header ('' when absent or of another scheme)."""
    if not authorization:
        return ""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Guard:
    """The server's credentials, read once from settings; every check compares in constant time."""

    def __init__(self, settings: Settings) -> None:
        self.api_keys = [k.get_secret_value() for k in settings.server.api_keys if k.get_secret_value()]
        self.admin_token = settings.server.admin_token.get_secret_value()
        self.embed_secret = settings.server.embed_secret.get_secret_value()
        self.embed_ttl = settings.server.embed_token_ttl

    @property
    def api_open(self) -> bool:
        """No API keys configured: the API answers anyone who can reach it (loopback by default)."""
        return not self.api_keys

    @property
    def admin_enabled(self) -> bool:
        return bool(self.admin_token)

    @property
    def embed_protected(self) -> bool:
        return bool(self.embed_secret)

    def is_api_key(self, token: str) -> bool:
        return bool(token) and any(_same(token, key) for key in self.api_keys)

    def check_api(self, token: str) -> None:
        """API routes: a configured key, the admin token, or (when keys are off) nothing at all."""
        if self.api_open or self.is_api_key(token) or self.is_admin(token):
            return
        if not token:
            raise AuthError("需要 API 密钥：请在请求头中加入 Authorization: Bearer <密钥>。")
        raise AuthError("API 密钥无效。")

    def is_admin(self, token: str) -> bool:
        return self.admin_enabled and bool(token) and _same(token, self.admin_token)

    def check_admin(self, token: str) -> None:
        """Upload, re-index, delete: off without COOPBOT_ADMIN_TOKEN, else the token must match."""
        if not self.admin_enabled:
            raise AuthError("管理功能已关闭：服务器设置 COOPBOT_ADMIN_TOKEN 后才能上传、重建索引或删除文档。", 403)
        if not token:
            raise AuthError("需要管理令牌。")
        if not self.is_admin(token):
            raise AuthError("管理令牌不正确。", 403)

    def check_mint(self, token: str) -> None:
        """Minting embed tokens needs a real credential (an API key or the admin token), never an open API."""
        if not self.embed_protected:
            raise AuthError("嵌入令牌未启用：服务器需要设置 COOPBOT_EMBED_SECRET。", 403)
        if not (self.is_api_key(token) or self.is_admin(token)):
            raise AuthError("签发嵌入令牌需要 API 密钥或管理令牌（Authorization: Bearer <密钥>）。")

    def mint_embed_token(self, subject: str = "", ttl: int | None = None, now: float | None = None) -> EmbedToken:
        if not self.embed_protected:
            raise AuthError("嵌入令牌未启用：服务器需要设置 COOPBOT_EMBED_SECRET。", 403)
        return mint_embed_token(self.embed_secret, subject, ttl or self.embed_ttl, now)

    def check_embed(self, token: str, now: float | None = None) -> EmbedClaims | None:
        """`/embed` access: None when embed tokens are off (open), the claims of a valid token, else AuthError."""
        if not self.embed_protected:
            return None
        return verify_embed_token(self.embed_secret, token, now)


@dataclass(frozen=True)
class EmbedClaims:
    """What a valid embed token says: for whom (free text from the portal) and until when."""

    subject: str
    expires_at: int


@dataclass(frozen=True)
class EmbedToken:
    token: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode("utf-8"), payload.encode("ascii"), hashlib.sha256).digest())


def mint_embed_token(secret: str | SecretStr, subject: str, ttl: int, now: float | None = None) -> EmbedToken:
    """A token valid for `ttl` seconds from `now`."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not key:
        raise AuthError("嵌入令牌未启用：服务器需要设置 COOPBOT_EMBED_SECRET。", 403)
    expires = int(now if now is not None else time.time()) + int(ttl)
    body = json.dumps({"v": TOKEN_VERSION, "sub": subject[:_MAX_SUBJECT], "exp": expires}, separators=(",", ":"))
    payload = _b64(body.encode("utf-8"))
    return EmbedToken(f"{payload}.{_sign(key, payload)}", expires)


def verify_embed_token(secret: str, token: str, now: float | None = None) -> EmbedClaims:
    """The claims of a well-signed, unexpired token; AuthError otherwise."""
    if not token:
        raise AuthError("需要嵌入令牌：门户页面应在 /embed 的地址中带上 ?token=<令牌>。")
    payload, dot, signature = token.strip().partition(".")
    if not dot or not payload or not signature or len(token) > 2048 or not token.isascii():
        raise AuthError("嵌入令牌格式不正确。")
    if not hmac.compare_digest(signature.encode("ascii", "replace"), _sign(secret, payload).encode("ascii")):
        raise AuthError("嵌入令牌签名无效。")
    try:
        data = json.loads(_unb64(payload))
        expires, subject = int(data["exp"]), str(data.get("sub", ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthError("嵌入令牌内容无法读取。") from exc
    if (now if now is not None else time.time()) >= expires:
        raise AuthError("嵌入令牌已过期：请刷新门户页面以获取新令牌。")
    return EmbedClaims(subject, expires)
