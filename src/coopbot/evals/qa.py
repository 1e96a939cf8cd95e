"""Run QA cases through the real assistant and score them, overall and per kind.

Every metric is a fraction in [0, 1], or None where it has no cases to be measured on (refusal
accuracy for a kind without unanswerable cases, for example). Definitions:

- `hit@5`: answerable cases where one of the top 5 chunks the assistant retrieved for its answer covers
  at least half of a gold quote's characters.
- `answer_point_recall`: mean over answerable cases of the share of answer points found in the answer
  text (after folding traditional/simplified, width and punctuation); a refusal finds none.
- `citation_precision`: distinct cited passages (by chunk) that cover a gold quote, over all distinct
  cited passages of answerable cases.
- `supported_citation_rate`: answer sentences whose citation the checker accepts against the cited
  passage, over all answer sentences (an uncited sentence counts as unsupported).
- `refusal_accuracy`: unanswerable cases that were refused.
- `false_refusal_rate`: answerable cases that were refused.
- `latency_ms`: p50 and p95 of the whole `ask`, per case.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from coopbot.answering.citations import CitationRule
from coopbot.evals.cases import QACase, covers, point_found
from coopbot.schema import Answer, embed_text

if TYPE_CHECKING:
    from coopbot.assistant import Assistant

HIT_DEPTH = 5
METRICS = (
    "hit@5",
    "answer_point_recall",
    "citation_precision",
    "supported_citation_rate",
    "refusal_accuracy",
    "false_refusal_rate",
)
LOWER_IS_BETTER = frozenset({"false_refusal_rate"})


@dataclass
class CaseResult:
    """One case's answer and every judgement made of it."""

    case: QACase
    answer: Answer
    seconds: float
    hit: bool | None  # None for an unanswerable case
    points_found: tuple[str, ...] = ()
    citations_on_gold: int = 0  # distinct cited chunks covering a gold quote
    citations_total: int = 0  # distinct cited chunks
    sentences_supported: int = 0
    sentences_total: int = 0
    error: str = ""  # the assistant raised: counted as a refusal with nothing found
    answerability: float | None = None  # the refusal gate's score of the answer (None: not scored)

    @property
    def refused(self) -> bool:
        return self.answer.refused

    @property
    def passed(self) -> bool:
        """The case's bar (as in test_chain.py): refused if unanswerable, else a verified citation on gold."""
        if not self.case.answerable:
            return self.refused and not self.answer.citations
        verified = self.sentences_supported == self.sentences_total
        return not self.refused and self.citations_on_gold > 0 and verified

    def to_dict(self) -> dict[str, Any]:
        """One line of results.jsonl: the case, the answer and its scores."""
        case = self.case
        return {
            "id": case.id,
            "kind": case.kind,
            "question": case.question,
            "history": [{"role": t.role, "content": t.content} for t in case.history],
            "gold": [{"file": g.file, "quote": g.quote} for g in case.gold],
            "answer_points": list(case.answer_points),
            "answer": self.answer.to_dict(),
            "scores": {
                "passed": self.passed,
                "hit@5": self.hit,
                "points_found": list(self.points_found),
                "citations_on_gold": self.citations_on_gold,
                "citations_total": self.citations_total,
                "sentences_supported": self.sentences_supported,
                "sentences_total": self.sentences_total,
                "refused": self.refused,
                "answerability": self.answerability,
                "latency_ms": round(self.seconds * 1000, 1),
                "error": self.error,
            },
        }


def judge(case: QACase, answer: Answer, retrieved: Sequence[tuple[str, str]], rule: CitationRule) -> CaseResult:
    """Score one answer. `retrieved` is (doc_file, passage) of the top chunks for the searched query."""
    result = CaseResult(case, answer, 0.0, hit=None, answerability=answer.answerability)
    if case.answerable:
        top = retrieved[:HIT_DEPTH]
        result.hit = any(covers(text, doc, g) for doc, text in top for g in case.gold)
        if not answer.refused:
            result.points_found = tuple(p for p in case.answer_points if point_found(p, answer.text))
        cited = {c.chunk_id: c for c in answer.citations}
        result.citations_total = len(cited)
        result.citations_on_gold = sum(
            1 for c in cited.values() if any(covers(c.passage, c.doc_file, g) for g in case.gold)
        )
    passages = {c.n: embed_text(c.heading_path, c.passage) for c in answer.citations}  # what the checker read
    for sentence in answer.support:
        result.sentences_total += 1
        accepted = [n for n in sentence.citations if rule.supports(sentence.sentence, passages.get(n, ""))]
        result.sentences_supported += bool(accepted)
    return result


Progress = Callable[[int, int, CaseResult], None]


def run_cases(assistant: Assistant, cases: Iterable[QACase], progress: Progress | None = None) -> list[CaseResult]:
    """Ask every case (with its history) exactly as a user would, then judge it."""
    from coopbot.assistant import QuestionError

    todo = list(cases)
    rule = CitationRule.from_settings(assistant.settings.answer)
    results = []
    for done, case in enumerate(todo, start=1):
        began = time.perf_counter()
        error = ""
        try:
            answer = assistant.ask(case.question, case.history)
        except QuestionError as exc:
            error = str(exc)
            answer = Answer(question=case.question, text=error, citations=[], refused=True)
        seconds = time.perf_counter() - began
        result = judge(case, answer, [(h.chunk.doc_id, h.chunk.text) for h in answer.retrieved], rule)
        result.seconds, result.error = seconds, error
        results.append(result)
        if progress:
            progress(done, len(todo), result)
    return results


@dataclass
class Metrics:
    """The suite's figures for a group of cases."""

    cases: int
    values: dict[str, float | None] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, **self.values, "latency_ms": self.latency_ms}


def _share(numerator: int | float, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def metrics(results: Sequence[CaseResult]) -> Metrics:
    """Every metric of the module docstring over `results`."""
    answerable = [r for r in results if r.case.answerable]
    unanswerable = [r for r in results if not r.case.answerable]
    point_shares = [len(r.points_found) / len(r.case.answer_points) for r in answerable if r.case.answer_points]
    seconds = np.asarray([r.seconds for r in results]) * 1000
    return Metrics(
        cases=len(results),
        values={
            "hit@5": _share(sum(bool(r.hit) for r in answerable), len(answerable)),
            "answer_point_recall": _share(sum(point_shares), len(point_shares)),
            "citation_precision": _share(
                sum(r.citations_on_gold for r in answerable), sum(r.citations_total for r in answerable)
            ),
            "supported_citation_rate": _share(
                sum(r.sentences_supported for r in results), sum(r.sentences_total for r in results)
            ),
            "refusal_accuracy": _share(sum(r.refused for r in unanswerable), len(unanswerable)),
            "false_refusal_rate": _share(sum(r.refused for r in answerable), len(answerable)),
        },
        latency_ms={
            "p50": round(float(np.quantile(seconds, 0.5)), 1) if len(seconds) else 0.0,
            "p95": round(float(np.quantile(seconds, 0.95)), 1) if len(seconds) else 0.0,
        },
    )


def summary(results: Sequence[CaseResult], backend: str) -> dict[str, Any]:
    """The stable `--json` form: overall and per-kind metrics, and the backend that answered."""
    kinds = sorted({r.case.kind for r in results})
    return {
        "cases": len(results),
        "overall": metrics(results).to_dict(),
        "by_kind": {kind: metrics([r for r in results if r.case.kind == kind]).to_dict() for kind in kinds},
        "backend": backend,
    }
