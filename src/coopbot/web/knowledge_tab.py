"""The knowledge tab of the chat page: the indexed documents, and the admin actions on them.

Callbacks only translate: the admin token is checked by `service.guard`, the work is done by
`service.knowledge`, and every failure becomes the result message, never an error page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from coopbot.index.chroma import StoreError, StoreUnavailable
from coopbot.ingest.documents import DocumentError
from coopbot.ingest.loaders import SUPPORTED_SUFFIXES
from coopbot.ingest.pipeline import NothingIndexedError
from coopbot.web.auth import AuthError
from coopbot.web.errors import store_message
from coopbot.web.service import Service

_PROGRESS = gr.Progress()  # Gradio replaces this default with a live progress tracker per call


def client_of(request: gr.Request | None) -> str:
    """The address admin-token attempts are throttled by."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "unknown")


def document_rows(service: Service) -> list[list[Any]]:
    """Newest first: a document just uploaded is the first row, not hidden below the table's fold."""
    documents = sorted(service.knowledge.list(), key=lambda d: d.indexed_at or "", reverse=True)
    return [[d.title, d.doc_id, d.chunks, d.indexed_at or "—"] for d in documents]


def _rows_or_problem(service: Service) -> tuple[list[list[Any]], str]:
    """The document rows and the table's label; an index that cannot be read says so in the label."""
    try:
        rows = document_rows(service)
    except StoreError as exc:
        return [], f"已索引的文档（无法读取：{store_message(exc)}）"
    return rows, f"已索引的文档（{len(rows)} 个）"


def _listed(service: Service) -> Any:
    rows, label = _rows_or_problem(service)
    return gr.Dataframe(value=rows, label=label)


def knowledge_tab(service: Service) -> None:
    """The documents table; with an admin token configured, a 管理 section to upload, re-index and delete."""
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
    if not service.guard.admin_enabled:  # no admin token configured: nothing to manage, nothing shown
        refresh.click(lambda: _listed(service), None, [table], api_visibility="private")
        return
    with gr.Accordion("管理", open=False, elem_id="coopbot-admin"):
        _admin_form(service, table, refresh, rows)


def _admin_form(service: Service, table: Any, refresh: Any, rows: list[list[Any]]) -> None:
    """Upload, re-index and delete, each checked against the admin token typed here."""
    gr.Markdown("上传、重建索引和删除需要管理令牌；上传文件前请先在 [/login](/login) 登录。")
    token = gr.Textbox(label="管理令牌", type="password", elem_id="coopbot-admin-token")
    largest_mb = service.settings.server.max_upload_mb
    with gr.Row():
        with gr.Column():
            upload = gr.File(
                label=f"上传文档（{' '.join(SUPPORTED_SUFFIXES)}，不超过 {largest_mb:g} MB）",
                file_types=list(SUPPORTED_SUFFIXES),
                file_count="single",
                elem_id="coopbot-upload",
            )
            add = gr.Button("上传并索引", variant="primary")
        with gr.Column():
            force = gr.Checkbox(label="完全重建（重新嵌入全部段落，耗时数分钟）", value=False)
            rebuild = gr.Button("重建索引")
            choice = gr.Dropdown(  # value=None: nothing preselected (Gradio would pick the first document)
                choices=[r[1] for r in rows],
                value=None,
                label="要删除的文档",
                allow_custom_value=False,
            )
            remove = gr.Button("删除文档", variant="stop")
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
