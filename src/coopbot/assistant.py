"""The question-answering core that the CLI, UI, API and evaluation all call.

`Assistant.stream` cleans the question, makes a follow-up standalone, retrieves, lets the refusal
gate decide, then composes an answer with checked citations; `as_runnable` exposes the same thing
as a LangChain Runnable that streams text and ends with the `Answer`.
"""

from __future__ import annotations

import re
import time
from collections import abc
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
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
from coopbot.schema import Answer, Turn
from coopbot.text.normalise import strip_control

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

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


def final_answer(events: Iterable[str | Answer]) -> Answer:
    """Run a stream of text pieces to its end and return the `Answer` it closes with."""
    final = None
    for event in events:
        if isinstance(event, Answer):
            final = event
    if final is None:
        raise RuntimeError("the answer stream ended without an Answer")
    return final


class Assistant:
    """Retrieval, refusal gate and answer composer, configured once and shared by every front end."""

    def __init__(
        self,
        settings: Settings,
        *,
        retriever: Retriever | None = None,
        embedder: Embedder | None = None,
        rewriter: QueryRewriter | None = None,
        generator: Generator | None = None,
    ) -> None:
        """`generator` and `rewriter` default to what the settings choose (`llm`, `query_rewriter`)."""
        self.settings = settings
        # Sentence vectors persist in the data dir: the composer scores the same passages' sentences
        # question after question, and a restarted server or a second evaluation run reuses them.
        self.embedder = cached_embedder(settings, embedder or load_embedder(settings))
        self.retriever = retriever or Retriever(settings, embedder=self.embedder)
        self.generator = generator if generator is not None else make_generator(settings)
        self.rewriter = rewriter or make_rewriter(settings, self.generator)

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

    def stream(self, question: str, history: Sequence[Turn] = ()) -> Iterator[str | Answer]:
        """Text pieces as they are ready, then the complete `Answer` (with citations) last."""
        text, notices = clean_question(question, self.settings.max_question_chars)
        recent = list(history)[-2 * self.settings.history_turns :] if self.settings.history_turns else []
        query = self.rewriter(text, recent)

        began = time.perf_counter()
        hits = self.retriever.search(query, k=self.settings.answer_top_k)
        retrieved = time.perf_counter()
        result = Answer(
            question=text, text="", citations=[], refused=True, query=query, notices=notices, backend=self.backend_name
        )
        result.retrieved = hits
        streamed = False
        rarity = self.retriever.lexical.idf
        sentences = score_sentences(query, text, hits, self.embedder, self.settings, rarity)
        ranked = time.perf_counter()
        decision = decide(query, hits, sentences, rarity, self.settings)
        result.answerability = round(decision.answerability, 4)
        if decision.answer:
            if self.generator is not None:
                streamed = yield from self._generate(result, sentences)
            if result.backend == "extractive" and not streamed:  # no model, or it failed before writing anything
                result.text, result.citations, result.support = compose(query, sentences, self.settings)
                result.refused = not result.text
        if result.refused:  # nothing is cited for a refusal: the closest passages are shown as related only
            result.text = refusal_text(query, hits)
            result.citations, result.support, result.related = [], [], hits[:3]
        result.timings = {
            "retrieve_ms": round((retrieved - began) * 1000, 1),
            "rank_ms": round((ranked - retrieved) * 1000, 1),  # scoring the passages' sentences
            "answer_ms": round((time.perf_counter() - retrieved) * 1000, 1),
            **result.timings,
        }
        if not streamed:
            yield from result.text.splitlines(keepends=True)
        yield result

    def _generate(self, result: Answer, sentences: list[ScoredSentence]) -> abc.Generator[str, None, bool]:
        """The model writes, code cites (`answering.generate`); returns whether any text was streamed.

        A failure before the first sentence marks the answer for the extractive composer, with a notice;
        a failure after it (the model process died mid-answer) keeps the checked sentences and finishes
        the answer with the extractive one, so the reader still gets a whole answer.
        """
        assert self.generator is not None
        name = self.generator.name
        try:
            for event in generate(self.generator, result.query, sentences, self.settings):
                if isinstance(event, str):
                    yield event
                    continue
                result.timings = event.timings
                if event.ungrounded:  # nothing shown: the verified extractive answer instead of a refusal
                    _fall_back(
                        result, name, f"生成模型（{name}）写出的回答在资料中找不到依据，没有采用；以下是摘录式回答。"
                    )
                    return False
                result.text, result.citations, result.support = event.text, event.citations, event.support
                result.refused = event.refused
                result.notices += event.notices
                if event.failed is not None:
                    notice = (
                        f"生成模型（{name}）中途出错（{event.failed}）：上面是出错前已核对的句子，下面是摘录式回答。"
                    )
                    _fall_back(result, name, notice)
                    yield from self._append_quotes(result, sentences)
        except GenerationError as exc:
            _fall_back(result, name, f"生成模型（{name}）没有给出回答：{exc} 以下是摘录式回答。")
            return False
        return bool(result.text) and not result.refused

    def _append_quotes(self, result: Answer, sentences: list[ScoredSentence]) -> Iterator[str]:
        """After the model broke off: the extractive answer follows the sentences already shown, numbered on."""
        text, citations, support = compose(result.query, sentences, self.settings)
        if not text:
            return
        offset = max((c.n for c in result.citations), default=0)
        text = re.sub(r"\[(\d+)\]", lambda m: f"[{int(m.group(1)) + offset}]", text)
        addition = "\n\n" + text
        result.text += addition
        result.citations += [replace(c, n=c.n + offset) for c in citations]
        result.support += [replace(s, citations=tuple(n + offset for n in s.citations)) for s in support]
        yield addition

    def as_runnable(self) -> Runnable[dict[str, Any], str | Answer]:
        """LCEL: input {"question", "history": [{"role", "content"}]}; streams text, `invoke` gives the Answer."""
        from langchain_core.runnables import RunnableLambda

        def run(inputs: dict[str, Any]) -> Iterator[str | Answer]:
            history = [Turn(str(t["role"]), str(t["content"])) for t in inputs.get("history", [])]
            yield from self.stream(str(inputs["question"]), history)

        return RunnableLambda(run, name="coopbot")


def _fall_back(result: Answer, backend: str, notice: str) -> None:
    """Mark the answer as the extractive one standing in for `backend`, saying why."""
    result.fallback_from, result.backend = backend, "extractive"
    result.notices.append(notice)
