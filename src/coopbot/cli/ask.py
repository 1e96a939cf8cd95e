"""`coopbot ask` and `chat`: answers streamed to the terminal, with their sources.

Imports nothing from `coopbot.web`; the assistant and its models only inside the commands.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from coopbot.cli.common import JsonFlag, console, fail, load_settings, print_json
from coopbot.config import Settings, offline
from coopbot.schema import Answer, Delta, Final, Turn


def open_assistant(settings: Settings) -> Any:
    """The assistant for `settings`, or exit 1 saying why it cannot start."""
    from coopbot.assistant import build_assistant
    from coopbot.index.chroma import StoreError
    from coopbot.index.embedder import EmbeddingError
    from coopbot.llm.base import BackendConfigError

    try:
        return build_assistant(settings)
    except (StoreError, EmbeddingError, BackendConfigError) as exc:
        fail(str(exc))


def _print_sources(answer: Answer) -> None:
    out = Console(soft_wrap=True)
    if answer.refused:
        for hit in answer.related:
            out.print(f"[dim]相关：{hit.chunk.doc_id} > {' > '.join(hit.chunk.heading_path[1:])}[/]", highlight=False)
        return
    for citation in answer.citations:
        path = " > ".join(citation.heading_path)
        out.print(f"[bold][{citation.n}][/] {citation.doc_file}  [dim]{path}[/]", highlight=False)
        out.print(f"    “{citation.quote}”", highlight=False, markup=False)
    for notice in answer.notices:
        out.print(f"[yellow]{notice}[/]", highlight=False)
    if answer.backend != "extractive" or answer.fallback_from:
        fallback = f"（{answer.fallback_from} 失败，改用摘录）" if answer.fallback_from else ""
        rate = f"有出处的句子 {answer.supported_rate:.0%}"
        out.print(f"[dim]回答方式：{answer.backend}{fallback}，{rate}[/]", highlight=False)


def _answer_once(assistant: Any, question: str, history: list[Turn]) -> Answer:
    """Stream one answer to the terminal and return it."""
    from coopbot.assistant import QuestionError

    final = None
    try:
        for event in assistant.stream(question, history):
            match event:
                case Final(answer):
                    final = answer
                case Delta(text):
                    sys.stdout.write(text)
                    sys.stdout.flush()
    except QuestionError as exc:
        fail(str(exc))
    assert final is not None
    sys.stdout.write("\n")
    _print_sources(final)
    return final


def ask_command(
    question: Annotated[str, typer.Argument(help="The question, in Chinese.")],
    as_json: JsonFlag = False,
) -> None:
    """Answer one question from the knowledge base, with checked citations (or say it is not covered)."""
    offline()
    settings = load_settings()
    assistant = open_assistant(settings)
    if not as_json:
        _answer_once(assistant, question, [])
        return
    from coopbot.assistant import QuestionError

    try:
        result = assistant.ask(question)
    except QuestionError as exc:
        fail(str(exc))
    print_json(result.to_dict())


def chat_command() -> None:
    """Multi-turn questions in the terminal; follow-ups understand the previous turns (empty line quits)."""
    offline()
    settings = load_settings()
    assistant = open_assistant(settings)
    console.print("coopbot：请输入问题（空行或 Ctrl-D 退出）", highlight=False)
    history: list[Turn] = []
    while True:
        try:
            question = input("问题> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not question:
            break
        result = _answer_once(assistant, question, history)
        history += [Turn("user", question), Turn("assistant", result.text)]
