"""Evaluation cases over the knowledge base, and the judgements the tests and `coopbot eval` share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from coopbot.answering.citations import support_score
from coopbot.schema import Turn
from coopbot.text.normalise import comparable


class CaseError(ValueError):
    """A QA file that does not follow the format; the message names the line and the field."""


@dataclass(frozen=True)
class GoldQuote:
    """A verbatim passage of a knowledge file that answers a case."""

    file: str
    quote: str


@dataclass(frozen=True)
class QACase:
    """One question with its conversation so far, the passages that answer it and the points an answer needs.

    An empty `gold` means the knowledge base cannot answer: the right behaviour is a refusal.
    """

    id: str
    kind: str
    question: str
    history: tuple[Turn, ...]
    gold: tuple[GoldQuote, ...]
    answer_points: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.gold)


def _field(raw: dict[str, object], name: str, kind: type, where: str) -> object:
    if name not in raw:
        raise CaseError(f"{where}: missing field {name!r}")
    value = raw[name]
    if not isinstance(value, kind):
        raise CaseError(f"{where}: field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def load_qa_cases(path: Path) -> list[QACase]:
    """Read a JSONL file of QA cases, refusing a malformed one with its line number and field."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CaseError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(raw, dict):
            raise CaseError(f"{where}: a case must be a JSON object")
        history = []
        for turn in _field(raw, "history", list, where):  # type: ignore[attr-defined]
            if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
                raise CaseError(f"{where}: history turns need role 'user' or 'assistant' and content")
            history.append(Turn(turn["role"], str(turn.get("content", ""))))
        gold = []
        for item in _field(raw, "gold", list, where):  # type: ignore[attr-defined]
            if not isinstance(item, dict) or not item.get("file") or not item.get("quote"):
                raise CaseError(f"{where}: each gold entry needs 'file' and 'quote'")
            gold.append(GoldQuote(str(item["file"]), str(item["quote"])))
        cases.append(
            QACase(
                id=str(_field(raw, "id", str, where)),
                kind=str(_field(raw, "kind", str, where)),
                question=str(_field(raw, "question", str, where)),
                history=tuple(history),
                gold=tuple(gold),
                answer_points=tuple(str(p) for p in _field(raw, "answer_points", list, where)),  # type: ignore[attr-defined]
            )
        )
    return cases


def covers(passage: str, doc_file: str, gold: GoldQuote) -> bool:
    """A passage of `doc_file` covers a gold quote when it holds at least half of the quote's characters."""
    return doc_file == gold.file and support_score(gold.quote, passage) >= 0.5


def point_found(point: str, answer_text: str) -> bool:
    """An answer point counts when it appears after width, punctuation and script normalisation."""
    return comparable(point) in comparable(answer_text)
