"""What the web server shares between every request: one Assistant, the knowledge base, feedback, auth.

Answers are CPU-bound, so at most `server.answer_workers` are computed at once and the rest wait in line
(up to `server.answer_wait_seconds`, then `Busy`); index changes take the knowledge base's write lock, so no
answer reads a half-rewritten index. The UI and the API only translate to and from these calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from coopbot.assistant import Assistant, build_assistant
from coopbot.config import Settings
from coopbot.ingest.documents import KnowledgeBase
from coopbot.schema import Answer, AnswerEvent, Hit, Turn, final_answer
from coopbot.web.auth import Guard
from coopbot.web.feedback import Feedback, FeedbackStore, Vote

log = logging.getLogger("coopbot.web.server")
_WARM_BATCH = 64


class Busy(RuntimeError):
    """Every answer slot stayed taken for `server.answer_wait_seconds` (HTTP 503); the message says to retry."""


class Service:
    """The one Assistant and its companions, safe to call from many threads."""

    def __init__(self, settings: Settings, assistant: Assistant | None = None) -> None:
        self.settings = settings
        self.assistant = assistant or build_assistant(settings)
        self.guard = Guard(settings)
        self.feedback = FeedbackStore(settings.data_dir / "feedback.jsonl")
        self.knowledge = KnowledgeBase(settings, index=self.assistant.retriever.index, embedder=self.assistant.embedder)
        self._slots = threading.BoundedSemaphore(settings.server.answer_workers)
        self.started = time.time()
        self.warmed = False
        self._closing = threading.Event()

    def _enter(self) -> float:
        """Take an answer slot and a read lock on the index, or raise Busy; returns the deadline."""
        deadline = time.monotonic() + self.settings.server.answer_wait_seconds
        if not self._slots.acquire(timeout=self.settings.server.answer_wait_seconds):
            raise Busy("服务器繁忙：请稍后再试。")
        if not self.knowledge.lock.acquire_read(timeout=max(0.0, deadline - time.monotonic())):
            self._slots.release()
            raise Busy("知识库正在更新：请稍后再试。")
        return deadline

    def _leave(self) -> None:
        self.knowledge.lock.release_read()
        self._slots.release()

    def stream(self, question: str, history: Sequence[Turn] = ()) -> Iterator[AnswerEvent]:
        """`Assistant.stream` within a slot: `Delta`s, then the `Final` answer. Raises QuestionError, Busy."""
        self._enter()
        try:
            yield from self.assistant.stream(question, history)
        finally:
            self._leave()

    def ask(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        return final_answer(self.stream(question, history))

    def search(self, query: str, k: int) -> list[Hit]:
        self._enter()
        try:
            return self.assistant.retriever.search(query, k)
        finally:
            self._leave()

    def vote(self, answer: Answer, vote: Vote) -> None:
        self.feedback.record(Feedback.of(answer, vote))

    def warm_up(self) -> threading.Thread:
        """Embed the sentences of every indexed passage in a background thread at the lowest CPU priority.

        The answer composer scores each sentence of the top passages by embedding similarity and keeps
        the vectors (`Embedder.embed_sentences`); a cold server pays ~1-3 s of CPU per new question for
        them. Warming uses idle CPU only (nice 19 for this thread on Linux) and stops at `close()`.
        """
        thread = threading.Thread(target=self._warm, name="coopbot-warm-up", daemon=True)
        thread.start()
        return thread

    def _warm(self) -> None:
        from coopbot.text.sentences import split_sentences

        with contextlib.suppress(OSError, AttributeError):  # Linux: a thread's own priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        began = time.perf_counter()
        minimum = self.settings.answer.min_sentence_chars
        sentences: list[str] = []
        for stored in self.knowledge.index.chunks():
            text = stored.chunk.text
            sentences += [text[s:e] for s, e in split_sentences(text) if e - s >= minimum]
        sentences = list(dict.fromkeys(sentences))
        for start in range(0, len(sentences), _WARM_BATCH):
            if self._closing.is_set():
                return
            self.assistant.embedder.embed_sentences(sentences[start : start + _WARM_BATCH])
        self.warmed = True
        log.info("预热完成：%d 个句子的向量，用时 %.0f 秒", len(sentences), time.perf_counter() - began)

    def close(self) -> None:
        """Stop warming up and stop the local model process (no orphan outlives the server)."""
        self._closing.set()
        self.assistant.close()

    def health(self) -> dict[str, Any]:
        """What `/healthz` reports: alive, the answer backend and its model's state, the index size."""
        documents = self.knowledge.list()
        generator = self.assistant.generator
        model = dataclasses.asdict(generator.status()) if generator is not None else None
        return {
            "status": "ok",
            "backend": self.assistant.backend_name,
            "model": model,
            "documents": len(documents),
            "chunks": sum(d.chunks for d in documents),
            "indexing": self.knowledge.lock.writing,
            "warmed": self.warmed,
            "uptime_s": round(time.time() - self.started, 1),
        }
