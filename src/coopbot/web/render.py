"""What the chat shows, as HTML/Markdown strings: answers with clickable markers, sources, the footer.

Pure functions, no Gradio: every string that comes from a document or a user is escaped here before it
reaches the browser, so a document holding `<script>` or `<img onerror=...>` shows as text. The
conversation of one browser session (`Session`) lives here too, because the sources panel renders from it.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from coopbot.schema import Answer, Citation, Hit, Turn

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$])")  # < > & are left to html.escape
_MARKER = re.compile(r"\\\[(\d{1,3})\\\]")


def escape_markdown(text: str) -> str:
    """Text that Markdown and HTML both show literally: punctuation backslash-escaped, then <>& escaped."""
    return html.escape(_MARKDOWN_SPECIALS.sub(r"\\\1", text), quote=False)


# A sentence's end and its markers with the next sentence glued on ("…机制。[1]第二十一条…"); a marker
# inside a sentence ("据[1]，…") is left where it is.
_RUN_ON = re.compile(r"([。！？；!?;](?:\[\d{1,3}\])+)(?=[^\s\[])")


def render_answer(text: str, turn: int) -> str:
    """An answer for the chatbot: escaped, each cited sentence on its own line, each `[n]` a chip that links
    to passage n of this turn's sources."""
    return _MARKER.sub(
        lambda m: f'<a class="coopbot-cite" href="#coopbot-src-{turn}-{m.group(1)}">[{m.group(1)}]</a>',
        escape_markdown(_RUN_ON.sub("\\1\n", text)),
    )


def copy_text(answer: Answer) -> str:
    """What 复制回答 puts on the clipboard: the answer as plain text, then where each `[n]` comes from."""
    if not answer.citations:
        return answer.text
    lines = [answer.text, "", "参考来源："]
    for citation in answer.citations:
        place = section_path(citation.doc_title, citation.heading_path)
        where = citation.doc_title + (f" › {place}" if place else "") + f"（{citation.doc_file}）"
        lines.append(f"[{citation.n}] {where}：“{citation.quote}”")
    return "\n".join(lines)


def _passage_html(passage: str, quote: str) -> str:
    """The passage with the cited sentence highlighted (the quote comes from the passage itself)."""
    at = passage.find(quote) if quote else -1
    if at < 0:
        return html.escape(passage)
    before, after = passage[:at], passage[at + len(quote) :]
    return f"{html.escape(before)}<mark>{html.escape(quote)}</mark>{html.escape(after)}"


def section_path(title: str, heading_path: tuple[str, ...]) -> str:
    """The headings under the document's title ("第三章 › 第二节"): the title is shown on its own."""
    return " › ".join(heading_path[1:] if heading_path[:1] == (title,) else heading_path)


def _head(label: str, title: str, heading_path: tuple[str, ...], file: str) -> str:
    path = section_path(title, heading_path)
    return (
        f'<div class="coopbot-src-head"><span class="coopbot-n">{html.escape(label)}</span> '
        f"<b>{html.escape(title)}</b>"
        + (f" · {html.escape(path)}" if path else "")
        + f" · <code>{html.escape(file)}</code></div>"
    )


def render_citation(turn: int, citation: Citation) -> str:
    return (
        f'<div class="coopbot-source" id="coopbot-src-{turn}-{citation.n}">'
        + _head(f"[{citation.n}]", citation.doc_title, citation.heading_path, citation.doc_file)
        + f'<div class="coopbot-passage">{_passage_html(citation.passage, citation.quote)}</div></div>'
    )


def render_inline_sources(turn: int, answer: Answer) -> str:
    """The sources under the answer itself, folded (the embed has no room for a panel beside the chat):
    a click on `[n]` unfolds them and rings passage n, as in the panel."""
    if answer.citations:
        summary, body = f"参考来源（{len(answer.citations)}）", [render_citation(turn, c) for c in answer.citations]
    elif answer.related:
        summary, body = "最接近的资料（仅供参考，不是答案的依据）", [render_related(hit) for hit in answer.related]
    else:
        return ""
    return f'\n\n<details class="coopbot-refs"><summary>{summary}</summary>{"".join(body)}</details>'


def render_related(hit: Hit) -> str:
    chunk = hit.chunk
    return (
        '<div class="coopbot-source">'
        + _head("相关", chunk.doc_title, chunk.heading_path, chunk.doc_id)
        + f'<div class="coopbot-passage">{html.escape(chunk.text)}</div></div>'
    )


@dataclass
class Exchange:
    """One question and its final answer, kept per browser session."""

    question: str
    answer: Answer
    voted: bool = False  # one vote per answer: a second click changes nothing in the feedback file


@dataclass
class Session:
    """A browser session's conversation (gr.State): never shared between users."""

    exchanges: list[Exchange] = field(default_factory=list)

    def history(self) -> list[Turn]:
        turns: list[Turn] = []
        for exchange in self.exchanges:
            turns += [Turn("user", exchange.question), Turn("assistant", exchange.answer.text)]
        return turns


def render_sources(session: Session) -> str:
    """Every turn's sources, newest first; a refusal's passages are labelled as related, not as sources."""
    if not session.exchanges:
        return (
            '<div class="coopbot-sources"><p class="coopbot-related-note">'
            "回答引用的原文会显示在这里。点击回答中的 [n] 可定位到对应原文。</p></div>"
        )
    parts = ['<div class="coopbot-sources">']
    for turn in range(len(session.exchanges), 0, -1):
        exchange = session.exchanges[turn - 1]
        answer = exchange.answer
        latest = turn == len(session.exchanges)  # older turns start folded; a click on their [n] unfolds them
        parts.append(f'<details class="coopbot-turn" data-turn="{turn}"{" open" if latest else ""}>')
        parts.append(f'<summary class="coopbot-q">第 {turn} 问：{html.escape(exchange.question)}</summary>')
        if answer.refused:
            if answer.related:
                parts.append(
                    '<div class="coopbot-related"><p class="coopbot-related-note">没有找到能回答这个问题的内容。'
                    "以下是最接近的资料，仅供参考，不是答案的依据：</p>"
                )
                parts += [render_related(hit) for hit in answer.related]
                parts.append("</div>")
        else:
            parts += [render_citation(turn, citation) for citation in answer.citations]
        parts.append("</details>")
    parts.append("</div>")
    return "".join(parts)


_BACKENDS = {
    "extractive": "摘自知识库原文",
    "llamacpp": "由本地模型根据所引原文写成",
    "openai": "由语言模型根据所引原文写成",
    "langchain": "由语言模型根据所引原文写成",
}


def answer_footer(answer: Answer) -> str:
    """What follows a finished answer: its notices, then a quiet line saying how it was written, in Chinese
    (the backend's own name only in the tooltip); a fallback says the model did not answer."""
    notices = "".join(f"\n\n*{escape_markdown(notice)}*" for notice in answer.notices)
    label = _BACKENDS.get(answer.backend, "由语言模型根据所引原文写成")
    if answer.fallback_from:
        label = f"语言模型未能回答，{label}"
    names = answer.backend + (f" ← {answer.fallback_from}" if answer.fallback_from else "")
    return f'{notices}\n\n<span class="coopbot-footer" title="{html.escape(names)}">{html.escape(label)}</span>'
