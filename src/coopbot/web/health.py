"""The index's health for `/healthz`, checked in a thread of its own and remembered for a few seconds.

`/healthz` must answer at once whatever the index does: it never calls the store itself. A check
(listing the documents) runs in its own thread at most every few seconds; the route waits a moment
for a due check and otherwise shows the last result. A check that hangs longer than `STALL_SECONDS`
is itself the news: the index does not answer. Answers that find the store broken report it at once
(`failed`), so health turns "degraded" with the same cause they got.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from coopbot.index.chroma import StoreError, StoreUnavailable

log = logging.getLogger("coopbot.web.server")

FRESH_SECONDS = 5.0  # a good check is repeated after this long (longer when checks are slow)
RECHECK_SECONDS = 1.0  # a failed check is repeated after this long, so recovery shows quickly
STALL_SECONDS = 10.0  # a check still running after this long means the index hangs
FIRST_SECONDS = 2.0  # before any outcome (just started), health waits up to this long for the first check


@dataclass(frozen=True)
class IndexHealth:
    """One check's outcome: the index's size, or what is wrong with it and what to do."""

    ok: bool
    checked: float  # time.monotonic() of the check
    documents: int | None = None
    chunks: int | None = None
    cause: str | None = None
    hint: str | None = None
    kind: str | None = None  # StoreUnavailable.kind, when that was the failure
    took: float = 0.0  # seconds the check took

    @classmethod
    def broken(cls, exc: BaseException, last: IndexHealth | None, took: float = 0.0) -> IndexHealth:
        """A failed check; the last known size is kept (what the index held before it broke)."""
        if isinstance(exc, StoreUnavailable):
            cause, hint, kind = exc.what, exc.hint, exc.kind
        elif isinstance(exc, StoreError):
            cause, hint, kind = str(exc), None, None
        else:
            cause, hint, kind = f"checking the index failed: {type(exc).__name__}: {exc}", "see the server log", None
        documents, chunks = (last.documents, last.chunks) if last is not None else (None, None)
        return cls(False, time.monotonic(), documents, chunks, cause, hint, kind, took)


class StoreProbe:
    """Runs `check` (returns documents, chunks) off the event loop and remembers its outcome."""

    def __init__(self, check: Callable[[], tuple[int, int]]) -> None:
        self._check = check
        self._lock = threading.Lock()
        self._last: IndexHealth | None = None
        self._running: concurrent.futures.Future[IndexHealth] | None = None
        self._since = 0.0

    def failed(self, exc: StoreError) -> None:
        """An answer or a listing found the store broken: show it now, without waiting for a check."""
        with self._lock:
            was, self._last = self._last, IndexHealth.broken(exc, self._last)
        if was is None or was.ok or was.cause != self._last.cause:
            log.error("索引不可用：%s", exc)

    def start(self) -> concurrent.futures.Future[IndexHealth]:
        """Start a check unless one is running; returns the running one."""
        with self._lock:
            if self._running is None:
                self._running, self._since = concurrent.futures.Future(), time.monotonic()
                threading.Thread(target=self._run, args=(self._running,), name="coopbot-health", daemon=True).start()
            return self._running

    def health(self, wait: float) -> IndexHealth | None:
        """The latest outcome, after waiting up to `wait` seconds for a due check (blocks: not on the event loop)."""
        running = self._due()
        if running is not None:
            concurrent.futures.wait([running], timeout=self._patience(wait))
        return self.current()

    async def ahealth(self, wait: float) -> IndexHealth | None:
        """`health` for the event loop: the wait is asynchronous, the check runs in its own thread."""
        running = self._due()
        if running is not None:
            await asyncio.wait([asyncio.wrap_future(running)], timeout=self._patience(wait))
        return self.current()

    def _patience(self, wait: float) -> float:
        """How long to wait for the running check: until it is `wait` old (`FIRST_SECONDS` before any outcome),
        so a check that hangs costs each caller nothing once it is that old."""
        with self._lock:
            budget = wait if self._last is not None else FIRST_SECONDS
            return max(0.0, self._since + budget - time.monotonic())

    def current(self) -> IndexHealth | None:
        """The last outcome, or a hang when a check has run past `STALL_SECONDS`; None before the first one."""
        with self._lock:
            last, running, since = self._last, self._running, self._since
        hanging = time.monotonic() - since if running is not None else 0.0
        if hanging > STALL_SECONDS:
            documents, chunks = (last.documents, last.chunks) if last is not None else (None, None)
            return IndexHealth(
                False,
                since,
                documents,
                chunks,
                f"the index has not answered for {hanging:.0f} s",
                "check the Chroma server (or the disk of the data dir) and the server log",
                "unreachable",
            )
        return last

    def _due(self) -> concurrent.futures.Future[IndexHealth] | None:
        with self._lock:
            last, running = self._last, self._running
        if running is not None:
            return running
        if last is not None:
            fresh = max(FRESH_SECONDS, 20 * last.took) if last.ok else RECHECK_SECONDS
            if time.monotonic() - last.checked < fresh:
                return None
        return self.start()

    def _run(self, done: concurrent.futures.Future[IndexHealth]) -> None:
        began = time.monotonic()
        try:
            documents, chunks = self._check()
            outcome = IndexHealth(True, time.monotonic(), documents, chunks, took=time.monotonic() - began)
        except BaseException as exc:  # any failure (a panic in native code too) is the index's state, never raised
            outcome = IndexHealth.broken(exc, self._last, time.monotonic() - began)
        with self._lock:
            was, self._last, self._running = self._last, outcome, None
        if outcome.ok and was is not None and not was.ok:
            log.info("索引已恢复：%d 个文档，%d 个段落", outcome.documents or 0, outcome.chunks or 0)
        elif not outcome.ok and (was is None or was.ok or was.cause != outcome.cause):
            log.error("索引不可用：%s %s", outcome.cause, outcome.hint or "")
        done.set_result(outcome)
