"""The portal operator's probes (issue 15) against the real server: `python app.py` with API keys, the admin
token and an embed secret set (the shared `web_server`). Each test is one probe and the safe behaviour."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from coopbot.config import OFFLINE_ENV

from ..web_fixtures import API_KEY, ROOT, WebServer, free_port

EVIL = "https://evil.example"


def test_the_chat_page_and_its_gradio_api_need_a_sign_in(web_server: WebServer) -> None:
    """Probe 1 and 2: with API keys set the page is private, Gradio's routes included."""
    call = httpx.post(web_server.url + "/gradio_api/call/chat", json={"data": ["示范区面积多大？", []]})
    assert call.status_code == 401 and "/login" in call.json()["error"]["message"]
    config = httpx.get(web_server.url + "/config")
    assert config.status_code == 401 and ".md" not in config.text  # no document list for anonymous readers
    page = httpx.get(web_server.url + "/")
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert httpx.get(web_server.url + "/config", headers=web_server.auth).status_code == 200


def test_signing_in_sets_an_http_only_cookie_that_opens_the_page(web_server: WebServer) -> None:
    wrong = httpx.post(
        web_server.url + "/login", data={"key": "not-a-key"}, headers={"X-Forwarded-For": "198.51.100.7"}
    )
    assert wrong.status_code == 401 and "密钥不正确" in wrong.text and "set-cookie" not in wrong.headers
    with httpx.Client(base_url=web_server.url) as browser:
        signed = browser.post("/login", data={"key": API_KEY})
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert browser.get("/config").status_code == 200
        assert browser.get("/").status_code == 200
        browser.get("/logout")
        assert browser.get("/config").status_code == 401


def test_foreign_origins_and_hosts_get_nothing(web_server: WebServer) -> None:
    """Probe 3: no CORS grant to a foreign origin (Gradio's permissive middleware is not installed), and a
    foreign Host header (DNS rebinding) is refused."""
    for path in ("/config", "/gradio_api/info", "/healthz"):
        response = httpx.get(web_server.url + path, headers={**web_server.auth, "Origin": EVIL})
        assert "access-control-allow-origin" not in response.headers, path
        assert "access-control-allow-credentials" not in response.headers, path
    preflight = httpx.options(
        web_server.url + "/gradio_api/call/chat",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers.get("access-control-allow-origin") != EVIL
    rebound = httpx.get(web_server.url + "/healthz", headers={"Host": "evil.example"})
    assert rebound.status_code == 400


def test_gradio_uploads_need_a_sign_in(web_server: WebServer) -> None:
    """Probe 6: nobody anonymous stores files in Gradio's temp dir (and the embed page takes none at all)."""
    files = {"files": ("x.txt", b"hello", "text/plain")}
    assert httpx.post(web_server.url + "/gradio_api/upload", files=files).status_code == 401
    assert httpx.post(web_server.url + "/embed/gradio_api/upload", files=files).status_code == 403
    uploaded = httpx.post(web_server.url + "/gradio_api/upload", files=files, headers=web_server.auth)
    assert uploaded.status_code == 200


def test_admin_token_guesses_are_throttled_per_client(web_server: WebServer) -> None:
    """Probe 8: after five wrong tokens a client waits (429 with Retry-After), even with the right one; other
    clients do not. Behind a proxy on loopback the client is the X-Forwarded-For address (uvicorn's default)."""
    guesser = {"X-Forwarded-For": "203.0.113.9"}
    for attempt in range(5):
        wrong = httpx.post(
            web_server.url + "/api/reindex", headers={**guesser, "Authorization": f"Bearer guess{attempt}"}
        )
        assert wrong.status_code == 403, wrong.text
    blocked = httpx.post(web_server.url + "/api/reindex", headers={**guesser, **web_server.admin})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert blocked.json()["error"]["code"] == "too_many_requests"
    other = httpx.get(
        web_server.url + "/api/documents", headers={"X-Forwarded-For": "203.0.113.10", **web_server.admin}
    )
    assert other.status_code == 200


def test_a_network_address_without_keys_is_refused_unless_public(tmp_path: object) -> None:
    """Probe 9: bound to 0.0.0.0 with no keys the server does not start, and says what to do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPBOT_")}
    env.update(
        OFFLINE_ENV, COOPBOT_CONFIG=str(ROOT / "absent.toml"), COOPBOT_HOST="0.0.0.0", COOPBOT_PORT=str(free_port())
    )
    refused = subprocess.run(
        [sys.executable, str(ROOT / "app.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0
    assert "refusing to listen on 0.0.0.0 without API keys" in refused.stderr and "--public" in refused.stderr


def test_a_long_earlier_turn_does_not_make_a_long_query(web_server: WebServer) -> None:
    """Probe 5: the question limit holds for the retrieval query a follow-up makes from its history."""
    history = [{"role": "user", "content": "长三角" * 6000}, {"role": "assistant", "content": "好"}]
    answered = httpx.post(
        web_server.url + "/api/ask",
        json={"question": "那2035年呢？", "history": history},
        headers=web_server.auth,
        timeout=120,
    )
    assert answered.status_code == 200, answered.text
    query = answered.json()["query"]
    assert len(query) <= 2000 and query.endswith("那2035年呢？")


def test_embed_tokens_work_only_on_their_portal_and_from_the_embed_page(web_server: WebServer) -> None:
    """Probe 4: a token is bound to the portal's origin (the one COOPBOT_FRAME_ANCESTORS allows), and Gradio's
    routes behind `/embed` answer only the embed page itself, not a script on another site replaying it."""
    token = httpx.post(web_server.url + "/api/embed-token", json={}, headers=web_server.auth).json()["token"]
    page = web_server.url + "/embed/"
    assert httpx.get(page, params={"token": token}, headers={"Referer": web_server.portal_url + "/"}).status_code == 200
    for referer in ({"Referer": EVIL + "/steal.html"}, {}):  # another site, or a tab with the leaked URL
        denied = httpx.get(page, params={"token": token}, headers=referer)
        assert denied.status_code == 401 and web_server.portal_url in denied.text
    replay = {"Sec-Fetch-Site": "cross-site", "Referer": f"{page}?token={token}"}
    assert httpx.get(web_server.url + "/embed/config", headers=replay).status_code == 401
    own = {"Sec-Fetch-Site": "same-origin", "Referer": f"{page}?token={token}"}
    assert httpx.get(web_server.url + "/embed/config", headers=own).status_code == 200
    foreign = httpx.post(web_server.url + "/api/embed-token", json={"origin": EVIL}, headers=web_server.auth)
    assert foreign.status_code == 403


def test_the_documented_embed_path_without_its_slash_redirects_with_the_token(web_server: WebServer) -> None:
    """Issue 16, problem 9: `/embed?token=...` (the README's snippet) reaches the page, token and all."""
    token = httpx.post(web_server.url + "/api/embed-token", json={}, headers=web_server.auth).json()["token"]
    portal = {"Referer": web_server.portal_url + "/"}
    moved = httpx.get(web_server.url + "/embed", params={"token": token}, headers=portal)
    assert moved.status_code == 308 and moved.headers["location"] == f"embed/?token={token}"
    landed = httpx.get(web_server.url + "/embed", params={"token": token}, headers=portal, follow_redirects=True)
    assert landed.status_code == 200 and str(landed.url).startswith(web_server.url + "/embed/?token=")
    assert httpx.get(web_server.url + "/embed", headers=portal, follow_redirects=True).status_code == 401


def test_api_docs_need_no_network(web_server: WebServer) -> None:
    """Issue 16, problem 5: `/docs` names only this server's files (the browser test renders it offline)."""
    docs = httpx.get(web_server.url + "/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "http" not in docs.text.replace("http-equiv", ""), "the docs page refers to another server"
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert httpx.get(f"{web_server.url}/docs-assets/{asset}").status_code == 200, asset
    redoc = httpx.get(web_server.url + "/redoc", headers=web_server.auth, follow_redirects=True)
    assert "redoc.standalone" not in redoc.text  # FastAPI's ReDoc page would load from a CDN


def test_a_docx_bomb_uploaded_by_the_admin_is_refused_and_leaves_nothing(web_server: WebServer) -> None:
    """A .docx of 250 MB of zeros packs to a few hundred KB: refused with the reason, the knowledge dir as it was."""
    import io
    import zipfile

    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (250 << 20))
    assert len(packed.getvalue()) < 1 << 20
    before = sorted(p.name for p in web_server.knowledge_dir.iterdir())
    files = {"file": ("bomb.docx", packed.getvalue(), "application/octet-stream")}
    refused = httpx.post(web_server.url + "/api/documents", files=files, headers=web_server.admin, timeout=120)
    assert 400 <= refused.status_code < 500 and "unpacks to more than" in refused.json()["error"]["message"]
    assert sorted(p.name for p in web_server.knowledge_dir.iterdir()) == before


def test_a_pdf_of_too_many_pages_uploaded_by_the_admin_is_refused_and_leaves_nothing(web_server: WebServer) -> None:
    """Parsed in a child process with a deadline; past 2,000 pages refused with what to do."""
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(2_001):
        writer.add_blank_page(width=100, height=100)
    book = io.BytesIO()
    writer.write(book)
    before = sorted(p.name for p in web_server.knowledge_dir.iterdir())
    files = {"file": ("book.pdf", book.getvalue(), "application/pdf")}
    refused = httpx.post(web_server.url + "/api/documents", files=files, headers=web_server.admin, timeout=300)
    assert 400 <= refused.status_code < 500, refused.text
    assert "2001 pages (at most 2000)" in refused.json()["error"]["message"]
    assert sorted(p.name for p in web_server.knowledge_dir.iterdir()) == before


def test_a_megabyte_without_punctuation_is_ingested_in_bounded_chunks(web_server: WebServer) -> None:
    """1 MB of text with no sentence mark or space: cut into chunks no longer than chunk_size + chunk_min_size
    (450 + 150) in linear time, searchable, then deleted again."""
    import time

    text = "区域协同创新合作机制" * 35_000  # 350,000 characters, 1.05 MB in UTF-8
    began = time.monotonic()
    files = {"file": ("wall.txt", ("# 无标点\n\n" + text).encode(), "text/plain")}
    added = httpx.post(web_server.url + "/api/documents", files=files, headers=web_server.admin, timeout=600)
    seconds = time.monotonic() - began
    try:
        assert added.status_code == 200, added.text
        assert added.json()["report"]["chunks_added"] >= len(text) // 600
        hits = httpx.get(
            web_server.url + "/api/search", params={"q": "区域协同创新合作机制", "k": 5}, headers=web_server.auth
        ).json()["hits"]
        wall = [h for h in hits if h["doc_id"] == "wall.txt"]
        assert wall and max(len(h["text"]) for h in wall) <= 600
        print(f"1 MB without punctuation: uploaded and indexed in {seconds:.1f} s")
    finally:
        httpx.delete(web_server.url + "/api/documents/wall.txt", headers=web_server.admin, timeout=120)


def test_sixty_questions_at_once_leave_health_fast_and_get_no_5xx_but_503(web_server: WebServer) -> None:
    """60 concurrent asks on the real app (real model) while `/healthz` is polled: answers, or 503/429 with
    Retry-After for those beyond the line; the health route's p95 under a second."""
    import asyncio
    import statistics
    import time

    async def run() -> tuple[list[int], list[float]]:
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as client:

            async def ask(i: int) -> int:
                body = {"question": f"长三角一体化发展规划纲要覆盖的区域总面积有多大？（{i}）"}
                reply = await client.post(web_server.url + "/api/ask", json=body, headers=web_server.auth)
                if reply.status_code in (429, 503):
                    assert int(reply.headers["retry-after"]) >= 1
                return reply.status_code

            asks = [asyncio.create_task(ask(i)) for i in range(60)]
            health = []
            while not all(task.done() for task in asks):
                began = time.monotonic()
                assert (await client.get(web_server.url + "/healthz")).status_code == 200
                health.append(time.monotonic() - began)
                await asyncio.sleep(0.1)
            return [task.result() for task in asks], health

    statuses, health = asyncio.run(run())
    assert set(statuses) <= {200, 429, 503}, sorted(statuses)
    assert 200 in statuses
    p95 = statistics.quantiles(health, n=20)[-1] if len(health) >= 2 else health[0]
    assert p95 < 1.0, sorted(health)[-5:]
