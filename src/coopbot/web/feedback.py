"""Thumbs up/down on answers, kept as JSON lines in the data dir for later evaluation.

One line per vote: the question, the answer text, its citations (file, heading path, quote), the vote
and the time. Append-only under a lock, so concurrent votes never interleave within a line. The chat takes
one vote per answer; past `max_bytes` the file moves to `feedback.jsonl.1` (replacing the one before), so
votes cannot fill the disk.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from coopbot.schema import Answer

Vote = Literal["up", "down"]


@dataclass(frozen=True)
class Feedback:
    """One vote on one answer."""

    question: str
    answer: str
    citations: list[dict[str, Any]]
    vote: Vote
    refused: bool = False
    backend: str = ""
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    @classmethod
    def of(cls, answer: Answer, vote: Vote) -> Feedback:
        citations = [
            {
                "n": c.n,
                "doc_file": c.doc_file,
                "doc_title": c.doc_title,
                "heading_path": list(c.heading_path),
                "quote": c.quote,
                "chunk_id": c.chunk_id,
            }
            for c in answer.citations
        ]
        return cls(answer.question, answer.text, citations, vote, answer.refused, answer.backend)


class FeedbackStore:
    """`data_dir/feedback.jsonl`, appended to by every front end."""

    def __init__(self, path: Path, max_bytes: int = 20 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    @property
    def previous(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def record(self, feedback: Feedback) -> None:
        if feedback.vote not in ("up", "down"):
            raise ValueError(f"vote must be 'up' or 'down', not {feedback.vote!r}")
        line = json.dumps(asdict(feedback), ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size + len(line.encode("utf-8")) > self.max_bytes:
                self.path.replace(self.previous)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line)

    def read(self) -> list[dict[str, Any]]:
        """Every vote kept, oldest first (for evaluation scripts and tests)."""
        with self._lock:
            lines = [
                line
                for path in (self.previous, self.path)
                if path.exists()
                for line in path.read_text(encoding="utf-8").splitlines()
            ]
        return [json.loads(line) for line in lines if line.strip()]
