"""The access policy of every route (`web.access`), sign-in sessions and the attempt throttle, on a tiny ASGI
app: no model, no Gradio. The real server is probed in tests/integration/test_api.py."""

from __future__ import annotations

import json
import time
from collections.abc import MutableMapping
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from coopbot.config import Settings
from coopbot.web.access import (
    AccessPolicy,
    allowed_hosts,
    check_listening,
    host_name,
    route_kind,
)
from coopbot.web.auth import SESSION_COOKIE, AuthError, Guard, Throttle, _b64

KEY, ADMIN = "key-1", "admin-1"


def settings(**server: Any) -> Settings:
    return Settings().replace(server=server)


def test_every_path_has_one_kind() -> None:
    assert route_kind("/healthz") == route_kind("/login") == route_kind("/assets/index.js") == "public"
    assert route_kind("/api/ask") == route_kind("/v1/chat/completions") == "api"
    assert route_kind("/embed") == route_kind("/embed/gradio_api/queue/join") == "embed"
    for page in ("/", "/config", "/gradio_api/call/chat", "/gradio_api/upload", "/gradio_api/file=x", "/apix"):
        assert route_kind(page) == "page"


def test_hosts_default_to_the_listening_address() -> None:
    assert set(allowed_hosts(settings(host="127.0.0.1").server)) == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts(settings(host="0.0.0.0").server) == ["*"]
    assert allowed_hosts(settings(host="10.0.0.5").server) == ["10.0.0.5"]
    assert allowed_hosts(settings(host="0.0.0.0", allowed_hosts=["QA.Example.org"]).server) == ["qa.example.org"]
    assert host_name("127.0.0.1:7860") == "127.0.0.1" and host_name("[::1]:7860") == "::1"
    assert host_name("Evil.Example") == "evil.example"


def test_a_network_address_without_keys_needs_public() -> None:
    check_listening(settings(host="127.0.0.1").server, has_keys=False)
    check_listening(settings(host="0.0.0.0").server, has_keys=True)
    with pytest.raises(SystemExit, match="--public"):
        check_listening(settings(host="0.0.0.0").server, has_keys=False)
    check_listening(settings(host="0.0.0.0", public=True).server, has_keys=False)


def test_throttle_blocks_a_client_after_repeated_failures_only() -> None:
    throttle = Throttle(limit=3, window=60)
    for at in (0.0, 1.0, 2.0):
        assert throttle.wait("a", now=at) == 0
        throttle.record("a", now=at)
    assert throttle.wait("a", now=3.0) == pytest.approx(57.0)
    assert throttle.wait("b", now=3.0) == 0  # another client is not affected
    assert throttle.wait("a", now=60.5) == 0  # the oldest failure left the window
    small = Throttle(limit=1, window=60, clients=2)
    for client in ("x", "y", "z"):
        small.record(client, now=0)
    assert small.wait("x", now=1) == 0 and small.wait("z", now=1) > 0  # bounded memory: the oldest is forgotten


def test_sign_in_gives_a_session_of_the_credential_role() -> None:
    guard = Guard(settings(api_keys=[SecretStr(KEY)], admin_token=SecretStr(ADMIN)))
    assert guard.session_role(guard.sign_in(KEY, "c")) == "user"
    assert guard.session_role(guard.sign_in(ADMIN, "c")) == "admin"
    for wrong in ("", "nope"):
        with pytest.raises(AuthError):
            guard.sign_in(wrong, "guesser")
    cookie = guard.sign_in(KEY, "c")
    signature = cookie.split(".")[1]
    forged = _b64(json.dumps({"v": 1, "role": "admin", "exp": int(time.time()) + 99}).encode())
    assert guard.session_role(f"{forged}.{signature}") is None
    assert guard.session_role("garbage") is None and guard.session_role("") is None
    rotated = Guard(settings(api_keys=[SecretStr("key-2")], admin_token=SecretStr(ADMIN)))
    assert rotated.session_role(cookie) is None  # a new key signs everyone out


def test_sign_in_and_admin_attempts_are_throttled_per_client() -> None:
    guard = Guard(settings(api_keys=[SecretStr(KEY)], admin_token=SecretStr(ADMIN)))
    for _ in range(guard.throttle.limit):
        with pytest.raises(AuthError) as wrong:
            guard.check_admin("guess", client="1.2.3.4")
        assert wrong.value.status == 403
    with pytest.raises(AuthError) as blocked:
        guard.check_admin(ADMIN, client="1.2.3.4")  # even the right token waits
    assert blocked.value.status == 429 and blocked.value.retry_after
    with pytest.raises(AuthError) as login_blocked:
        guard.sign_in(KEY, "1.2.3.4")
    assert login_blocked.value.status == 429
    guard.check_admin(ADMIN, client="5.6.7.8")


def client(public_chat: bool | None, keys: bool = True, host: str = "127.0.0.1", asks: int = 120) -> TestClient:
    server = settings(
        host=host,
        public_chat=public_chat,
        api_keys=[SecretStr(KEY)] if keys else [],
        admin_token=SecretStr(ADMIN),
        asks_per_minute=asks,
    )
    service = SimpleNamespace(settings=server, guard=Guard(server))

    async def ok(_: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    paths = ["/", "/config", "/gradio_api/upload", "/healthz", "/api/ask", "/embed/gradio_api/upload", "/assets/a.js"]
    paths += ["/api/documents", "/api/documents/{doc_id:path}", "/api/reindex", "/gradio_api/queue/join"]
    app = Starlette(routes=[Route(p, ok, methods=["GET", "POST", "DELETE"]) for p in paths])
    policy = AccessPolicy(app, service)  # type: ignore[arg-type]
    return TestClient(policy, base_url="http://127.0.0.1:7860", follow_redirects=False)


def test_a_private_chat_needs_a_session_or_a_key_on_every_page_route() -> None:
    private = client(public_chat=None)  # keys set: private by default
    assert private.get("/").status_code == 303 and private.get("/").headers["location"] == "/login"
    for path in ("/config", "/gradio_api/upload"):
        denied = private.post(path)
        assert denied.status_code == 401 and "/login" in denied.json()["error"]["message"]
    assert private.get("/config", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert private.get("/config", headers={"Authorization": "Bearer wrong"}).status_code == 401
    guard = private.app.service.guard  # type: ignore[attr-defined]
    private.cookies.set(SESSION_COOKIE, guard.sign_in(KEY, "c"))
    assert private.get("/").status_code == 200 and private.post("/gradio_api/upload").status_code == 200
    assert private.get("/healthz").status_code == 200 and private.get("/assets/a.js").status_code == 200
    assert private.post("/api/ask").status_code == 200  # the API's own routes check its keys


def test_a_public_chat_still_refuses_anonymous_uploads() -> None:
    public = client(public_chat=True)
    assert public.get("/").status_code == 200 and public.get("/config").status_code == 200
    assert public.post("/gradio_api/upload").status_code == 401
    assert public.post("/embed/gradio_api/upload").status_code == 403  # the embed page never takes uploads
    assert client(public_chat=None, keys=False).get("/config").status_code == 200  # no keys: public by default


def test_a_foreign_host_header_is_refused() -> None:
    local = client(public_chat=True)
    assert local.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
    assert local.get("/healthz", headers={"Host": "localhost:7860"}).status_code == 200
    assert client(public_chat=True, host="0.0.0.0").get("/healthz", headers={"Host": "any.example"}).status_code == 200


def test_admin_routes_are_checked_before_their_body_is_read() -> None:
    """Probe 7: a large upload without the admin token is refused before a byte of it is read."""
    import asyncio

    policy = client(public_chat=True).app
    read: list[bool] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        read.append(True)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    for token, status in ((None, 401), ("guess", 403)):
        headers = [(b"host", b"127.0.0.1:7860")] + ([(b"authorization", f"Bearer {token}".encode())] if token else [])
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/documents",
            "headers": headers,
            "client": ("9.9.9.9", 1),
        }
        asyncio.run(policy(scope, receive, send))  # type: ignore[arg-type]
        assert sent[-2]["status"] == status and not read
    admin = {"Authorization": f"Bearer {ADMIN}"}
    local = client(public_chat=True)
    assert local.post("/api/documents", headers=admin).status_code == 200
    assert local.delete("/api/documents/a.md", headers={"Authorization": "Bearer x"}).status_code == 403
    assert local.get("/api/documents").status_code == 200  # listing is no admin route


def test_questions_are_limited_per_client_and_minute() -> None:
    limited = client(public_chat=True, asks=3)
    for _ in range(3):
        assert limited.post("/api/ask").status_code == 200
    refused = limited.post("/gradio_api/queue/join")  # the chat page's turns count too
    assert refused.status_code == 429 and 50 <= int(refused.headers["retry-after"]) <= 61
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert limited.get("/healthz").status_code == 200 and limited.get("/config").status_code == 200
