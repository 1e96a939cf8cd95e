"""One generated answer: prompt, stream, checked sentences, and what it adds up to.

Raises `GenerationError` only while nothing has been shown (the caller falls back to extractive).
A failure after that keeps the checked sentences so far and reports the failure in `Generated.failed`,
so the caller can finish the answer with quotes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from coopbot.answering.citations import UNSUPPORTED_MARK, Attacher, CitationRule
from coopbot.answering.extractive import ScoredSentence
from coopbot.answering.prompt import build_prompt
from coopbot.config import AnswerSettings, LLMSettings
from coopbot.llm.base import GenerationError, Generator
from coopbot.schema import Citation, SentenceSupport

log = logging.getLogger(__name__)


@dataclass
class Generated:
    """What a generated answer adds up to; the chain turns it into an `Answer`."""

    text: str
    citations: list[Citation]
    support: list[SentenceSupport]
    refused: bool  # the model said the passages do not answer (or wrote nothing usable)
    ungrounded: bool  # refused without the model declining: it wrote nothing the passages support
    notices: list[str]
    timings: dict[str, float]
    failed: str | None = None  # the backend failed after some sentences were shown: why, for readers (quotes follow)


def generate(
    generator: Generator,
    question: str,
    sentences: Sequence[ScoredSentence],
    answer: AnswerSettings,
    llm: LLMSettings,
    stop: threading.Event | None = None,
) -> Iterator[str | Generated]:
    """Stream checked sentences, then the `Generated` summary. `stop`, once set, ends the model's stream at
    its next piece (closed, so a model server stops writing); what was checked so far stays the answer.

    Raises `GenerationError` only while nothing has been shown (the caller falls back to extractive);
    a failure after that keeps the checked sentences so far and names the failure in `Generated.failed`.
    """
    began = time.perf_counter()
    prompt = build_prompt(question, sentences, generator.count_tokens, llm.prompt_tokens)
    prompt_ready = time.perf_counter()
    attacher = Attacher(prompt.passages, CitationRule.from_settings(answer), answer.unsupported_sentences, question)
    failed: str | None = None
    first_token: float | None = None
    pieces = 0
    shown_any = False
    stream = generator.stream(prompt.messages, max_tokens=llm.max_tokens, timeout_s=llm.timeout_s)
    try:
        for piece in stream:
            if first_token is None:
                first_token = time.perf_counter()
            pieces += 1
            text = attacher.feed(piece)
            if text:
                shown_any = True
                yield text
            if attacher.refused or (stop is not None and stop.is_set()):
                break
        # Stopped: the sentence being written stays unwritten (a fragment is not an answer); the rest settles.
        text = attacher.release_held() if stop is not None and stop.is_set() and attacher.shown else attacher.finish()
        if text:
            yield text
    except GenerationError as exc:
        if not shown_any:
            raise
        text = attacher.release_held()
        if text:
            yield text
        log.warning("answer model failed mid-answer: %s", exc)
        failed = exc.reason
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    done = time.perf_counter()
    notices = _notices(attacher)
    timings = {
        "prompt_ms": round((prompt_ready - began) * 1000, 1),
        "first_token_ms": round(((first_token or done) - prompt_ready) * 1000, 1),
        "generate_ms": round((done - prompt_ready) * 1000, 1),
        "generated_tokens": float(pieces),  # stream pieces: one token each from llama.cpp and most servers
        "prompt_tokens": float(prompt.tokens),
        "passages": float(len(prompt.passages)),
    }
    yield Generated(
        attacher.text,
        attacher.citations(),
        attacher.support,
        attacher.refused,
        attacher.ungrounded,
        notices,
        timings,
        failed,
    )


def _notices(attacher: Attacher) -> list[str]:
    """What the reader should know about the sentences that were held back, dropped or flagged."""
    notices = []
    if attacher.echoed:
        notices.append(f"省略了 {attacher.echoed} 句复述问题的话：问题里的要求不会被当作指令执行。")
    flagged = sum(not s.supported for s in attacher.support) - attacher.dropped
    if attacher.dropped:
        notices.append(f"删去了 {attacher.dropped} 句在资料中找不到依据的话。")
    if flagged > 0:
        notices.append(f"标有 {UNSUPPORTED_MARK} 的句子在资料中找不到依据，请谨慎对待。")
    return notices
