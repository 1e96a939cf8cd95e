"""The Gradio pages: the full chat page with its knowledge tab (`/`) and the compact embed chat (`/embed`).

Callbacks only translate between components and `Service`; what they show is rendered, escaped, by
`web.render`. Conversation state (`render.Session`) lives in `gr.State`, one per browser session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gradio as gr

from coopbot.assistant import QuestionError
from coopbot.index.chroma import StoreError
from coopbot.schema import Delta, Final, Turn
from coopbot.web.errors import store_message
from coopbot.web.knowledge_tab import knowledge_tab
from coopbot.web.render import (
    Exchange,
    Session,
    answer_footer,
    copy_text,
    escape_markdown,
    render_answer,
    render_inline_sources,
    render_sources,
)
from coopbot.web.service import Busy, Service


def _asset(name: str) -> str:
    return (Path(__file__).parent / "assets" / name).read_text(encoding="utf-8")


EXAMPLES = [
    "长三角一体化发展规划纲要覆盖的区域总面积有多大？",
    "科技成果完成单位没有约定奖励的，转让成果后给完成人多少奖励？",
    "全国科技工作者日是哪一天？",
    "长三角生态绿色一体化发展示范区条例从什么时候开始施行？",
]

SEARCHING = "正在检索知识库……"  # shown until the first sentence: retrieval and ranking take a moment
MAX_TITLES = 6  # document titles named in the empty chat; more are counted

CSS = _asset("chat.css")


# Runs once per page (also inside the `<gradio-app>` web component): `[n]` chips show their passage in a
# popover (desktop) or a bottom sheet (narrow screens), and 查看原文 rings the passage in the sources.
JS = _asset("chat.js")

HEAD = '<meta name="referrer" content="same-origin">'
# Enter while an answer streams (the 停止生成 button is showing): the question stays in the box, and the
# status line says why nothing was sent; otherwise it clears an earlier notice.
BUSY_NOTICE = """
() => {
  const roots = [document, ...Array.from(document.querySelectorAll('gradio-app'), (app) => app.shadowRoot || app)];
  const busy = roots.some((root) => {
    const stop = root.querySelector && root.querySelector('#coopbot-stop');
    return stop && stop.offsetParent !== null;
  });
  return busy ? '上一条回答还在生成：等它结束再发送，或点击“停止生成”。输入框里的问题会保留。' : '';
}
"""


def theme() -> Any:
    return gr.themes.Soft(primary_hue="blue")


# -- the chat (shared by the full page and the embed page) ---------------------------------------------


async def chat_events(
    service: Service,
    question: str,
    messages: list[dict[str, Any]] | None,
    session: Session,
    inline_sources: bool = False,
) -> AsyncIterator[tuple[Any, ...]]:
    """Stream one answer into the chatbot: (messages, sources html, session, textbox, plain text, send, stop).

    Async, so a waiting question holds no thread: the answer is computed on the service's answer threads.
    The textbox is emptied once, as the answer starts, and left alone while it streams (what the user types
    meanwhile stays); 发送 turns into 停止生成 until the answer is done. A full line, a bad question or an
    index that cannot be used becomes the assistant's message (in Chinese), and the question goes back to
    the box to send again."""
    messages = list(messages or [])
    question = (question or "").strip()
    if not question:
        yield messages, render_sources(session), session, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return
    turn = len(session.exchanges) + 1
    messages += [{"role": "user", "content": escape_markdown(question)}, {"role": "assistant", "content": SEARCHING}]
    answering = gr.update(visible=False), gr.update(visible=True)
    yield messages, render_sources(session), session, "", "", *answering
    done = gr.update(visible=True), gr.update(visible=False)
    text = ""
    try:
        async for event in service.astream(question, session.history()):
            match event:
                case Final(answer):
                    session.exchanges.append(Exchange(question, answer))
                    content = render_answer(answer.text, turn) + answer_footer(answer)
                    if inline_sources:
                        content += render_inline_sources(turn, answer)
                    messages[-1] = {"role": "assistant", "content": content}
                    plain = copy_text(answer)
                    yield messages, render_sources(session), session, gr.skip(), plain, *done
                case Delta(piece):
                    text += piece
                    messages[-1] = {"role": "assistant", "content": render_answer(text, turn)}
                    yield messages, gr.skip(), session, gr.skip(), gr.skip(), *answering
    except (QuestionError, Busy, StoreError) as exc:
        message = store_message(exc) if isinstance(exc, StoreError) else str(exc)
        messages[-1] = {"role": "assistant", "content": escape_markdown(message)}
        yield messages, render_sources(session), session, question, "", *done


def stopped(messages: list[dict[str, Any]] | None) -> tuple[Any, ...]:
    """停止生成: the answer's event is cancelled (its stream closed, so the model stops); say so under it."""
    messages = list(messages or [])
    if messages and messages[-1].get("role") == "assistant":
        content = str(messages[-1].get("content") or "").removesuffix(SEARCHING)
        messages[-1] = {
            "role": "assistant",
            "content": content + '\n\n<span class="coopbot-footer">已停止生成。</span>',
        }
    return messages, gr.update(visible=True), gr.update(visible=False)


def welcome(service: Service) -> str:
    """The empty chat's first line: what the knowledge base holds (its documents' titles), and the promise."""
    try:
        titles = sorted({document.title for document in service.knowledge.list()})
    except StoreError:
        titles = []
    shown = "".join(f"《{escape_markdown(title)}》" for title in titles[:MAX_TITLES])
    more = f"等 {len(titles)} 篇文档" if len(titles) > MAX_TITLES else f"{len(titles)} 篇文档"
    holds = f"知识库收录了{shown}{more}。" if titles else "知识库里还没有文档。"
    return f"{holds}回答只来自这些文档，每句话都标注出处；找不到依据时会直接说明。可以从下面的问题开始："


def vote(service: Service, session: Session, index: int | tuple[int, int], liked: bool | str) -> str:
    """A thumbs up/down on the assistant message at `index` (messages alternate user, assistant)."""
    position = index[0] if isinstance(index, tuple) else index
    turn = position // 2
    if not 0 <= turn < len(session.exchanges):
        return ""
    exchange = session.exchanges[turn]
    if exchange.voted:
        return "这条回答的反馈已经记录过了。"
    exchange.voted = True
    up = liked is True or liked == "Like"
    service.vote(exchange.answer, "up" if up else "down")
    return "已记录反馈，谢谢！"


def _chat_block(service: Service, *, compact: bool) -> None:
    """Chatbot, input, buttons and sources panel, wired to `service`; used inside a Blocks context."""
    session = gr.State(Session())
    plain = gr.Textbox(visible=False, elem_id="coopbot-plain")

    def column() -> Any:
        return gr.Column(scale=3) if not compact else gr.Column()

    with gr.Row(equal_height=False):
        with column():
            chatbot = gr.Chatbot(
                label="问答",
                elem_id="coopbot-chat",
                height="calc(100vh - 180px)" if compact else 520,  # the frame's height: one scrollbar, the chat's
                latex_delimiters=[],
                sanitize_html=True,
                allow_tags=False,
                feedback_options=("Like", "Dislike"),
                buttons=[],  # Gradio's per-message copy copies the markup: 复制回答 gives the text and its sources
                placeholder=welcome(service),
                examples=[{"text": question} for question in EXAMPLES],  # cards inside the empty chat
            )
            with gr.Row():
                box = gr.Textbox(
                    show_label=False,
                    placeholder="输入问题，按回车发送",
                    elem_id="coopbot-question",
                    scale=5,
                    max_lines=4,
                )
                send = gr.Button("发送", variant="primary", elem_id="coopbot-send", scale=1, min_width=80)
                stop = gr.Button(
                    "停止生成", variant="stop", elem_id="coopbot-stop", scale=1, min_width=80, visible=False
                )
            with gr.Row():
                new = gr.Button("新对话", elem_id="coopbot-new", size="sm")
                copy = gr.Button("复制回答", elem_id="coopbot-copy", size="sm")
            status = gr.Markdown("", elem_id="coopbot-status")
        if compact:  # no room beside the chat in a portal's frame: each answer carries its sources, folded
            sources = gr.HTML("", visible=False)
        else:
            with gr.Column(scale=2):
                gr.Markdown("### 来源")
                sources = gr.HTML(render_sources(Session()), elem_id="coopbot-sources")

    async def respond(question: str, messages: list[dict[str, Any]] | None, state: Session) -> AsyncIterator[Any]:
        async for update in chat_events(service, question, messages, state, inline_sources=compact):
            yield update

    answer = {
        "fn": respond,
        "inputs": [box, chatbot, session],
        "outputs": [chatbot, sources, session, box, plain, send, stop],
        "api_visibility": "private",
        "concurrency_limit": None,  # Service bounds the CPU work; Gradio's default limit (1) would serialise users
        "show_progress": "minimal",
        "trigger_mode": "once",  # one answer at a time per page: a second Enter meanwhile is refused, visibly
    }
    answering = gr.on(triggers=[box.submit, send.click], **answer)

    def pick(chosen: gr.SelectData) -> str:
        return str(chosen.value["text"])

    picked = chatbot.example_select(pick, None, [box], api_visibility="private", queue=False).then(**answer)
    box.submit(None, None, [status], js=BUSY_NOTICE)
    cancels = [answering, picked]
    stop.click(stopped, [chatbot], [chatbot, send, stop], cancels=cancels, api_visibility="private", queue=False)

    def reset() -> tuple[list[dict[str, Any]], str, Session, str, str]:
        fresh = Session()
        return [], render_sources(fresh), fresh, "", ""

    new.click(reset, None, [chatbot, sources, session, plain, status], api_visibility="private")
    chatbot.clear(lambda: reset()[1:4], None, [sources, session, plain], api_visibility="private")
    copy.click(
        None,
        [plain],
        None,
        js="(text) => { if (text) { navigator.clipboard.writeText(text); } return []; }",
    )

    def like(state: Session, data: gr.LikeData) -> str:
        return vote(service, state, data.index, data.liked)

    chatbot.like(like, [session], [status], api_visibility="private")

    async def api_chat(message: str, history: list[dict[str, str]] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Answer `message` (with earlier {"role","content"} turns): partial {"text"} items, then the whole Answer."""
        turns = [
            Turn(str(t["role"]), str(t["content"])) for t in history or [] if t.get("role") in ("user", "assistant")
        ]
        text = ""
        try:
            async for event in service.astream(message, turns):
                match event:
                    case Final(answer):
                        yield {"done": True, **answer.to_dict()}
                    case Delta(piece):
                        text += piece
                        yield {"done": False, "text": text}
        except (QuestionError, Busy) as exc:
            raise gr.Error(str(exc)) from exc
        except StoreError as exc:
            raise gr.Error(store_message(exc)) from exc

    gr.api(api_chat, api_name="chat", concurrency_limit=None)  # type: ignore[attr-defined]


# -- the pages -------------------------------------------------------------------------------------------


def build_page(service: Service) -> gr.Blocks:
    """`/`: the chat with its sources panel, and the knowledge tab."""
    # Uploads land in Gradio's temp dir: files older than an hour are deleted every hour.
    with gr.Blocks(title="coopbot 知识库问答", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown("## coopbot 知识库问答")  # what it holds and promises: the empty chat says it (`welcome`)
        with gr.Tabs():
            with gr.Tab("问答", id="chat"):
                _chat_block(service, compact=False)
            with gr.Tab("知识库", id="knowledge"):
                knowledge_tab(service)
    page.queue(default_concurrency_limit=service.settings.server.answer_workers)
    return page  # type: ignore[no-any-return]


def build_embed(service: Service) -> gr.Blocks:
    """`/embed`: the compact chat for an iframe or `<gradio-app>`, without the knowledge tab."""
    with gr.Blocks(title="coopbot 问答", analytics_enabled=False, fill_width=True) as embed:
        _chat_block(service, compact=True)
    embed.queue(default_concurrency_limit=service.settings.server.answer_workers)
    return embed  # type: ignore[no-any-return]
