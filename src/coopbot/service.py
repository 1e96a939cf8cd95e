"""What the web server shares between every request: one Assistant, the knowledge base, feedback, auth.

Answers are CPU-bound, so at most `answer_workers` are computed at once and the rest wait in line
(up to `answer_wait_seconds`, then `Busy`); index changes take the knowledge base's write lock, so no
answer reads a half-rewritten index. The UI and the API only translate to and from these calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from coopbot.auth import Guard
from coopbot.chain import Assistant
from coopbot.config import Settings
from coopbot.documents import KnowledgeBase
from coopbot.feedback import Feedback, FeedbackStore, Vote
from coopbot.schema import Answer, Hit, Turn


class Busy(RuntimeError):
    """Every answer slot stayed taken for `answer_wait_seconds` (HTTP 503); the message says to retry."""


class Service:
    """The one Assistant and its companions, safe to call from many threads."""

    def __init__(self, settings: Settings, assistant: Assistant | None = None) -> None:
        self.settings = settings
        self.assistant = assistant or Assistant(settings)
        self.guard = Guard(settings)
        self.feedback = FeedbackStore(settings.data_dir / "feedback.jsonl")
        self.knowledge = KnowledgeBase(settings, store=self.assistant.retriever.store, embedder=self.assistant.embedder)
        self._slots = threading.BoundedSemaphore(settings.answer_workers)
        self.started = time.time()

    def _enter(self) -> float:
        """Take an answer slot and a read lock on the index, or raise Busy; returns the deadline."""
        deadline = time.monotonic() + self.settings.answer_wait_seconds
        if not self._slots.acquire(timeout=self.settings.answer_wait_seconds):
            raise Busy("服务器繁忙：请稍后再试。")
        if not self.knowledge.lock.acquire_read(timeout=max(0.0, deadline - time.monotonic())):
            self._slots.release()
            raise Busy("知识库正在更新：请稍后再试。")
        return deadline

    def _leave(self) -> None:
        self.knowledge.lock.release_read()
        self._slots.release()

    def stream(self, question: str, history: Sequence[Turn] = ()) -> Iterator[str | Answer]:
        """`Assistant.stream` within a slot: text deltas, then the final Answer. Raises QuestionError, Busy."""
        self._enter()
        try:
            yield from self.assistant.stream(question, history)
        finally:
            self._leave()

    def ask(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        final = None
        for event in self.stream(question, history):
            if isinstance(event, Answer):
                final = event
        assert final is not None
        return final

    def search(self, query: str, k: int) -> list[Hit]:
        self._enter()
        try:
            return self.assistant.retriever.search(query, k)
        finally:
            self._leave()

    def vote(self, answer: Answer, vote: Vote) -> None:
        self.feedback.record(Feedback.of(answer, vote))

    def health(self) -> dict[str, Any]:
        """What `/healthz` reports: alive, the answer backend, the index size."""
        documents = self.knowledge.list()
        return {
            "status": "ok",
            "backend": self.assistant.backend_name,
            "documents": len(documents),
            "chunks": sum(d.chunks for d in documents),
            "indexing": self.knowledge.lock.writing,
            "uptime_s": round(time.time() - self.started, 1),
        }
