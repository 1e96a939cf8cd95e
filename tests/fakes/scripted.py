"""A generator that replays text: for tests about what the code does with a model's output, not the model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from coopbot.llm.base import GenerationError, Message, ModelStatus, estimate_tokens


class Scripted:
    """A generator that replays text pieces (and optionally fails after some): the model is not under test."""

    name = "scripted"

    def __init__(self, pieces: Sequence[str], fail_after: int | None = None, error: str = "断了") -> None:
        self.pieces = list(pieces)
        self.fail_after = fail_after
        self.error = error
        self.calls: list[Sequence[Message]] = []

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def stream(self, messages: Sequence[Message], *, max_tokens: int, timeout_s: float) -> Iterator[str]:
        self.calls.append(messages)
        for i, piece in enumerate(self.pieces):
            if self.fail_after is not None and i == self.fail_after:
                raise GenerationError(self.error, reason=self.error)
            yield piece

    def status(self) -> ModelStatus:
        return ModelStatus("remote", detail="scripted")

    def close(self) -> None:
        return None
