"""One server: FastAPI (the HTTP API) with the Gradio pages mounted at `/` and `/embed`.

`main()` is what `python -m coopbot.web`, `coopbot serve` and `python app.py` run; its `serve()` brings the
index up to date with the knowledge dir (incremental, progress logged), build the shared `Service`, then run uvicorn on
settings.server.host:settings.server.port. Nothing reaches the network: analytics are off and there is no share link.
"""

from __future__ import annotations

import html
import logging
import os
import sys
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from coopbot.config import Settings, offline

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Receive, Scope, Send

    from coopbot.web.service import Service

log = logging.getLogger("coopbot.web.server")


class ProgressLog:
    """An ingest progress callback that logs each stage at most every few seconds and at its end."""

    def __init__(self, every: float = 3.0) -> None:
        self.every = every
        self._last: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last.get(stage, 0.0) >= self.every:
            self._last[stage] = now
            name = {"files": "文件", "chunks": "嵌入段落"}.get(stage, stage)
            log.info("索引更新：%s %d/%d", name, done, total)


def update_index(service: Service) -> None:
    """Bring the index in step with the knowledge dir before serving; an empty folder is logged, not fatal."""
    from coopbot.index.chroma import StoreUnavailable
    from coopbot.ingest.pipeline import NothingIndexedError

    began = time.perf_counter()
    log.info("检查知识库 %s 与索引是否一致……", service.settings.knowledge_dir)
    try:
        report = service.knowledge.update(progress=ProgressLog())
    except NothingIndexedError as exc:
        log.warning("知识库里没有可索引的文档：%s", exc)
        return
    except StoreUnavailable as exc:  # serve anyway: /healthz and every answer say what is wrong
        service.probe.failed(exc)
        log.error("索引没有更新，服务器照常启动（/healthz 显示原因）：%s", exc)
        return
    log.info(
        "索引已是最新（%.1f 秒）：%d 个文件，%d 个段落；新增 %d，更新 %d，删除 %d，跳过 %d 个文件",
        time.perf_counter() - began,
        report.files_seen,
        report.chunks_total,
        report.chunks_added,
        report.chunks_updated,
        report.chunks_removed,
        len(report.skipped),
    )
    for skipped in report.skipped:
        log.warning("跳过 %s：%s", skipped.path, skipped.reason)


def tune_threads(settings: Settings) -> int:
    """One torch thread per answer worker share of the cores. Measured on 2 busy cores: an ask took 5.8 s
    wall and 2.2 s CPU with torch's default threads (OpenMP workers spin when cores are contended) and
    0.14 s wall / 0.10 s CPU with one thread; concurrent answers then run side by side instead."""
    import torch

    threads = max(1, (os.cpu_count() or 1) // settings.server.answer_workers)
    torch.set_num_threads(threads)
    return threads


def build_service(settings: Settings) -> Service:
    """The shared Assistant (model loaded, lexical index synced) and its companions."""
    from coopbot.web.service import Service

    return Service(settings)


def create_server(service: Service) -> FastAPI:
    """The API routes, then `/embed` and `/` (Gradio), behind the page security headers."""
    import gradio as gr
    from fastapi.middleware.cors import CORSMiddleware

    from coopbot.web import ui
    from coopbot.web.access import AccessPolicy, add_sign_in_routes
    from coopbot.web.api import create_app

    settings = service.settings
    app = create_app(service)
    add_sign_in_routes(app, service)
    app.add_middleware(AccessPolicy, service=service)
    # Always installed, with no origins when none are configured: Gradio then adds no CORS headers of its own
    # (its default echoes any Origin with credentials allowed).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.server.cors_origins,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["*"],  # Gradio's client sends its own headers (x-gradio-user...)
    )
    app.add_middleware(PageGuard, service=service)
    common = {
        "max_file_size": int(settings.server.max_upload_mb * 1024 * 1024),
        "footer_links": [],
        "run_history": False,
        "ssr_mode": False,
        "mcp_server": False,
        "theme": ui.theme(),
        "css": ui.CSS,
        "head": ui.HEAD,
        "js": ui.JS,
        "show_error": True,
    }
    _web_component_loader(app)
    _embed_without_slash(app)
    embed_auth = (lambda request: embed_subject(service, request)) if service.guard.embed_protected else None
    gr.mount_gradio_app(app, ui.build_embed(service), path="/embed", auth_dependency=embed_auth, **common)
    gr.mount_gradio_app(app, ui.build_page(service), path="/", **common)
    return app


def _embed_without_slash(app: FastAPI) -> None:
    """`/embed` (the path the README and portal admins write) redirects to `/embed/`, where Gradio mounts the
    page; the query string (the embed token) goes along. Relative, so it also works under a proxy's prefix."""
    from starlette.requests import Request
    from starlette.responses import RedirectResponse

    def embed(request: Request) -> RedirectResponse:
        query = request.url.query
        return RedirectResponse("embed/" + (f"?{query}" if query else ""), status_code=308)

    app.add_route("/embed", embed, methods=["GET", "HEAD"], include_in_schema=False)  # plain Starlette: no params


def _web_component_loader(app: FastAPI) -> None:
    """`/gradio.js`: Gradio's own loader of the `<gradio-app>` web component, served by this server (its
    assets live under `/assets/`), so a portal page needs no CDN: `<script type="module" src=".../gradio.js">`."""
    from pathlib import Path

    import gradio
    from fastapi.responses import Response

    loader = (Path(gradio.__file__).parent / "templates" / "frontend" / "gradio.js").read_text(encoding="utf-8")

    @app.get("/gradio.js", include_in_schema=False)
    def gradio_js() -> Response:
        return Response(loader, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


def embed_token_of(query: str, referer: str | None) -> str:
    """The embed token from a request's query string, or from the page that made it (same-origin Referer):
    Gradio's own requests (config, queue) carry the page URL as Referer or forward its query string."""
    token = parse_qs(query).get("token", [""])[0]
    if not token and referer:
        token = parse_qs(urlsplit(referer).query).get("token", [""])[0]
    return token


def embed_subject(service: Service, request: object) -> str | None:
    """Gradio `auth_dependency` of `/embed` (its page and its routes): the token's subject (or "embed") when
    valid and used where it belongs, None otherwise."""
    from coopbot.web.auth import AuthError

    query = str(getattr(getattr(request, "url", None), "query", "") or "")
    headers = getattr(request, "headers", {})
    referer = headers.get("referer")
    token = embed_token_of(query, referer)
    try:
        if headers.get("sec-fetch-mode") == "navigate":  # the page itself, in the portal's iframe
            claims = service.guard.check_embed_page(token, referer)
        else:  # the page's own requests
            claims = service.guard.check_embed_call(token, referer, headers.get("sec-fetch-site"))
    except AuthError:
        return None
    return (claims.subject if claims else "") or "embed"


class PageGuard:
    """Security headers for every response, and the embed-token check on the `/embed` page itself.

    The full page may be framed only by itself; `/embed` by `frame_ancestors`. A request for the embed
    page without a valid token, or from a page of another origin than the token's portal, gets a 401 page
    that says why (expired, missing, forged, elsewhere).
    """

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        ancestors = " ".join(service.settings.server.frame_ancestors) or "'none'"
        self.embed_csp = f"frame-ancestors {ancestors}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        embed = path == "/embed" or path.startswith("/embed/")
        if (
            embed
            and path in ("/embed", "/embed/")
            and scope.get("method") == "GET"
            and self.service.guard.embed_protected
        ):
            from coopbot.web.auth import AuthError

            query = scope.get("query_string", b"").decode("latin-1")
            referer = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"referer"), None)
            try:
                self.service.guard.check_embed_page(embed_token_of(query, None), referer)
            except AuthError as exc:
                await _denied(send, str(exc))
                return

        async def with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"same-origin"))
                if embed:
                    headers.append((b"content-security-policy", self.embed_csp))
                else:
                    headers.append((b"content-security-policy", b"frame-ancestors 'self'"))
                    headers.append((b"x-frame-options", b"SAMEORIGIN"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)  # type: ignore[arg-type]


async def _denied(send: Send, reason: str) -> None:
    page = (
        '<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>无法打开问答</title>'
        '<body style="font-family:sans-serif;padding:2em"><h3>无法打开问答</h3>'
        f'<p id="reason">{html.escape(reason)}</p>'
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": page})


def serve(settings: Settings | None = None) -> None:
    """Update the index, build everything, and serve until interrupted."""
    offline()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    began = time.perf_counter()
    settings = settings or Settings()
    from coopbot.index import writer_lock
    from coopbot.web.access import check_listening

    check_listening(settings.server, has_keys=any(k.get_secret_value() for k in settings.server.api_keys))

    # The server writes the index (uploads, deletions) and holds its vectors in memory: no other process may
    # write an embedded index while it runs. Held until the process ends; IndexBusy names the current writer.
    writer_lock.acquire(settings, f"coopbot serve (http://{settings.server.host}:{settings.server.port})")
    service = build_service(settings)
    update_index(service)  # may use every core: nothing else runs yet
    threads = tune_threads(settings)
    log.info("回答并发 %d 个，每个使用 %d 个 CPU 线程", settings.server.answer_workers, threads)
    app = create_server(service)
    log.info(
        "coopbot 已就绪（%.1f 秒）：http://%s:%d/  嵌入页 /embed  API 文档 /docs",
        time.perf_counter() - began,
        settings.server.host,
        settings.server.port,
    )
    service.probe.start()  # the first /healthz finds the index checked
    if settings.server.warm_up:
        service.warm_up()
    try:
        uvicorn.run(
            app, host=settings.server.host, port=settings.server.port, log_level="info", timeout_graceful_shutdown=3
        )
    finally:
        service.close()


def main() -> None:
    """Serve with the settings of the environment and coopbot.toml, or exit 1 saying what is wrong."""
    offline()  # before the index modules below are imported
    from pydantic import ValidationError

    from coopbot.index.chroma import StoreError
    from coopbot.index.embedder import EmbeddingError

    try:
        settings = Settings()
    except ValidationError as exc:
        sys.exit(f"error: invalid settings: {exc}")
    try:
        serve(settings)
    except (StoreError, EmbeddingError) as exc:
        sys.exit(f"error: {exc}")
    except ImportError as exc:
        sys.exit(f"error: the web UI needs its extra ({exc}): pip install 'coopbot[ui]'")
