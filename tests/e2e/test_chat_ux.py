"""The chat as a product (issue 16), in Debian's Chromium: typing while an answer streams, 停止生成, the cited
sentence in light and dark mode, copy, the answer's layout, and `/docs` with the network blocked.

The server is the real one (`create_server`: FastAPI, Gradio, the access policy) over a one-document
knowledge base, with the fake embedder and a scripted model that streams slowly on demand: these tests are
about the page, and a slow stream is what makes typing-while-streaming and stopping observable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from coopbot.config import Settings
from coopbot.llm.base import Message
from coopbot.web.ui import EXAMPLES

from ..fakes.embedder import fake_embedder, fake_settings
from ..fakes.scripted import Scripted
from ..integration.serving import DOCUMENT, QUESTION, serve_in_thread
from ..web_fixtures import ARTIFACTS
from .test_ui import CHROMIUM, CHROMIUM_ARGS, ask, open_chat

ANSWER = [
    *("长三角一体化发展规划纲要", "覆盖的区域总面积是", "35.8万平方公里。[1]"),
    *("规划范围包括", "上海市、江苏省、", "浙江省、安徽省全域。[1]"),
]
WAIT_MS = 60_000


class SlowScripted(Scripted):
    """The scripted model, `delay_s` seconds per piece; it records how many pieces it gave and whether its
    stream was closed before the end (what 停止生成 must cause on the server)."""

    name = "llamacpp"  # shown as the local model: the footer must say so in Chinese, not by this name

    def __init__(self, pieces: Sequence[str]) -> None:
        super().__init__(pieces)
        self.delay_s = 0.0
        self.given = 0
        self.cut_short = threading.Event()

    def stream(self, messages: Sequence[Message], *, max_tokens: int, timeout_s: float) -> Iterator[str]:
        self.given = 0
        try:
            for piece in super().stream(messages, max_tokens=max_tokens, timeout_s=timeout_s):
                time.sleep(self.delay_s)
                self.given += 1
                yield piece
        except GeneratorExit:
            self.cut_short.set()
            raise


class UxServer:
    def __init__(self, url: str, model: SlowScripted) -> None:
        self.url, self.model = url, model


@pytest.fixture(scope="module")
def ux_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UxServer]:
    from coopbot.assistant import build_assistant
    from coopbot.web.service import Service

    # The fake embedder's cosines mean nothing to the fitted gate: it must not refuse (the gate is not under test).
    settings: Settings = fake_settings(tmp_path_factory.mktemp("ux"), refusal_threshold=0.0)
    (settings.knowledge_dir / "yrd.md").write_text(DOCUMENT, encoding="utf-8")
    model = SlowScripted(ANSWER)
    service = Service(settings, assistant=build_assistant(settings, embedder=fake_embedder(settings), generator=model))
    service.knowledge.update()
    try:
        with serve_in_thread(service, whole=True) as url:
            yield UxServer(url, model)
    finally:
        service.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: run scripts/setup.sh --dev"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    yield context
    context.close()


def _answer(page: Any) -> Any:
    """Ask the question and wait for the finished answer (its sources shown); returns the answer bubble."""
    box = page.locator("#coopbot-question textarea")
    box.fill(QUESTION)
    box.press("Enter")
    page.locator('#coopbot-sources .coopbot-turn[data-turn="1"]').wait_for(timeout=WAIT_MS)
    page.locator("#coopbot-send").wait_for(state="visible", timeout=WAIT_MS)
    return page.locator("#coopbot-chat .message-row").last


def test_typing_during_an_answer_is_kept_and_stop_ends_it_on_the_server(context: Any, ux_server: UxServer) -> None:
    """Problem 3: the box is emptied once, on sending, and never while the answer streams; a second Enter
    meanwhile is refused with a visible reason; 停止生成 closes the model's stream on the server."""
    ux_server.model.delay_s = 3.0  # six pieces: 18 seconds of streaming, the first sentence after 9
    ux_server.model.cut_short.clear()
    page = context.new_page()
    open_chat(page, ux_server.url + "/")
    box = page.locator("#coopbot-question textarea")
    box.fill(QUESTION)
    box.press("Enter")
    stop = page.locator("#coopbot-stop")
    stop.wait_for(state="visible", timeout=WAIT_MS)
    assert box.input_value() == ""  # emptied once, on sending
    page.wait_for_function("() => document.querySelector('#coopbot-chat').innerText.includes('长三角一体化')")
    box.press_sequentially("科技成果", delay=150)  # typed while pieces arrive
    page.wait_for_timeout(1500)  # more pieces stream in meanwhile
    assert box.input_value() == "科技成果"
    box.press("Enter")  # a second question while the first streams
    status = page.locator("#coopbot-status")
    status.get_by_text("上一条回答还在生成").wait_for(timeout=5000)
    assert box.input_value() == "科技成果"

    stop.click()
    assert ux_server.model.cut_short.wait(10), "the model's stream was not closed: the server kept generating"
    assert ux_server.model.given < len(ANSWER)
    page.get_by_text("已停止生成").wait_for(timeout=5000)
    page.locator("#coopbot-send").wait_for(state="visible", timeout=5000)
    assert not stop.is_visible() and box.input_value() == "科技成果"


def test_a_client_that_leaves_an_answer_stream_stops_the_model(ux_server: UxServer) -> None:
    """The same for the HTTP API: a client that closes `/api/ask/stream` mid-answer ends the model's stream."""
    import httpx

    ux_server.model.delay_s = 2.0
    ux_server.model.cut_short.clear()
    with httpx.stream("POST", ux_server.url + "/api/ask/stream", json={"question": QUESTION}, timeout=60) as reply:
        for line in reply.iter_lines():
            if line.startswith("data:") and "平方公里" in line:  # the first sentence: the client has seen enough
                break
    assert ux_server.model.cut_short.wait(10), "the model kept writing for a client that had left"
    assert ux_server.model.given < len(ANSWER)


CONTRAST = """(selector) => {
  const element = document.querySelector(selector);
  const rgb = (value) => value.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map((c) => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const style = getComputedStyle(element);
  const [a, b] = [luminance(rgb(style.color)), luminance(rgb(style.backgroundColor))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_cited_sentence_and_the_chips_read_in_light_and_dark_mode(
    context: Any, ux_server: UxServer, theme: str
) -> None:
    """Problems 1 and 2: contrast of the highlighted sentence and of a citation chip >= 4.5 (WCAG AA), computed
    from the rendered styles; answer sentences on their own lines; no backend name in the answer."""
    ux_server.model.delay_s = 0.0
    page = context.new_page()
    open_chat(page, f"{ux_server.url}/?__theme={theme}")
    bubble = _answer(page)
    assert page.evaluate("() => document.body.classList.contains('dark')") == (theme == "dark")
    chip = bubble.locator("a.coopbot-cite").first
    chip.click()
    page.locator("#coopbot-sources .coopbot-active mark").wait_for(timeout=5000)
    assert page.evaluate(CONTRAST, "#coopbot-sources .coopbot-active mark") >= 4.5
    assert page.evaluate(CONTRAST, "#coopbot-chat a.coopbot-cite") >= 4.5
    text = bubble.inner_text()
    assert "llamacpp" not in text and "extractive" not in text and "回答方式" not in text
    assert "根据所引原文" in text or "摘自知识库原文" in text
    labelled = "() => Array.from(document.querySelectorAll('#coopbot-chat [aria-label^=\"回答：\"]'))"
    page.wait_for_function(labelled + ".some((el) => el.getAttribute('aria-label').includes('35.8万平方公里'))")
    label = bubble.locator("[aria-label^='回答：']").first.get_attribute("aria-label") or ""
    assert "35.8万平方公里" in label and "<" not in label and "coopbot-cite" not in label  # screen readers: text
    assert page.locator("#coopbot-chat [aria-label*='<']").count() == 0
    lines = [line for line in text.splitlines() if "[1]" in line]
    assert len(lines) >= 2, f"each cited sentence on its own line: {text!r}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"chat-{theme}.png"))


def test_copy_gives_plain_text_with_its_sources(context: Any, ux_server: UxServer) -> None:
    """Problem 4: 复制回答 puts the answer as text on the clipboard, followed by where each [n] comes from."""
    ux_server.model.delay_s = 0.0
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ux_server.url)
    page = context.new_page()
    open_chat(page, ux_server.url + "/")
    _answer(page)
    page.locator("#coopbot-copy").click()
    page.wait_for_function("async () => (await navigator.clipboard.readText()).includes('参考来源')", timeout=5000)
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert "<" not in copied and "coopbot-cite" not in copied
    assert "[1]" in copied and "参考来源：\n[1] " in copied and "yrd.md" in copied


def test_api_docs_render_with_the_network_blocked(context: Any, ux_server: UxServer) -> None:
    """Problem 5: every request of `/docs` goes to this server, and Swagger UI renders the API."""
    foreign: list[str] = []

    def only_here(route: Any) -> None:
        if route.request.url.startswith(ux_server.url):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", only_here)
    page = context.new_page()
    page.goto(ux_server.url + "/docs", wait_until="load")
    page.locator(".swagger-ui .info .title").get_by_text("coopbot API").wait_for(timeout=WAIT_MS)
    page.locator(".swagger-ui .opblock").first.wait_for(timeout=WAIT_MS)
    assert not foreign, f"/docs reached for other servers: {foreign}"


def test_embed_without_its_slash_opens_the_chat(context: Any, ux_server: UxServer) -> None:
    """Problem 9: the path people type, `/embed`, opens the embed chat."""
    page = context.new_page()
    open_chat(page, ux_server.url + "/embed")
    assert page.url == ux_server.url + "/embed/"


def test_without_an_admin_token_the_knowledge_tab_only_lists(context: Any, ux_server: UxServer) -> None:
    """Problem 6: no admin form, greyed out or not, and no environment variable names for visitors."""
    page = context.new_page()
    open_chat(page, ux_server.url + "/")
    page.get_by_role("tab", name="知识库").click()
    page.get_by_test_id("cell-0-1").get_by_text("yrd.md").wait_for(timeout=WAIT_MS)
    assert page.locator("#coopbot-admin").count() == 0 and page.locator("#coopbot-admin-token").count() == 0
    assert "COOPBOT_" not in page.inner_text("body") and "管理令牌" not in page.inner_text("body")


@pytest.mark.parametrize("size", [(1280, 900), (390, 844)], ids=["desktop", "mobile"])
def test_the_first_screen_says_what_the_knowledge_base_holds_and_offers_examples(
    browser: Any, ux_server: UxServer, size: tuple[int, int]
) -> None:
    """Problem 7: the documents' titles and example cards inside the empty chat, and the question box, all
    visible without scrolling; a card sends its question."""
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    try:
        page = context.new_page()
        open_chat(page, ux_server.url + "/")
        chat = page.locator("#coopbot-chat")
        chat.get_by_text("知识库收录了《长三角》1 篇文档").wait_for(timeout=WAIT_MS)
        card = chat.get_by_text(EXAMPLES[0])
        for element in (card, page.locator("#coopbot-question textarea")):
            box = element.bounding_box()
            assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, (size, box)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"first-screen-{width}.png"))
        ux_server.model.delay_s = 0.0
        card.click()
        chat.locator(".message-row").first.get_by_text(EXAMPLES[0]).wait_for(timeout=WAIT_MS)
        page.locator("#coopbot-send").wait_for(state="visible", timeout=WAIT_MS)
    finally:
        context.close()


def test_the_embed_fits_a_portal_frame_with_one_scrollbar_and_sources_under_each_answer(
    browser: Any, ux_server: UxServer
) -> None:
    """Problem 7: `/embed` in 400x600: the page itself never scrolls (the chat does); an answer's sources are
    folded under it (参考来源) instead of sitting below the fold in a second panel; `[n]` opens its card."""
    context = browser.new_context(viewport={"width": 400, "height": 600}, locale="zh-CN")
    try:
        page = context.new_page()
        open_chat(page, ux_server.url + "/embed/")
        ux_server.model.delay_s = 0.0
        for turn in (1, 2):
            bubble = ask(page, QUESTION, turn)
        page_scrolls = "() => document.scrollingElement.scrollHeight > window.innerHeight + 1"
        sizes = page.evaluate(
            "() => [document.scrollingElement.scrollHeight, window.innerHeight,"
            " document.querySelector('#coopbot-chat').getBoundingClientRect().height]"
        )
        page.screenshot(path=str(ARTIFACTS / "embed-400x600.png"), full_page=True)
        assert not page.evaluate(page_scrolls), f"a second scrollbar: the embed page itself scrolls {sizes}"
        refs = bubble.locator("details.coopbot-refs")
        assert refs.get_by_text("参考来源（1）").count() == 1 and not refs.get_attribute("open")
        refs.locator("summary").click()
        assert refs.get_attribute("open") is not None and "yrd.md" in refs.inner_text()
        bubble.locator("a.coopbot-cite").first.click()  # a narrow frame: the chip's card opens as a bottom sheet
        page.locator(".coopbot-sheet").get_by_text("35.8万平方公里").wait_for(timeout=5000)
        box = page.locator("#coopbot-question textarea").bounding_box()
        assert box is not None and box["y"] + box["height"] <= 600
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "embed-400x600.png"))
    finally:
        context.close()


def test_a_chip_shows_its_passage_in_a_popover_on_desktop_and_a_bottom_sheet_on_a_phone(
    browser: Any, ux_server: UxServer
) -> None:
    """Citation chips: hover (desktop) shows document, section and the cited sentence with context, and
    查看原文 rings the passage; a tap on a phone opens a bottom sheet (展开全文 shows the whole passage)
    and the page does not jump."""
    ux_server.model.delay_s = 0.0
    desktop = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", has_touch=True)
    try:
        page = desktop.new_page()
        open_chat(page, ux_server.url + "/")
        chip = ask(page, QUESTION, 1).locator("a.coopbot-cite").first
        chip.hover()
        popover = page.locator(".coopbot-popover")
        popover.wait_for(timeout=5000)
        assert "长三角" in popover.inner_text() and "yrd.md" in popover.inner_text()
        assert popover.locator("mark").inner_text().endswith("。")
        popover.get_by_text("查看原文").click()
        page.locator("#coopbot-src-1-1.coopbot-active").wait_for(timeout=5000)

        page = phone.new_page()
        open_chat(page, ux_server.url + "/")
        chip = ask(page, QUESTION, 1).locator("a.coopbot-cite").first
        chip.scroll_into_view_if_needed()
        before = page.evaluate("() => window.scrollY")
        chip.tap()
        sheet = page.locator(".coopbot-sheet")
        sheet.wait_for(timeout=5000)
        box = sheet.bounding_box()
        assert box is not None and abs(box["y"] + box["height"] - 844) <= 2, "a sheet at the bottom of the screen"
        assert page.evaluate("() => window.scrollY") == before, "the page jumped"
        sheet.get_by_text("展开全文").click()
        assert "规划范围包括上海市" in sheet.inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "mobile-sheet.png"))
        sheet.get_by_text("关闭").click()
        assert page.locator(".coopbot-sheet").count() == 0
    finally:
        desktop.close()
        phone.close()
