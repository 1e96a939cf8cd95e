"""The web UI in a real browser: Python Playwright driving Debian's Chromium against `python app.py`.

Screenshots go to test-artifacts/ (git-ignored); docs/screenshot-chat.png in the README is one of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from coopbot.config import Settings
from coopbot.web.auth import mint_embed_token

from ..web_fixtures import API_KEY, ARTIFACTS, EMBED_SECRET, XSS_QUESTION, WebServer, free_port

CHROMIUM = Path("/usr/bin/chromium")
# Flags for a headless Chromium with no network of its own (see the stack notes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FACT_QUESTION = "我国的全国科技工作者日定在每年的哪一天？"  # evals/qa/knowledge.jsonl kb-004
# An answer of two lines (two quoted passages), so that streaming line by line can be seen: kb-072.
LIST_QUESTION = "横琴粤澳深度合作区主要发展哪些能帮澳门经济多元化的产业？"
FIRST = "长三角一体化到2025年要达到什么程度？"  # the history of kb-030
FOLLOW_UP = "那到2035年呢？"  # kb-030
UNANSWERABLE = "红烧肉怎么做？"
TIMEOUT_MS = 90_000

# Records every text the chat shows while an answer streams in.
WATCH_CHAT = """() => {
  window.__chatStates = [];
  const chat = document.querySelector('#coopbot-chat');
  new MutationObserver(() => window.__chatStates.push(chat.innerText))
    .observe(chat, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            "the browser tests need Debian's chromium: run scripts/setup.sh --dev (as root) or apt-get install chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, web_server: WebServer) -> Iterator[Any]:
    """A fresh browser context (its own cookies and Gradio session) per test, signed in: API keys are set,
    so the chat page is private."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    page = context.new_page()
    sign_in(page, web_server)
    yield page
    context.close()


def sign_in(page: Any, server: WebServer) -> None:
    """Through the sign-in form, as a visitor who was given an API key."""
    page.goto(server.url + "/", wait_until="load")
    assert page.url == server.url + "/login"  # the private page sends an anonymous visitor to sign in
    page.locator("input[name=key]").fill(API_KEY)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(server.url + "/")


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def open_chat(page: Any, url: str) -> None:
    page.goto(url, wait_until="load")  # Gradio keeps a connection open: "networkidle" never comes
    page.locator("#coopbot-question textarea").wait_for(timeout=TIMEOUT_MS)


def ask(scope: Any, question: str, turn: int) -> Any:
    """Type a question, press Enter, and wait until its answer is finished: its bubble is there and 发送 is
    back in place of 停止生成 (both change in the answer's first update, so the order cannot mislead)."""
    box = scope.locator("#coopbot-question textarea")
    box.fill(question)
    box.press("Enter")
    bubble = scope.locator("#coopbot-chat .message-row").nth(2 * turn - 1)
    bubble.wait_for(timeout=TIMEOUT_MS)
    scope.locator("#coopbot-send").wait_for(state="visible", timeout=TIMEOUT_MS)
    return bubble  # the answer bubble of this turn


def wait_for_vote(path: Path, question: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                vote: dict[str, Any] = json.loads(line)
                if vote["question"] == question:
                    return vote
        time.sleep(0.2)
    raise AssertionError(f"no vote on {question!r} in {path}")


def test_chat_streams_cites_follows_up_and_refuses(page: Any, web_server: WebServer) -> None:
    open_chat(page, web_server.url + "/")

    answer = ask(page, FACT_QUESTION, 1)
    assert "5月30日" in answer.inner_text()
    assert "摘自知识库原文" in answer.inner_text()  # the UI says, in Chinese, how the answer was written
    cite = page.locator('#coopbot-chat a[href="#coopbot-src-1-1"]')
    assert cite.inner_text() == "[1]"
    cite.click()
    passage = page.locator("#coopbot-src-1-1")
    page.wait_for_function("document.querySelector('#coopbot-src-1-1').classList.contains('coopbot-active')")
    assert "5月30日" in passage.locator("mark").inner_text()
    assert page.url.rstrip("/") == web_server.url  # no navigation: the click only highlights
    shot(page, "chat-citation.png")

    # Thumbs up on the first answer lands in the data dir's feedback file.
    page.locator("#coopbot-chat button[aria-label='赞']").click()  # Like (zh-CN), shown for the latest answer
    vote = wait_for_vote(web_server.data_dir / "feedback.jsonl", FACT_QUESTION)
    assert vote["vote"] == "up" and "5月30日" in vote["answer"] and vote["citations"] and vote["time"]

    page.evaluate(WATCH_CHAT)
    streamed = ask(page, LIST_QUESTION, 2).inner_text()
    lines = [line for line in streamed.splitlines() if line.strip()]
    assert len(lines) >= 2 and "中医药" in streamed
    states = page.evaluate("window.__chatStates")
    assert any(lines[0] in s and lines[1] not in s for s in states), "the answer should appear line by line"

    assert "2025" in ask(page, FIRST, 3).inner_text()
    follow_up = ask(page, FOLLOW_UP, 4).inner_text()
    assert "2035" in follow_up
    assert page.locator('#coopbot-chat a[href^="#coopbot-src-4-"]').count() >= 1

    refusal = ask(page, UNANSWERABLE, 5)
    assert "知识库中没有找到" in refusal.inner_text()
    assert refusal.locator("a.coopbot-cite").count() == 0
    turn = page.locator('#coopbot-sources .coopbot-turn[data-turn="5"]')
    assert "不是答案的依据" in turn.inner_text()
    assert turn.locator(".coopbot-related .coopbot-source").count() >= 1
    assert turn.locator("[id^=coopbot-src-]").count() == 0  # related passages are not numbered as sources
    shot(page, "chat-refusal.png")


def test_new_conversation_and_sessions_are_separate(browser: Any, web_server: WebServer) -> None:
    first = browser.new_context(viewport={"width": 1200, "height": 900})
    second = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        a, b = first.new_page(), second.new_page()
        sign_in(a, web_server)
        sign_in(b, web_server)
        open_chat(a, web_server.url + "/")
        open_chat(b, web_server.url + "/")
        ask(a, FACT_QUESTION, 1)
        b.reload(wait_until="load")
        b.locator("#coopbot-question textarea").wait_for(timeout=TIMEOUT_MS)
        assert b.locator("#coopbot-chat .message-row").count() == 0
        assert b.locator("#coopbot-sources .coopbot-turn").count() == 0
        ask(b, UNANSWERABLE, 1)  # b's first turn, although a already asked one
        assert "5月30日" not in b.locator("#coopbot-chat").inner_text()

        a.locator("#coopbot-new").click()
        a.wait_for_function("document.querySelectorAll('#coopbot-chat .message-row').length === 0")
        ask(a, FOLLOW_UP, 1)  # a fresh conversation: the follow-up has no earlier turn to lean on
    finally:
        first.close()
        second.close()


def test_document_markup_renders_as_text(page: Any, web_server: WebServer) -> None:
    open_chat(page, web_server.url + "/")
    answer = ask(page, XSS_QUESTION, 1)
    text = answer.inner_text()
    assert "<script>window.__coopbotXss = 3</script>" in text
    assert '<img src=x onerror="window.__coopbotXss = 4">' in text
    sources = page.locator("#coopbot-sources").inner_text()
    assert "<script>window.__coopbotXss = 1</script>" in sources  # the title
    assert "<img src=x onerror" in sources
    page.get_by_role("tab", name="知识库").click()
    table = page.locator("#coopbot-documents")
    table.get_by_text("xss-probe.md").first.wait_for(timeout=TIMEOUT_MS)
    assert "<script>window.__coopbotXss = 1</script>" in table.inner_text()
    page.wait_for_timeout(500)  # an injected handler would have run by now
    assert page.evaluate("window.__coopbotXss === undefined")
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#coopbot-chat script, #coopbot-sources script").count() == 0
    shot(page, "xss-inert.png")


def test_knowledge_tab_lists_and_guards_admin_actions(page: Any, web_server: WebServer, tmp_path: Path) -> None:
    open_chat(page, web_server.url + "/")
    page.get_by_role("tab", name="知识库").click()
    table = page.locator("#coopbot-documents")
    table.get_by_text("law-science-and-technology-progress-2021.md").wait_for(timeout=TIMEOUT_MS)
    document = tmp_path / "紫荆合作备忘录.md"
    document.write_text("# 紫荆合作备忘录\n\n第一条 紫荆合作备忘录约定每年举办两次联合路演。\n", encoding="utf-8")
    assert not page.locator("#coopbot-admin-token").is_visible()  # the admin form waits behind 管理
    page.locator("#coopbot-admin").get_by_text("管理", exact=True).click()
    assert page.get_by_label("要删除的文档").input_value() == ""  # nothing preselected for deletion
    page.locator("#coopbot-upload input[type=file]").set_input_files(str(document))
    page.get_by_role("button", name="上传并索引").click()
    result = page.locator("#coopbot-admin-result textarea")
    page.wait_for_function(
        "document.querySelector('#coopbot-admin-result textarea').value.length > 0", timeout=TIMEOUT_MS
    )
    assert "管理令牌" in result.input_value()  # no token typed: refused
    assert not (web_server.knowledge_dir / document.name).exists()

    page.locator("#coopbot-admin-token input").fill("test-admin-token-91c2")
    page.get_by_role("button", name="上传并索引").click()
    page.wait_for_function(
        "document.querySelector('#coopbot-admin-result textarea').value.startsWith('已上传')", timeout=TIMEOUT_MS
    )
    table.get_by_text(document.name).wait_for(timeout=TIMEOUT_MS)
    table.get_by_test_id("cell-0-1").get_by_text(document.name).wait_for(timeout=5000)  # newest first: row 0
    shot(page, "knowledge-tab.png")
    deleted = httpx.delete(
        f"{web_server.url}/api/documents/{document.name}", headers=web_server.admin, timeout=60
    )  # leave the shared server as it was
    assert deleted.status_code == 200


def write_portal(server: WebServer, name: str, token: str) -> str:
    (server.portal_dir / name).write_text(
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>门户</title></head>'
        "<body><h1>区域协同创新门户</h1>"
        f'<iframe id="coopbot" src="{server.url}/embed/?token={token}" '
        'style="width:760px;height:720px;border:1px solid #ccc"></iframe></body></html>',
        encoding="utf-8",
    )
    return f"{server.portal_url}/{name}"


def test_embed_in_an_iframe_of_another_origin(page: Any, web_server: WebServer) -> None:
    minted = httpx.post(web_server.url + "/api/embed-token", json={"subject": "ui-test"}, headers=web_server.auth)
    page.goto(write_portal(web_server, "portal.html", minted.json()["token"]), wait_until="load")
    frame = page.frame_locator("#coopbot")
    frame.locator("#coopbot-question textarea").wait_for(timeout=TIMEOUT_MS)
    assert frame.get_by_role("tab", name="知识库").count() == 0  # compact: no knowledge tab
    answer = ask(frame, FACT_QUESTION, 1)
    assert "5月30日" in answer.inner_text()
    frame.locator('#coopbot-chat a[href="#coopbot-src-1-1"]').click()
    frame.locator("#coopbot-src-1-1.coopbot-active").wait_for(timeout=10_000)
    shot(page, "embed-iframe.png")

    expired = mint_embed_token(EMBED_SECRET, "ui-test", ttl=60, now=time.time() - 600).token
    page.goto(write_portal(web_server, "expired.html", expired), wait_until="load")
    reason = page.frame_locator("#coopbot").locator("#reason")
    reason.wait_for(timeout=TIMEOUT_MS)
    assert "过期" in reason.inner_text()


@pytest.fixture(scope="module")
def open_embed_server(
    tmp_path_factory: pytest.TempPathFactory, web_server: WebServer, kb_settings: Settings, model_dir: Path
) -> Iterator[str]:
    """A second server, in this process: `/embed` open (no embed secret) and CORS for the portal's origin,
    as the `<gradio-app>` web component needs."""
    import shutil
    import threading

    import uvicorn

    from coopbot.web.server import create_server
    from coopbot.web.service import Service

    data_dir = tmp_path_factory.mktemp("open-embed") / "data"
    shutil.copytree(kb_settings.data_dir, data_dir)
    port = free_port()
    settings = Settings(
        data_dir=data_dir,
        knowledge_dir=kb_settings.knowledge_dir,
        embedding_model=str(model_dir),
        port=port,
        cors_origins=[web_server.portal_url],
    )
    server = uvicorn.Server(
        uvicorn.Config(create_server(Service(settings)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started, "the in-process server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def test_embed_as_a_web_component_of_another_origin(page: Any, web_server: WebServer, open_embed_server: str) -> None:
    (web_server.portal_dir / "component.html").write_text(
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>门户</title>'
        f'<script type="module" src="{open_embed_server}/gradio.js"></script></head>'
        f'<body><h1>区域协同创新门户</h1><gradio-app src="{open_embed_server}/embed/"></gradio-app></body></html>',
        encoding="utf-8",
    )
    page.goto(f"{web_server.portal_url}/component.html", wait_until="load")
    page.locator("#coopbot-question textarea").wait_for(timeout=TIMEOUT_MS)
    answer = ask(page, FACT_QUESTION, 1)
    assert "5月30日" in answer.inner_text()
    assert "摘自知识库原文" in answer.inner_text()  # the UI says, in Chinese, how the answer was written
    page.locator('#coopbot-chat a[href="#coopbot-src-1-1"]').click()
    page.locator("#coopbot-src-1-1.coopbot-active").wait_for(timeout=10_000)
    assert page.url == f"{web_server.portal_url}/component.html"
    shot(page, "embed-web-component.png")
