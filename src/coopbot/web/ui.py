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
from coopbot.index.chroma import StoreError, StoreUnavailable
from coopbot.ingest.documents import DocumentError
from coopbot.ingest.loaders import SUPPORTED_SUFFIXES
from coopbot.ingest.pipeline import NothingIndexedError
from coopbot.schema import Delta, Final, Turn
from coopbot.web.auth import AuthError
from coopbot.web.errors import store_message
from coopbot.web.render import Exchange, Session, answer_footer, escape_markdown, render_answer, render_sources
from coopbot.web.service import Busy, Service

EXAMPLES = [
    "长三角一体化发展规划纲要覆盖的区域总面积有多大？",
    "科技成果完成单位没有约定奖励的，转让成果后给完成人多少奖励？",
    "全国科技工作者日是哪一天？",
    "长三角生态绿色一体化发展示范区条例从什么时候开始施行？",
]

CSS = """
.coopbot-sources { font-size: 0.92em; line-height: 1.6; max-height: 78vh; overflow-y: auto; }
.coopbot-q { cursor: pointer; }
.coopbot-turn { margin-bottom: 1em; }
.coopbot-q { font-weight: 600; margin: 0.4em 0; }
.coopbot-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0.5em 0.7em;
  margin: 0.4em 0; transition: box-shadow 0.2s, border-color 0.2s; }
.coopbot-source.coopbot-active { border-color: #e8a200; box-shadow: 0 0 0 3px rgba(232, 162, 0, 0.35); }
.coopbot-src-head { color: var(--body-text-color-subdued); margin-bottom: 0.3em; }
.coopbot-src-head b { color: var(--body-text-color); }
.coopbot-passage { white-space: pre-line; }
.coopbot-passage mark { background: #ffe58a; color: inherit; padding: 0 1px; }
.coopbot-related-note { color: var(--body-text-color-subdued); font-style: italic; }
.coopbot-related .coopbot-source { border-style: dashed; }
a.coopbot-cite { text-decoration: none; font-weight: 600; cursor: pointer; padding: 0 1px; }
"""

# A document-level click handler: `[n]` in an answer highlights and scrolls to its passage. Runs once
# per page (also inside the `<gradio-app>` web component); capture phase, so no link navigation happens.
JS = """
() => {
  if (window.__coopbotCites) return;
  window.__coopbotCites = true;
  document.addEventListener('click', (event) => {
    const path = event.composedPath ? event.composedPath() : [event.target];
    for (const el of path) {
      const href = el && el.getAttribute ? el.getAttribute('href') || '' : '';
      if (el.tagName === 'A' && href.startsWith('#coopbot-src-')) {
        event.preventDefault();
        event.stopPropagation();
        const root = el.getRootNode ? el.getRootNode() : document;
        const id = href.slice(1);
        const target = (root.getElementById && root.getElementById(id)) || document.getElementById(id);
        (root.querySelectorAll ? root : document).querySelectorAll('.coopbot-active')
          .forEach((node) => node.classList.remove('coopbot-active'));
        if (target) {
          const fold = target.closest('details');
          if (fold) fold.open = true;
          target.classList.add('coopbot-active');
          target.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
        }
        return;
      }
    }
  }, true);
}
"""
HEAD = '<meta name="referrer" content="same-origin">'

_PROGRESS = gr.Progress()  # Gradio replaces this default with a live progress tracker per call


def theme() -> Any:
    return gr.themes.Soft(primary_hue="blue")


# -- the chat (shared by the full page and the embed page) ---------------------------------------------


async def chat_events(
    service: Service, question: str, messages: list[dict[str, Any]] | None, session: Session
) -> AsyncIterator[tuple[list[dict[str, Any]], str, Session, str, str]]:
    """Stream one answer into the chatbot: (messages, sources html, session, textbox, plain answer text).

    Async, so a waiting question holds no thread: the answer is computed on the service's answer threads.
    A full line, a bad question or an index that cannot be used becomes the assistant's message (in Chinese),
    and the question stays in the box to send again."""
    messages = list(messages or [])
    question = (question or "").strip()
    if not question:
        yield messages, render_sources(session), session, "", ""
        return
    turn = len(session.exchanges) + 1
    messages += [{"role": "user", "content": escape_markdown(question)}, {"role": "assistant", "content": "……"}]
    yield messages, render_sources(session), session, "", ""
    text = ""
    try:
        async for event in service.astream(question, session.history()):
            match event:
                case Final(answer):
                    session.exchanges.append(Exchange(question, answer))
                    content = render_answer(answer.text, turn) + answer_footer(answer)
                    messages[-1] = {"role": "assistant", "content": content}
                    yield messages, render_sources(session), session, "", answer.text
                case Delta(piece):
                    text += piece
                    messages[-1] = {"role": "assistant", "content": render_answer(text, turn)}
                    yield messages, render_sources(session), session, "", text
    except (QuestionError, Busy, StoreError) as exc:
        message = store_message(exc) if isinstance(exc, StoreError) else str(exc)
        messages[-1] = {"role": "assistant", "content": escape_markdown(message)}
        yield messages, render_sources(session), session, question, ""


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
                height=380 if compact else 520,
                latex_delimiters=[],
                sanitize_html=True,
                allow_tags=False,
                feedback_options=("Like", "Dislike"),
                buttons=["copy"],
                placeholder="请输入关于区域协同创新、科技成果转化、政府工作报告等内容的问题。",
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
            with gr.Row():
                new = gr.Button("新对话", elem_id="coopbot-new", size="sm")
                copy = gr.Button("复制回答", elem_id="coopbot-copy", size="sm")
            status = gr.Markdown("", elem_id="coopbot-status")
            if not compact:
                gr.Examples(EXAMPLES, inputs=[box], label="示例问题")
        with gr.Column(scale=2) if not compact else gr.Accordion("来源", open=True):
            if not compact:
                gr.Markdown("### 来源")
            sources = gr.HTML(render_sources(Session()), elem_id="coopbot-sources")

    async def respond(question: str, messages: list[dict[str, Any]] | None, state: Session) -> AsyncIterator[Any]:
        async for update in chat_events(service, question, messages, state):
            yield update

    gr.on(
        triggers=[box.submit, send.click],
        fn=respond,
        inputs=[box, chatbot, session],
        outputs=[chatbot, sources, session, box, plain],
        api_visibility="private",
        concurrency_limit=None,  # Service bounds the CPU work; Gradio's default limit (1) would serialise users
        show_progress="minimal",
    )

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
        gr.Markdown("## coopbot 知识库问答\n回答只来自知识库中的文件，每句话都标注出处 [n]；找不到依据时会直接说明。")
        with gr.Tabs():
            with gr.Tab("问答", id="chat"):
                _chat_block(service, compact=False)
            with gr.Tab("知识库", id="knowledge"):
                _knowledge_tab(service)
    page.queue(default_concurrency_limit=service.settings.server.answer_workers)
    return page  # type: ignore[no-any-return]


def build_embed(service: Service) -> gr.Blocks:
    """`/embed`: the compact chat for an iframe or `<gradio-app>`, without the knowledge tab."""
    with gr.Blocks(title="coopbot 问答", analytics_enabled=False, fill_width=True) as embed:
        _chat_block(service, compact=True)
    embed.queue(default_concurrency_limit=service.settings.server.answer_workers)
    return embed  # type: ignore[no-any-return]


# -- the knowledge tab -------------------------------------------------------------------------------------


def client_of(request: gr.Request | None) -> str:
    """The address admin-token attempts are throttled by."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "unknown")


def document_rows(service: Service) -> list[list[Any]]:
    return [[d.title, d.doc_id, d.chunks, d.indexed_at or "—"] for d in service.knowledge.list()]


def _rows_or_problem(service: Service) -> tuple[list[list[Any]], str]:
    """The document rows and the table's label; an index that cannot be read says so in the label."""
    try:
        rows = document_rows(service)
    except StoreError as exc:
        return [], f"已索引的文档（无法读取：{store_message(exc)}）"
    return rows, f"已索引的文档（{len(rows)} 个）"


def _knowledge_tab(service: Service) -> None:
    admin = service.guard.admin_enabled
    rows, label = _rows_or_problem(service)
    table = gr.Dataframe(
        value=rows,
        headers=["标题", "文件", "段落数", "最后索引"],
        datatype=["str", "str", "number", "str"],
        interactive=False,
        label=label,
        elem_id="coopbot-documents",
    )
    refresh = gr.Button("刷新列表", size="sm")
    if admin:
        gr.Markdown(
            "上传、重建索引和删除需要管理令牌（服务器的 COOPBOT_ADMIN_TOKEN）；上传文件前请先在 [/login](/login) 登录。"
        )
    else:
        gr.Markdown("管理功能已关闭：服务器设置 COOPBOT_ADMIN_TOKEN 后，可在这里上传、重建索引和删除文档。")
    token = gr.Textbox(label="管理令牌", type="password", interactive=admin, elem_id="coopbot-admin-token")
    largest_mb = service.settings.server.max_upload_mb
    with gr.Row():
        with gr.Column():
            upload = gr.File(
                label=f"上传文档（{' '.join(SUPPORTED_SUFFIXES)}，不超过 {largest_mb:g} MB）",
                file_types=list(SUPPORTED_SUFFIXES),
                file_count="single",
                interactive=admin,
                elem_id="coopbot-upload",
            )
            add = gr.Button("上传并索引", variant="primary", interactive=admin)
        with gr.Column():
            force = gr.Checkbox(label="完全重建（重新嵌入全部段落，耗时数分钟）", value=False, interactive=admin)
            rebuild = gr.Button("重建索引", interactive=admin)
            choice = gr.Dropdown(
                choices=[r[1] for r in rows], label="要删除的文档", interactive=admin, allow_custom_value=False
            )
            remove = gr.Button("删除文档", variant="stop", interactive=admin)
    result = gr.Textbox(label="结果", interactive=False, lines=3, elem_id="coopbot-admin-result")

    def listing() -> tuple[Any, Any]:
        rows, label = _rows_or_problem(service)
        return gr.Dataframe(value=rows, label=label), gr.Dropdown(choices=[r[1] for r in rows], value=None)

    def progress_of(progress: gr.Progress) -> Any:
        def report(stage: str, done: int, total: int) -> None:
            if total:
                progress((done, total), desc={"files": "读取文件", "chunks": "嵌入段落"}.get(stage, stage))

        return report

    def finish(action: Any) -> tuple[str, Any, Any]:
        """Run an admin action; its failure (no token, bad file...) becomes the message, never an error page."""
        try:
            message = str(action())
        except (AuthError, DocumentError, NothingIndexedError) as exc:
            message = f"失败：{exc}"
        except StoreUnavailable as exc:  # the admin who acts here is the one to read the cause and the fix
            message = f"失败：{store_message(exc)}\n{exc}"
        except StoreError as exc:  # e.g. another process is writing the index: its message says what to do
            message = f"失败：{exc}"
        return (message, *listing())

    def do_add(
        secret: str, file: str | None, request: gr.Request, progress: gr.Progress = _PROGRESS
    ) -> tuple[str, Any, Any]:
        def run() -> str:
            service.guard.check_admin(secret or "", client_of(request))
            if not file:
                return "请先选择要上传的文件。"
            path = Path(file)
            name, report = service.knowledge.add(path.name, path.read_bytes(), progress=progress_of(progress))
            return f"已上传并索引 {name}：新增 {report.chunks_added} 个段落，共 {report.chunks_total} 个。"

        return finish(run)

    def do_rebuild(
        secret: str, full: bool, request: gr.Request, progress: gr.Progress = _PROGRESS
    ) -> tuple[str, Any, Any]:
        def run() -> str:
            service.guard.check_admin(secret or "", client_of(request))
            report = service.knowledge.update(force=full, progress=progress_of(progress))
            return (
                f"索引已更新（{report.seconds:.1f} 秒）：{report.files_seen} 个文件，新增 {report.chunks_added}，"
                f"更新 {report.chunks_updated}，删除 {report.chunks_removed} 个段落。"
            )

        return finish(run)

    def do_remove(secret: str, doc_id: str | None, request: gr.Request) -> tuple[str, Any, Any]:
        def run() -> str:
            service.guard.check_admin(secret or "", client_of(request))
            if not doc_id:
                return "请先选择要删除的文档。"
            return f"已删除 {doc_id}（{service.knowledge.delete(doc_id)} 个段落）。"

        return finish(run)

    outputs = [result, table, choice]
    refresh.click(listing, None, [table, choice], api_visibility="private")
    add.click(do_add, [token, upload], outputs, api_visibility="private", concurrency_limit=1)
    rebuild.click(do_rebuild, [token, force], outputs, api_visibility="private", concurrency_limit=1)
    remove.click(
        do_remove,
        [token, choice],
        outputs,
        api_visibility="private",
        concurrency_limit=1,
        js="(t, d) => (d && confirm('确定删除 ' + d + ' 吗？') ? [t, d] : [t, null])",
    )
