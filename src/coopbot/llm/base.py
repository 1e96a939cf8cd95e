"""What every answer backend is: a chat model that streams text pieces behind a deadline.

Backends live beside this module (`openai`, `local`, `langchain`) and are chosen in `factory`. Nothing
here imports a model library: choosing a backend loads nothing, and a backend's failure is always a
`GenerationError` whose message (Chinese) says why, so the answering core can fall back to quotes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Message = dict[str, str]
ModelState = Literal["remote", "starting", "ready", "restarting", "failed", "stopped"]


@dataclass(frozen=True)
class ModelStatus:
    """What `/healthz` shows of the answer model: its state and, for a process coopbot runs, its pid."""

    state: ModelState
    pid: int | None = None
    restarts: int = 0
    detail: str = ""


class GenerationError(RuntimeError):
    """The backend could not produce an answer. The message (Chinese) is for the operator's log and the CLI: it
    may name the upstream URL and quote its error body. `reason` is what a reader of the answer sees: nothing
    from inside unless the raiser chose a safe wording (限流, 无法连接)."""

    default_reason = "生成模型暂时不可用"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason


class GenerationTimeout(GenerationError):
    """No token arrived within the deadline."""

    default_reason = "生成模型没有及时响应"


class BackendConfigError(ValueError):
    """A backend cannot be set up as configured (e.g. a missing extra); the message says what to install."""


class Generator(Protocol):
    """A chat model that streams text pieces; `stream` raises `GenerationError` on any failure."""

    @property
    def name(self) -> str:
        """The backend's name as `Answer.backend` reports it."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in a prompt (exact for llama.cpp, an estimate for a remote endpoint)."""
        ...

    def stream(self, messages: Sequence[Message], *, max_tokens: int, timeout_s: float) -> Iterator[str]:
        """Text pieces of the reply; at most `timeout_s` of silence before the first and between pieces."""
        ...

    def status(self) -> ModelStatus:
        """The model's state for `/healthz` (a remote endpoint is not probed: "remote")."""
        ...

    def close(self) -> None:
        """Release what the backend holds (a model process is stopped); safe to call twice."""
        ...


# ---------------------------------------------------------------------------------------------------
# Deadlines


_DONE = object()


def deadline_stream(
    produce: Callable[[threading.Event], Iterator[str]],
    timeout_s: float,
    *,
    total_s: float | None = None,
    what: str = "模型",
) -> Iterator[str]:
    """Run `produce` in a worker thread and hand its pieces over with a deadline per piece (and overall).

    The worker gets a cancel event it must check between pieces; on a timeout or when the consumer
    stops early it is set, so the model stops at its next token instead of running on.
    """
    pieces: queue.Queue[object] = queue.Queue()
    cancel = threading.Event()

    def work() -> None:
        try:
            for piece in produce(cancel):
                if cancel.is_set():
                    break
                pieces.put(piece)
            pieces.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            pieces.put(exc)

    worker = threading.Thread(target=work, name="coopbot-generate", daemon=True)
    began = time.monotonic()
    worker.start()
    try:
        while True:
            wait = timeout_s
            if total_s is not None:
                wait = min(wait, total_s - (time.monotonic() - began))
            try:
                item = pieces.get(timeout=max(wait, 0.0))
            except queue.Empty:
                message = f"{what}在 {min(timeout_s, total_s or timeout_s):g} 秒内没有响应。"
                raise GenerationTimeout(message, reason=message) from None
            if item is _DONE:
                return
            if isinstance(item, GenerationError):
                raise item
            if isinstance(item, BaseException):
                raise GenerationError(f"{what}出错：{type(item).__name__}: {item}") from item
            assert isinstance(item, str)
            yield item
    finally:
        cancel.set()


def estimate_tokens(text: str) -> int:
    """Tokens of `text` without a tokenizer: Qwen-style tokenizers take about 0.75 per Chinese character
    and about one per four other characters; rounded up, so a budget is rather kept than exceeded."""
    cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
    return int(cjk * 0.8 + (len(text) - cjk) / 3.5) + 1
