"""Who may reach which route: one decision for every request, Gradio's routes included.

Every path falls in one kind (`route_kind`):
- public: `/healthz`, the sign-in page, the API docs and the front-end bundle, which hold no data;
- api: `/api/*` and `/v1/*`, whose routes check API keys themselves (`web.api`); the admin routes (upload,
  delete, re-index) are checked here too, before their body is read, so a large upload without the token
  costs nothing, and wrong tokens are throttled per client;
- embed: `/embed` and its Gradio routes, which need an embed token when an embed secret is set
  (`PageGuard` checks the page, Gradio's `auth_dependency` the rest); never uploads;
- page: the chat page `/` and everything Gradio serves for it (`/config`, `/gradio_api/...`): open when
  the chat is public (`server.public_chat`, by default exactly when no API keys are set), otherwise only
  with a session cookie from `/login` or an `Authorization: Bearer` API key. Uploads to Gradio always
  need a signed-in visitor: an anonymous one has nothing to upload (the knowledge tab is the admin's).
Before any of that, the `Host` header must be one this server answers to (DNS rebinding).
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from coopbot.web.auth import SESSION_COOKIE, AuthError, Throttle, bearer
from coopbot.web.errors import error_body

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from coopbot.config.sections import ServerSettings
    from coopbot.web.service import Service

log = logging.getLogger(__name__)
RouteKind = Literal["public", "api", "embed", "page"]
_PUBLIC_PATHS = frozenset({"/healthz", "/login", "/logout", "/gradio.js", "/favicon.ico", "/docs", "/openapi.json"})
_PUBLIC_PREFIXES = ("/assets/", "/static/", "/docs-assets/")  # front-end bundles (Gradio, Swagger UI): no data
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_UPLOAD = "/gradio_api/upload"
_ADMIN_ROUTES = {"POST": ("/api/documents", "/api/reindex"), "DELETE": ("/api/documents/",)}
# What starts work on the answer line: API questions, and Gradio's event calls (a chat turn is one join).
_ASK_PATHS = ("/api/ask", "/api/ask/stream", "/v1/chat/completions")
_ASK_SUFFIXES = ("/gradio_api/queue/join", "/gradio_api/call/")


def route_kind(path: str) -> RouteKind:
    if path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES):
        return "public"
    if path == "/api" or path.startswith(("/api/", "/v1/")):
        return "api"
    if path == "/embed" or path.startswith("/embed/"):
        return "embed"
    return "page"


def is_admin_route(method: str, path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in _ADMIN_ROUTES.get(method, ()))


def is_ask(method: str, path: str) -> bool:
    return method == "POST" and (path in _ASK_PATHS or any(s in path for s in _ASK_SUFFIXES))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def allowed_hosts(server: ServerSettings) -> list[str]:
    """The configured host names, else the default for the listening address (`["*"]`: any)."""
    if server.allowed_hosts:
        return [h.lower() for h in server.allowed_hosts]
    if is_wildcard(server.host):
        return ["*"]
    return sorted({*_LOOPBACK_NAMES, server.host.lower()}) if is_loopback(server.host) else [server.host.lower()]


def host_name(header: str) -> str:
    """The name of a `Host` header value, without its port: `[::1]:7860` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def chat_is_public(service: Service) -> bool:
    setting = service.settings.server.public_chat
    return service.guard.api_open if setting is None else setting


def check_listening(server: ServerSettings, has_keys: bool) -> None:
    """Refuse to serve everyone on a network address without keys, unless the operator said `--public`."""
    if is_loopback(server.host) or has_keys:
        return
    if not server.public:
        raise SystemExit(
            f"error: refusing to listen on {server.host} without API keys: anyone on the network could ask, "
            "list documents and read the page. Set COOPBOT_API_KEYS (and sign in at /login), or start with "
            "--public (COOPBOT_SERVER__PUBLIC=true) if the server really is meant for everyone."
        )
    log.warning("listening on %s with no API keys (--public): every route but the admin ones is open", server.host)


class AccessPolicy:
    """ASGI middleware: the `Host` check, then `route_kind`'s rules for the page and upload routes."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        self.hosts = allowed_hosts(service.settings.server)
        self.asks = Throttle(limit=service.settings.server.asks_per_minute, window=60.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # Gradio uses none; one that is not allowed below is closed
            send = _closing(send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if "*" not in self.hosts and host_name(headers.get("host", "")) not in self.hosts:
            await _reply(send, 400, error_body("bad_host", "Host 不在允许的列表中。"))
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "")
        kind = route_kind(path)
        client = str(scope["client"][0]) if scope.get("client") else ""
        try:
            if kind == "api" and is_admin_route(method, path):
                self.service.guard.check_admin(bearer(headers.get("authorization")), client)
            if is_ask(method, path):
                self.asks.check(client)
                self.asks.record(client)
        except AuthError as exc:
            retry = [(b"retry-after", str(exc.retry_after).encode())] if exc.retry_after else []
            await _reply(send, exc.status, error_body(exc.code, str(exc)), retry)
            return
        if kind in ("public", "api"):
            await self.app(scope, receive, send)
            return
        if kind == "embed" and path.endswith(_UPLOAD):
            await _reply(send, 403, error_body("forbidden", "嵌入页不接受上传。"))
            return
        signed_in = self._signed_in(headers)
        if kind == "page" and not signed_in and (path == _UPLOAD or not chat_is_public(self.service)):
            if scope.get("method") == "GET" and path in ("/", ""):
                await _redirect(send, "/login")
                return
            message = "请先登录：在 /login 输入 API 密钥或管理令牌，或在请求头中加入 Authorization: Bearer <密钥>。"
            await _reply(send, 401, error_body("unauthorized", message))
            return
        await self.app(scope, receive, send)

    def _signed_in(self, headers: dict[str, str]) -> bool:
        guard = self.service.guard
        token = bearer(headers.get("authorization"))
        if token and (guard.is_api_key(token) or guard.is_admin(token)):
            return True
        cookie = _cookie(headers.get("cookie", ""), SESSION_COOKIE)
        return bool(cookie) and guard.session_role(cookie) is not None


def _closing(send: Send) -> Send:
    """A `send` that turns an HTTP reply into a WebSocket close."""

    async def close(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            await send({"type": "websocket.close", "code": 1008})
        elif not str(message["type"]).startswith("http."):
            await send(message)

    return close  # type: ignore[return-value]


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


async def _reply(send: Send, status: int, body: dict[str, object], extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """A JSON error; to a WebSocket, a policy-violation close (an ASGI server turns it into a 403)."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"cache-control", b"no-store"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode("ascii")), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def add_sign_in_routes(app: FastAPI, service: Service) -> None:
    """`/login` (a form; POST sets the HttpOnly session cookie) and `/logout`. FastAPI reads the route
    annotations at run time: `Request` is imported at module level for that."""

    @app.get("/login", include_in_schema=False)
    def login_page() -> HTMLResponse:
        return HTMLResponse(_login_html(""), headers={"Cache-Control": "no-store"})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        body = (await request.body())[:4096].decode("utf-8", "replace")
        credential = parse_qs(body).get("key", [""])[0].strip()
        client = request.client.host if request.client else "unknown"
        try:
            cookie = service.guard.sign_in(credential, client)
        except AuthError as exc:
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
            return HTMLResponse(_login_html(str(exc)), status_code=exc.status, headers=headers)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=service.guard.session_seconds,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    @app.get("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response


def _login_html(error: str) -> str:
    notice = f'<p id="error" role="alert" style="color:#b42318">{html.escape(error)}</p>' if error else ""
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>登录 coopbot</title>'
        '<meta name="viewport" content="width=device-width,initial-scale=1"></head>'
        '<body style="font-family:sans-serif;max-width:24em;margin:4em auto;padding:0 1em">'
        "<h2>登录 coopbot 知识库问答</h2><p>请输入管理员发给你的 API 密钥（管理员也可输入管理令牌）。</p>"
        f'{notice}<form method="post" action="/login">'
        '<input name="key" type="password" autocomplete="current-password" '
        'aria-label="API 密钥" required autofocus style="width:100%;padding:.5em">'
        '<button type="submit" style="margin-top:1em;padding:.5em 2em">登录</button></form></body></html>'
    )
