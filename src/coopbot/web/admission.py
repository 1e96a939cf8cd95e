"""Admission control for answers: a few computed at once, a bounded line waiting, everyone else told at once.

At most `workers` answers are computed at the same time and at most `queue` more wait for a slot; a
request beyond that gets `Busy` (HTTP 503 with Retry-After) immediately instead of joining a line it
could never leave in time. A waiting request gives up at its deadline, counted from when it arrived,
so time spent in any line counts. Safe to use from many threads; `Ticket.close` is idempotent.
"""

from __future__ import annotations

import math
import threading
import time

_SMOOTHING = 0.2  # weight of the newest answer in the running mean of answer seconds


class Busy(RuntimeError):
    """No answer slot for this request (HTTP 503); the message says to retry, `retry_after` when (seconds)."""

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    """`workers` answer slots and a waiting line of at most `queue` requests."""

    def __init__(self, workers: int, queue: int, wait_seconds: float) -> None:
        self.workers, self.queue, self.wait_seconds = workers, queue, wait_seconds
        self._cond = threading.Condition()
        self.active = 0  # answers being computed
        self.waiting = 0  # admitted, waiting for a slot
        self.rejected = 0  # turned away at once, since start
        self.timed_out = 0  # gave up waiting, since start
        self._mean_seconds = 2.0  # running mean of how long an answer holds its slot

    def admit(self, arrived: float | None = None) -> Ticket:
        """A place in line (cheap, never blocks), or `Busy` when the slots and the line are full."""
        with self._cond:
            if self.active + self.waiting >= self.workers + self.queue:
                self.rejected += 1
                raise Busy(
                    f"服务器繁忙：正在回答 {self.active} 个问题，另有 {self.waiting} 个在排队。请稍后再试。",
                    self.retry_after(),
                )
            self.waiting += 1
        began = time.monotonic() if arrived is None else arrived
        return Ticket(self, began + self.wait_seconds)

    def retry_after(self) -> int:
        """Seconds until the line has likely moved on by one full round (at least 1, at most the wait)."""
        rounds = (self.active + self.waiting + 1) / self.workers
        return max(1, min(math.ceil(rounds * self._mean_seconds), math.ceil(self.wait_seconds)))

    def snapshot(self) -> dict[str, int]:
        """What `/healthz` shows of the load."""
        with self._cond:
            return {
                "active": self.active,
                "waiting": self.waiting,
                "workers": self.workers,
                "queue": self.queue,
                "rejected": self.rejected,
                "timed_out": self.timed_out,
            }

    def _take(self, deadline: float) -> None:
        with self._cond:
            got = self._cond.wait_for(lambda: self.active < self.workers, timeout=max(0.0, deadline - time.monotonic()))
            self.waiting -= 1
            if not got:
                self.timed_out += 1
                self._cond.notify_all()
                raise Busy(
                    f"服务器繁忙：排队 {self.wait_seconds:g} 秒仍没有轮到这个问题。请稍后再试。", self.retry_after()
                )
            self.active += 1

    def _give_up(self) -> None:
        with self._cond:
            self.waiting -= 1
            self._cond.notify_all()

    def _release(self, held: float | None) -> None:
        with self._cond:
            self.active -= 1
            if held is not None:
                self._mean_seconds += _SMOOTHING * (held - self._mean_seconds)
            self._cond.notify_all()


class Ticket:
    """One admitted request: waiting, then holding a slot, then closed (whatever happened in between)."""

    def __init__(self, admission: Admission, deadline: float) -> None:
        self._admission = admission
        self.deadline = deadline
        self._state = "waiting"
        self._lock = threading.Lock()
        self._since = 0.0

    def remaining(self) -> float:
        """Seconds left before the deadline (0 when past)."""
        return max(0.0, self.deadline - time.monotonic())

    def take(self) -> None:
        """Block until a slot is free, or raise `Busy` at the deadline (the ticket is then closed)."""
        with self._lock:
            if self._state != "waiting":
                raise RuntimeError(f"a {self._state} ticket cannot take a slot")
            self._state = "taking"
        try:
            self._admission._take(self.deadline)
        except BaseException:
            with self._lock:
                self._state = "closed"
            raise
        with self._lock:
            closed = self._state == "closed"  # closed by another thread while this one waited
            if not closed:
                self._state, self._since = "active", time.monotonic()
        if closed:
            self._admission._release(None)
            raise Busy("请求已取消。")

    def close(self) -> None:
        """Leave the line or free the slot; safe to call more than once, from any thread."""
        with self._lock:
            state, self._state = self._state, "closed"
        if state == "waiting":
            self._admission._give_up()
        elif state == "active":
            self._admission._release(time.monotonic() - self._since)
