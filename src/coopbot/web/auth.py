"""Who may do what: API keys for the HTTP API, the admin token, short-lived signed embed tokens, and the
signed session cookie of a visitor who signed in at `/login`.

An embed token is what a portal puts in the page that embeds `/embed`: its own backend mints it with
an API key (`POST /api/embed-token`), so no long-lived secret ever reaches a browser. Tokens and session
cookies are `base64url(payload).base64url(HMAC-SHA256(secret, payload))` with an expiry in the payload;
checking them needs only the secret, no server-side state. The session secret is derived from the
credentials themselves: every instance with the same keys accepts the same sessions, and rotating a key
signs everyone out. Failed credential attempts are throttled per client (`Throttle`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from coopbot.config import Settings

TOKEN_VERSION = 2  # 2: embed tokens name their audience and may be bound to the portal's origin
EMBED_AUDIENCE = "coopbot-embed"
SESSION_COOKIE = "coopbot_session"
_MAX_SUBJECT = 200
Role = Literal["user", "admin"]


class AuthError(Exception):
    """Missing or wrong credentials; the message says what is needed (401/403; 429 with `retry_after`)."""

    def __init__(self, message: str, status: int = 401, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def code(self) -> str:
        """The stable error code of the JSON body, one place for the API's handler and the access policy."""
        return {401: "unauthorized", 429: "too_many_requests"}.get(self.status, "forbidden")


class Throttle:
    """Events per client (failed credentials, questions): after `limit` within `window` seconds the client
    waits until the oldest of them leaves the window. Remembers at most `clients` clients (oldest dropped)."""

    def __init__(self, limit: int = 5, window: float = 300.0, clients: int = 10_000) -> None:
        self.limit, self.window, self.clients = limit, window, clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, client: str, now: float | None = None) -> float:
        """Seconds `client` must wait before its next attempt (0: it may try now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.get(client)
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures or len(failures) < self.limit:
                return 0.0
            return failures[0] + self.window - now

    def record(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._failures.setdefault(client, deque(maxlen=self.limit)).append(now)
            self._failures.move_to_end(client)
            while len(self._failures) > self.clients:
                self._failures.popitem(last=False)

    def check(self, client: str) -> None:
        """AuthError 429 while `client` must wait."""
        wait = self.wait(client)
        if wait > 0:
            raise AuthError(f"请求过于频繁，请 {int(wait) + 1} 秒后再试。", 429, int(wait) + 1)


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
        framing = [a for a in settings.server.frame_ancestors if a.startswith(("http://", "https://"))]
        self.portal_origins = [origin_of(a) for a in framing]
        self.session_seconds = int(settings.server.session_hours * 3600)
        material = "\0".join(["coopbot-session", self.admin_token, *self.api_keys])
        self._session_secret = hashlib.sha256(material.encode("utf-8")).hexdigest()
        self.throttle = Throttle()

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

    def check_admin(self, token: str, client: str | None = None) -> None:
        """Upload, re-index, delete: off without COOPBOT_ADMIN_TOKEN, else the token must match. With `client`
        (its address), wrong tokens are throttled per client."""
        if not self.admin_enabled:
            raise AuthError("管理功能已关闭：服务器设置 COOPBOT_ADMIN_TOKEN 后才能上传、重建索引或删除文档。", 403)
        if not token:
            raise AuthError("需要管理令牌。")
        if client is not None:
            self.throttle.check(client)
        if not self.is_admin(token):
            if client is not None:
                self.throttle.record(client)
            raise AuthError("管理令牌不正确。", 403)

    def sign_in(self, credential: str, client: str) -> str:
        """The session cookie for an API key or the admin token; AuthError (throttled per client) otherwise."""
        self.throttle.check(client)
        role: Role | None = "admin" if self.is_admin(credential) else "user" if self.is_api_key(credential) else None
        if role is None:
            self.throttle.record(client)
            raise AuthError("密钥不正确。" if credential else "请输入 API 密钥或管理令牌。")
        expires = int(time.time()) + self.session_seconds
        return _signed(self._session_secret, {"v": TOKEN_VERSION, "role": role, "exp": expires})

    def session_role(self, cookie: str) -> Role | None:
        """The role of a valid, unexpired session cookie; None for anything else."""
        try:
            data = _verified(self._session_secret, cookie)
        except AuthError:
            return None
        expires = data.get("exp")
        if data.get("v") != TOKEN_VERSION or not isinstance(expires, int) or time.time() >= expires:
            return None
        role = data.get("role")
        return role if role in ("user", "admin") else None

    def check_mint(self, token: str) -> None:
        """Minting embed tokens needs a real credential (an API key or the admin token), never an open API."""
        if not self.embed_protected:
            raise AuthError("嵌入令牌未启用：服务器需要设置 COOPBOT_EMBED_SECRET。", 403)
        if not (self.is_api_key(token) or self.is_admin(token)):
            raise AuthError("签发嵌入令牌需要 API 密钥或管理令牌（Authorization: Bearer <密钥>）。")

    def mint_embed_token(
        self, subject: str = "", ttl: int | None = None, now: float | None = None, origin: str | None = None
    ) -> EmbedToken:
        """A token for the portal page at `origin`; without one, for the one portal `frame_ancestors` allows
        (unbound only when it allows none or several)."""
        if not self.embed_protected:
            raise AuthError("嵌入令牌未启用：服务器需要设置 COOPBOT_EMBED_SECRET。", 403)
        if origin:
            if not origin_of(origin):
                raise ValueError(
                    f"origin 应是门户页面的来源，例如 https://portal.example.org，而不是 {origin[:100]!r}。"
                )
            origin = origin_of(origin)
            if self.portal_origins and origin not in self.portal_origins:
                raise AuthError(f"{origin} 不在允许嵌入的来源（COOPBOT_FRAME_ANCESTORS）中。", 403)
        elif len(self.portal_origins) == 1:
            origin = self.portal_origins[0]
        return mint_embed_token(self.embed_secret, subject, ttl or self.embed_ttl, now, origin=origin or "")

    def check_embed(self, token: str, now: float | None = None) -> EmbedClaims | None:
        """`/embed` access: None when embed tokens are off (open), the claims of a valid token, else AuthError."""
        if not self.embed_protected:
            return None
        return verify_embed_token(self.embed_secret, token, now)

    def check_embed_page(self, token: str, referer: str | None) -> EmbedClaims | None:
        """The embed page itself: a valid token, opened from the portal it was minted for (the Referer's
        origin, which browsers send for an iframe unless the portal forbids it)."""
        claims = self.check_embed(token)
        if claims is not None and claims.origin and origin_of(referer or "") != claims.origin:
            raise AuthError(
                f"这个嵌入令牌只能在 {claims.origin} 的页面中使用（门户页面不能设置 Referrer-Policy: no-referrer）。"
            )
        return claims

    def check_embed_call(self, token: str, referer: str | None, fetch_site: str | None) -> EmbedClaims | None:
        """Gradio's requests behind the embed page: a valid token, sent by the embed page itself. A browser
        says so in `Sec-Fetch-Site`; a script on another site replaying the token gets "cross-site"."""
        claims = self.check_embed(token)
        if claims is not None and fetch_site and fetch_site != "same-origin":
            raise AuthError("嵌入页的接口只接受嵌入页自身发出的请求。", 403)
        return claims


@dataclass(frozen=True)
class EmbedClaims:
    """What a valid embed token says: for whom (free text from the portal), until when, and on which portal
    origin it may be used ("" when unbound)."""

    subject: str
    expires_at: int
    origin: str = ""


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL or origin, lower-cased ("" when it has none)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


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


def _signed(secret: str, data: dict[str, object]) -> str:
    payload = _b64(json.dumps(data, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_sign(secret, payload)}"


def _verified(secret: str, token: str) -> dict[str, object]:
    """The payload of a token `secret` signed; AuthError for anything malformed or forged."""
    payload, dot, signature = token.strip().partition(".")
    if not dot or not payload or not signature or len(token) > 2048 or not token.isascii():
        raise AuthError("令牌格式不正确。")
    if not hmac.compare_digest(signature.encode("ascii", "replace"), _sign(secret, payload).encode("ascii")):
        raise AuthError("令牌签名无效。")
    try:
        data = json.loads(_unb64(payload))
    except ValueError as exc:
        raise AuthError("令牌内容无法读取。") from exc
    if not isinstance(data, dict):
        raise AuthError("令牌内容无法读取。")
    return data


def mint_embed_token(
    secret: str | SecretStr, subject: str, ttl: int, now: float | None = None, origin: str = ""
) -> EmbedToken:
    """A token valid for `ttl` seconds from `now`, on pages of `origin` only when one is given."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not key:
        raise AuthError("嵌入令牌未启用：服务器需要设置 COOPBOT_EMBED_SECRET。", 403)
    expires = int(now if now is not None else time.time()) + int(ttl)
    payload = {"v": TOKEN_VERSION, "aud": EMBED_AUDIENCE, "sub": subject[:_MAX_SUBJECT], "exp": expires}
    return EmbedToken(_signed(key, payload | ({"org": origin} if origin else {})), expires)


def verify_embed_token(secret: str, token: str, now: float | None = None) -> EmbedClaims:
    """The claims of a well-signed, unexpired token of this version; AuthError otherwise."""
    if not token:
        raise AuthError("需要嵌入令牌：门户页面应在 /embed 的地址中带上 ?token=<令牌>。")
    try:
        data = _verified(secret, token)
    except AuthError as exc:
        raise AuthError(f"嵌入{exc}") from None
    try:
        expires, subject = int(data["exp"]), str(data.get("sub", ""))  # type: ignore[call-overload]
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthError("嵌入令牌内容无法读取。") from exc
    if data.get("v") != TOKEN_VERSION:
        raise AuthError("嵌入令牌版本不受支持：请刷新门户页面以获取新令牌。")
    if data.get("aud") != EMBED_AUDIENCE:
        raise AuthError("这不是嵌入令牌。")
    if (now if now is not None else time.time()) >= expires:
        raise AuthError("嵌入令牌已过期：请刷新门户页面以获取新令牌。")
    return EmbedClaims(subject, expires, str(data.get("org") or ""))
