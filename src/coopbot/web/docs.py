"""`/docs` with no network: Swagger UI's script and styles served by this server, not fetched from a CDN.

FastAPI's own `/docs` page loads Swagger UI from jsdelivr, so it is blank on the offline machines coopbot is
made for, and it would tell a CDN who reads the docs. The files come from the `swagger-ui-bundle-v2`
package (part of the `ui` extra); without it `/docs` says how to get them and links the raw `/openapi.json`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

ASSETS = "/docs-assets"


def add_offline_docs(app: FastAPI) -> None:
    """Serve `/docs` (Swagger UI) from local files; the app must be built with `docs_url=None, redoc_url=None`."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]
    except ImportError:
        swagger_ui_path = None
    openapi = app.openapi_url or "/openapi.json"

    if swagger_ui_path is None:

        @app.get("/docs", include_in_schema=False)
        def docs_missing() -> HTMLResponse:
            return HTMLResponse(
                "<!doctype html><meta charset=utf-8><title>coopbot API</title>"
                "<p>接口文档页面需要 Swagger UI 的文件（swagger-ui-bundle-v2）："
                "<code>pip install 'coopbot[ui]'</code>。"
                f'<p>接口的机器可读说明：<a href="{openapi}">{openapi}</a>'
            )

        return

    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title} · 接口文档",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
