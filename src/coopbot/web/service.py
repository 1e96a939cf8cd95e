"""What the web server shares between every request: one Assistant, the knowledge base, feedback, auth.

Answers are CPU-bound, so at most `server.answer_workers` are computed at once and a bounded line waits
(`web.admission`: beyond it a request is told `Busy` at once; a waiting one gives up after
`server.answer_wait_seconds` counted from its arrival). The async faces compute answers on threads of their
own (`run`), never on the thread pool every other route shares, so a crowd of questions cannot starve them;
`/healthz` reads the index's state from `web.health` without touching the store. Index changes take the
knowledge base's write lock, so no answer reads a half-rewritten index. The UI and the API only translate
to and from these calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Sequence
from typing import Any, TypeVar

import anyio

from coopbot.assistant import Assistant, build_assistant
from coopbot.config import Settings
from coopbot.index.chroma import StoreError, StoreUnavailable
from coopbot.ingest.documents import KnowledgeBase
from coopbot.schema import Answer, AnswerEvent, Hit, Turn, final_answer
from coopbot.web.admission import Admission, Busy, Ticket
from coopbot.web.auth import Guard
from coopbot.web.feedback import Feedback, FeedbackStore, Vote
from coopbot.web.health import IndexHealth, StoreProbe

__all__ = ["Busy", "Service"]

log = logging.getLogger("coopbot.web.server")
_WARM_BATCH = 64
HEALTH_WAIT = 0.25  # seconds `/healthz` waits for a due index check before showing the last one
_T = TypeVar("_T")


class Service:
    """The one Assistant and its companions, safe to call from many threads."""

    def __init__(self, settings: Settings, assistant: Assistant | None = None) -> None:
        self.settings = settings
        self.assistant = assistant or build_assistant(settings)
        self.guard = Guard(settings)
        self.feedback = FeedbackStore(settings.data_dir / "feedback.jsonl")
        self.knowledge = KnowledgeBase(settings, index=self.assistant.retriever.index, embedder=self.assistant.embedder)
        server = settings.server
        self.admission = Admission(server.answer_workers, server.answer_queue, server.answer_wait_seconds)
        self.probe = StoreProbe(self._index_size)
        self._limiter: tuple[Admission, anyio.CapacityLimiter] | None = None
        self.started = time.time()
        self.warmed = False
        self._closing = threading.Event()

    # -- answers, from any thread ------------------------------------------------------------------

    @contextlib.contextmanager
    def _answering(self, ticket: Ticket | None) -> Iterator[None]:
        """Wait for a slot (Busy at the deadline), read-lock the index, and free both whatever happens."""
        ticket = ticket or self.admission.admit()
        try:
            ticket.take()
            if not self.knowledge.lock.acquire_read(timeout=ticket.remaining()):
                raise Busy("知识库正在更新：请稍后再试。", 5)
            try:
                yield
            except StoreUnavailable as exc:
                self.probe.failed(exc)
                raise
            finally:
                self.knowledge.lock.release_read()
        finally:
            ticket.close()

    def stream(
        self,
        question: str,
        history: Sequence[Turn] = (),
        ticket: Ticket | None = None,
        stop: threading.Event | None = None,
    ) -> Generator[AnswerEvent, None, None]:
        """`Assistant.stream` within a slot: `Delta`s, then the `Final` answer. Raises QuestionError, Busy,
        StoreUnavailable. Without a `ticket` the request is admitted when the first event is asked for."""
        with self._answering(ticket):
            yield from self.assistant.stream(question, history, stop)

    def ask(self, question: str, history: Sequence[Turn] = (), ticket: Ticket | None = None) -> Answer:
        return final_answer(self.stream(question, history, ticket))

    def search(self, query: str, k: int, ticket: Ticket | None = None) -> list[Hit]:
        with self._answering(ticket):
            return self.assistant.retriever.search(query, k)

    # -- answers, from the event loop --------------------------------------------------------------

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """`fn(*args)` on the answer threads: not the pool every other route shares. Their number is bounded
        by admission (slots + line), and the limiter is sized to never be the one that makes them wait."""
        admission = self.admission
        if self._limiter is None or self._limiter[0] is not admission:
            self._limiter = (admission, anyio.CapacityLimiter(2 * admission.workers + admission.queue))
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter[1])

    async def astream(self, question: str, history: Sequence[Turn] = ()) -> AsyncGenerator[AnswerEvent, None]:
        """`stream` for the event loop: admitted at once (or Busy), each step computed on the answer threads."""
        ticket = self.admission.admit()
        stop = threading.Event()
        events = self.stream(question, history, ticket, stop)

        def close(step: asyncio.Future[AnswerEvent | None] | None = None) -> None:
            if step is not None and not step.cancelled():
                step.exception()  # retrieved, so asyncio does not report it: nobody is waiting for this step
            events.close()  # a suspended stream releases its slot and lock (and the model's stream)
            ticket.close()  # ... and one never started gives up its place in line here

        step: asyncio.Future[AnswerEvent | None] | None = None
        try:
            while True:
                step = asyncio.ensure_future(self.run(next, events, None))
                # Shielded: a cancelled caller (停止生成, a client gone) must not abandon the thread mid-step,
                # or the stream could not be closed ("generator already executing") and would run on.
                event = await asyncio.shield(step)
                if event is None:
                    break
                yield event
        finally:
            if step is not None and not step.done():
                stop.set()  # the model stops at its next piece, the step returns, then the stream is closed
                step.add_done_callback(close)
            else:
                close()

    async def aask(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        ticket = self.admission.admit()
        try:
            return await self.run(self.ask, question, history, ticket)
        finally:
            ticket.close()

    async def asearch(self, query: str, k: int) -> list[Hit]:
        ticket = self.admission.admit()
        try:
            return await self.run(self.search, query, k, ticket)
        finally:
            ticket.close()

    def vote(self, answer: Answer, vote: Vote) -> None:
        self.feedback.record(Feedback.of(answer, vote))

    def warm_up(self) -> threading.Thread:
        """Embed the sentences of every indexed passage in a background thread at the lowest CPU priority.

        The answer composer scores each sentence of the top passages by embedding similarity and keeps
        the vectors (`Embedder.embed_sentences`); a cold server pays ~1-3 s of CPU per new question for
        them. Warming uses idle CPU only (nice 19 for this thread on Linux) and stops at `close()`.
        """
        thread = threading.Thread(target=self._warm_safely, name="coopbot-warm-up", daemon=True)
        thread.start()
        return thread

    def _warm_safely(self) -> None:
        try:
            self._warm()
        except StoreError as exc:  # the index broke meanwhile: answers say so; warming is only an optimisation
            log.warning("预热中止：%s", exc)

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

    # -- health ------------------------------------------------------------------------------------

    def _index_size(self) -> tuple[int, int]:
        """What the health check asks the store: documents and chunks (metadata only)."""
        documents = self.knowledge.list()
        return len(documents), sum(d.chunks for d in documents)

    def health(self, wait: float = 5.0) -> dict[str, Any]:
        """What `/healthz` reports, from a thread (waits up to `wait` seconds for a due index check)."""
        return self._health_body(self.probe.health(wait))

    async def ahealth(self) -> dict[str, Any]:
        """`/healthz` on the event loop: never waits on the store, at most `HEALTH_WAIT` for a due check."""
        return self._health_body(await self.probe.ahealth(HEALTH_WAIT))

    def _health_body(self, index: IndexHealth | None) -> dict[str, Any]:
        """Alive; "degraded" with the cause and what to do when the index cannot be used; the answer backend and
        its model's state, the index size (the last known one while degraded), the answer line."""
        generator = self.assistant.generator
        model = dataclasses.asdict(generator.status()) if generator is not None else None
        degraded = index is not None and not index.ok
        return {
            "status": "degraded" if degraded else "ok",
            "cause": index.cause if degraded and index is not None else None,
            "hint": index.hint if degraded and index is not None else None,
            "backend": self.assistant.backend_name,
            "model": model,
            "documents": index.documents if index is not None else None,
            "chunks": index.chunks if index is not None else None,
            "index_checked_s_ago": round(time.monotonic() - index.checked, 1) if index is not None else None,
            "indexing": self.knowledge.lock.writing,
            "answers": self.admission.snapshot(),
            "warmed": self.warmed,
            "uptime_s": round(time.time() - self.started, 1),
        }
