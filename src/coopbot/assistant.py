"""The question-answering core that the CLI, web and evaluation all call, and its one composition root.

`build_assistant` makes the parts from the settings (embedder, retriever, answer backend, rewriter).
`Assistant.stream` cleans the question, makes a follow-up standalone, retrieves, lets the refusal
gate decide, then composes an answer with checked citations: `Delta` events, then one `Final`.
`as_runnable` exposes the same stream as a LangChain Runnable. Imports the core rooms below it
(`answering`, `retrieval`, `llm`, `index`, `text`); never a face (`web`, `cli`) or `evals`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from coopbot.answering.extractive import ScoredSentence, compose, score_sentences
from coopbot.answering.gate import decide, refusal_text
from coopbot.answering.generate import generate
from coopbot.config import Settings
from coopbot.index.embedder import Embedder, cached_embedder, load_embedder
from coopbot.llm.base import GenerationError, Generator
from coopbot.llm.factory import make_generator
from coopbot.retrieval.retriever import Retriever
from coopbot.retrieval.rewrite import QueryRewriter, make_rewriter
from coopbot.schema import Answer, AnswerEvent, Citation, Delta, Final, Hit, SentenceSupport, Turn, final_answer
from coopbot.text.normalise import strip_control

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

log = logging.getLogger(__name__)
EMPTY_QUESTION = "问题是空的：请输入一个问题，例如“长三角一体化发展的战略定位是什么？”"


class QuestionError(ValueError):
    """The question cannot be asked as it is; the message says what to do."""


def clean_question(question: str, max_chars: int) -> tuple[str, list[str]]:
    """Strip control characters and extra spaces; truncate an overlong question with a notice."""
    text = re.sub(r"\s+", " ", strip_control(question)).strip()
    if not text:
        raise QuestionError(EMPTY_QUESTION)
    notices = []
    if len(text) > max_chars:
        text = text[:max_chars]
        notices.append(f"问题超过 {max_chars} 个字符，只使用了前 {max_chars} 个字符。")
    return text, notices


def bounded_history(history: Sequence[Turn], turns: int, max_chars: int) -> list[Turn]:
    """The last `turns` exchanges, each message cut to `max_chars`: the question limit must hold for what the
    retrieval query is made of too (a long earlier turn costs segmentation, BM25 and a paid model's tokens)."""
    recent = list(history)[-2 * turns :] if turns else []
    return [Turn(turn.role, turn.content[:max_chars]) for turn in recent]


@dataclass
class _Draft:
    """The parts of an answer that change while it is being written; `Assistant.stream` builds the `Answer` once."""

    backend: str
    text: str = ""
    citations: list[Citation] = field(default_factory=list)
    support: list[SentenceSupport] = field(default_factory=list)
    refused: bool = True
    fallback_from: str = ""
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def fall_back(self, backend: str, notice: str) -> None:
        """Mark the answer as the extractive one standing in for `backend`, saying why."""
        self.fallback_from, self.backend = backend, "extractive"
        self.notices.append(notice)


class Assistant:
    """Retrieval, refusal gate and answer composer, configured once and shared by every front end."""

    def __init__(
        self,
        settings: Settings,
        *,
        retriever: Retriever,
        embedder: Embedder,
        generator: Generator | None,
        rewriter: QueryRewriter,
    ) -> None:
        """The parts come from `build_assistant`; `generator` None answers extractively."""
        self.settings = settings
        self.embedder = embedder
        self.retriever = retriever
        self.generator = generator
        self.rewriter = rewriter

    @property
    def backend_name(self) -> str:
        """The answer backend in use, shown by the UI and `/healthz`; `Answer.backend` names the one that answered."""
        return self.generator.name if self.generator is not None else "extractive"

    def close(self) -> None:
        """Stop what the assistant started (the local model process); safe to call twice."""
        if self.generator is not None:
            self.generator.close()

    def ask(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """The whole answer at once."""
        return final_answer(self.stream(question, history))

    def stream(
        self, question: str, history: Sequence[Turn] = (), stop: threading.Event | None = None
    ) -> Iterator[AnswerEvent]:
        """`Delta` text pieces as they are ready, then one `Final` with the complete `Answer` (with citations).

        `stop` set while the model writes ends its stream at the next piece (the reader pressed 停止生成)."""
        limit = self.settings.retrieval.max_question_chars
        text, notices = clean_question(question, limit)
        recent = bounded_history(history, self.settings.retrieval.history_turns, limit)
        query = self.rewriter(text, recent)[-limit:]  # the question comes last: earlier turns give way

        began = time.perf_counter()
        hits = self.retriever.search(query, k=self.settings.answer.top_k)
        retrieved = time.perf_counter()
        draft = _Draft(backend=self.backend_name, notices=notices)
        streamed = False
        rarity = self.retriever.lexical.idf
        sentences = score_sentences(query, text, hits, self.embedder, self.settings.answer, rarity)
        ranked = time.perf_counter()
        gate = self.settings.answer
        decision = decide(query, hits, sentences, rarity, gate.refusal_threshold, gate.gate)
        if decision.answer:
            if self.generator is not None:
                streamed = yield from self._generate(draft, query, sentences, stop)
            if draft.backend == "extractive" and not streamed:  # no model, or it failed before writing anything
                draft.text, draft.citations, draft.support = compose(query, sentences, self.settings.answer)
                draft.refused = not draft.text
        related: list[Hit] = []
        if draft.refused:  # nothing is cited for a refusal: the closest passages are shown as related only
            draft.text, draft.citations, draft.support, related = refusal_text(query, hits), [], [], hits[:3]
        timings = {
            "retrieve_ms": round((retrieved - began) * 1000, 1),
            "rank_ms": round((ranked - retrieved) * 1000, 1),  # scoring the passages' sentences
            "answer_ms": round((time.perf_counter() - retrieved) * 1000, 1),
            **draft.timings,
        }
        if not streamed:
            yield from (Delta(line) for line in draft.text.splitlines(keepends=True))
        yield Final(
            Answer(
                question=text,
                text=draft.text,
                citations=draft.citations,
                refused=draft.refused,
                related=related,
                backend=draft.backend,
                fallback_from=draft.fallback_from,
                query=query,
                support=draft.support,
                notices=draft.notices,
                timings=timings,
                answerability=round(decision.answerability, 4),
                retrieved=hits,
            )
        )

    def _generate(
        self, draft: _Draft, query: str, sentences: list[ScoredSentence], stop: threading.Event | None
    ) -> abc.Generator[Delta, None, bool]:
        """The model writes, code cites (`answering.generate`); returns whether any text was streamed.

        A failure before the first sentence marks the answer for the extractive composer, with a notice;
        a failure after it (the model process died mid-answer) keeps the checked sentences and finishes
        the answer with the extractive one, so the reader still gets a whole answer.
        """
        assert self.generator is not None
        name = self.generator.name
        try:
            settings = self.settings
            for event in generate(self.generator, query, sentences, settings.answer, settings.llm, stop):
                if isinstance(event, str):
                    yield Delta(event)
                    continue
                draft.timings = event.timings
                if event.ungrounded:  # nothing shown: the verified extractive answer instead of a refusal
                    draft.fall_back(
                        name, f"生成模型（{name}）写出的回答在资料中找不到依据，没有采用；以下是摘录式回答。"
                    )
                    return False
                draft.text, draft.citations, draft.support = event.text, event.citations, event.support
                draft.refused = event.refused
                draft.notices += event.notices
                if event.failed is not None:
                    notice = (
                        f"生成模型（{name}）中途出错（{event.failed}）：上面是出错前已核对的句子，下面是摘录式回答。"
                    )
                    draft.fall_back(name, notice)
                    yield from self._append_quotes(draft, query, sentences)
        except GenerationError as exc:  # the cause (an upstream URL, its error body) is for the operator's log
            log.warning("answer model %s gave no answer: %s", name, exc)
            draft.fall_back(name, f"生成模型（{name}）没有给出回答（{exc.reason}），以下是摘录式回答。")
            return False
        return bool(draft.text) and not draft.refused

    def _append_quotes(self, draft: _Draft, query: str, sentences: list[ScoredSentence]) -> Iterator[Delta]:
        """After the model broke off: the extractive answer follows the sentences already shown, numbered on."""
        text, citations, support = compose(query, sentences, self.settings.answer)
        if not text:
            return
        offset = max((c.n for c in draft.citations), default=0)
        text = re.sub(r"\[(\d+)\]", lambda m: f"[{int(m.group(1)) + offset}]", text)
        addition = "\n\n" + text
        draft.text += addition
        draft.citations += [replace(c, n=c.n + offset) for c in citations]
        draft.support += [replace(s, citations=tuple(n + offset for n in s.citations)) for s in support]
        yield Delta(addition)

    def as_runnable(self) -> Runnable[dict[str, Any], AnswerEvent]:
        """LCEL: input {"question", "history": [{"role", "content"}]}; streams `Delta`s, then the `Final`."""
        from langchain_core.runnables import RunnableLambda

        def run(inputs: dict[str, Any]) -> Iterator[AnswerEvent]:
            history = [Turn(str(t["role"]), str(t["content"])) for t in inputs.get("history", [])]
            yield from self.stream(str(inputs["question"]), history)

        return RunnableLambda(run, name="coopbot")


def build_assistant(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    retriever: Retriever | None = None,
    generator: Generator | None = None,
    rewriter: QueryRewriter | None = None,
) -> Assistant:
    """The one composition root: the assistant the CLI, the web server and the evaluations all use.

    Parts not given are made from the settings: the embedding model (`index.embedding_model`), the retriever over
    the index, the answer backend (`llm`) and the follow-up rewriter (`query_rewriter`). Passing a part lets a
    caller share one (an already loaded embedder) or choose it (a test's scripted generator).
    """
    # Sentence vectors persist in the data dir: the composer scores the same passages' sentences
    # question after question, and a restarted server or a second evaluation run reuses them.
    embedder = cached_embedder(settings, embedder or load_embedder(settings))
    retriever = retriever or Retriever(settings, embedder=embedder)
    generator = generator if generator is not None else make_generator(settings)
    rewriter = rewriter or make_rewriter(settings.retrieval, generator)
    return Assistant(settings, retriever=retriever, embedder=embedder, generator=generator, rewriter=rewriter)
