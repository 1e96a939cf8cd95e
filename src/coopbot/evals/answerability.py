"""The answer core on external reading-comprehension sets: refusal with the gold passage left out, sentence choice.

Each question of a set (`coopbot.evals.retrieval`) is asked twice through the real retriever, sentence scorer and
gate: over the whole corpus (answerable) and with its gold passages left out (leave-gold-out). A
left-out question counts as "must refuse" only when no answer string appears in the passages the
answerer reads; the others are reported as a share, not scored (the answer is still there). The same
asks feed the fit (`benchmarks/answerability.py`) and the regression gate (`coopbot eval answerability`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from coopbot.answering.extractive import (
    QuestionWords,
    ScoredSentence,
    SentenceRow,
    choose_sentences,
    rank_sentences,
    sentence_features,
)
from coopbot.answering.gate import GATE_FEATURES, gate_features
from coopbot.answering.model import LogisticModel, fitted_models
from coopbot.config import Settings
from coopbot.evals.cases import point_found
from coopbot.evals.retrieval import EvalSet, Query
from coopbot.schema import Hit

if TYPE_CHECKING:
    from coopbot.index.embedder import Embedder
    from coopbot.retrieval.retriever import Retriever


@dataclass
class Asked:
    """One question asked one way (whole corpus, or gold left out), with what the answerer would read."""

    query: Query
    left_out: bool
    hits: list[Hit]
    sentences: list[SentenceRow]
    answer_present: bool  # an answer string occurs in the passages the answerer reads
    near_miss: bool = False  # a named thing swapped for one the article never mentions (`near_miss.py`)

    @property
    def answerable(self) -> bool:
        return not self.left_out and not self.near_miss

    @property
    def must_refuse(self) -> bool:
        """A near miss, or left out with its answer gone from what the answerer reads (else: unknown)."""
        return self.near_miss or (self.left_out and not self.answer_present)

    def holds_answer(self, text: str) -> bool:
        """`text` holds one of the question's answer strings (width, punctuation and script folded)."""
        return holds_answer(self.query, text)

    def sentence_labels(self) -> list[bool]:
        """Whether each sentence holds an answer string: the sentence model's target."""
        return [self.holds_answer(h.chunk.text[s:e]) for h, s, e, _ in self.sentences]

    def scored(self, model: LogisticModel) -> list[ScoredSentence]:
        return rank_sentences(self.sentences, model)


def holds_answer(query: Query, text: str) -> bool:
    return any(point_found(answer, text) for answer in query.answers if answer.strip())


def ask_all(
    eval_set: EvalSet,
    retriever: Retriever,
    embedder: Embedder,
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
) -> list[Asked]:
    """Every question of the set, answerable and left-out, through the production retrieval and features."""

    def both(query: Query) -> list[Asked]:
        return [_ask(query, retriever, embedder, settings, left_out=left_out) for left_out in (False, True)]

    return _each(eval_set.queries, both, progress)


def ask_near_misses(
    near_misses: Sequence[Query],
    retriever: Retriever,
    embedder: Embedder,
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
) -> list[Asked]:
    """Near-miss questions (`near_miss.near_miss_queries`) over the whole corpus: each must be refused."""
    return _each(near_misses, lambda query: [_ask(query, retriever, embedder, settings, near_miss=True)], progress)


def _each(
    queries: Sequence[Query], ask: Callable[[Query], list[Asked]], progress: Callable[[int, int], None] | None
) -> list[Asked]:
    asked = []
    for done, query in enumerate(queries, start=1):
        asked += ask(query)
        if progress:
            progress(done, len(queries))
    return asked


def _ask(
    query: Query,
    retriever: Retriever,
    embedder: Embedder,
    settings: Settings,
    *,
    left_out: bool = False,
    near_miss: bool = False,
) -> Asked:
    hits = retriever.search(query.question, settings.answer.top_k, exclude=query.gold_ids if left_out else ())
    read = hits[: settings.answer.passages]
    rarity = retriever.lexical.idf
    rows = sentence_features(query.question, query.question, read, embedder, settings.answer.min_sentence_chars, rarity)
    present = any(holds_answer(query, h.chunk.text) for h in read)
    return Asked(query, left_out, hits, rows, present, near_miss)


def gate_rows(
    asked: Sequence[Asked],
    sentence_model: LogisticModel,
    rarity: Callable[[str], float],
    features: Sequence[str] = GATE_FEATURES,
) -> np.ndarray:
    """The gate's feature matrix (columns `features`, by default `GATE_FEATURES`) for these asks."""
    rows = []
    for a in asked:
        question = a.query.question
        values = gate_features(question, QuestionWords.of(question, rarity), a.hits, a.scored(sentence_model), rarity)
        rows.append([values[name] for name in features])
    return np.asarray(rows, dtype=np.float64)


@dataclass
class AnswerabilityFigures:
    """What the gate and the sentence choice do on one set."""

    dataset: str
    questions: int
    threshold: float
    auc: float
    false_refusal_rate: float  # answerable questions refused
    refusal_accuracy: float  # must-refuse left-out questions refused
    must_refuse_share: float  # left-out questions whose answer is gone from what the answerer reads
    answer_in_chosen: float  # answerable questions whose chosen sentences hold an answer string (gold retrieved)
    answer_in_best: float  # ... in the single best sentence
    near_misses: int = 0  # near-miss questions asked (`near_miss.py`), 0 when none were made
    near_miss_refusal: float = float("nan")  # ... refused

    def to_dict(self) -> dict[str, Any]:
        """Rounded; a figure with nothing to count (no near misses) is None, not NaN (JSON has no NaN)."""
        return {
            k: (round(v, 4) if math.isfinite(v) else None) if isinstance(v, float) else v
            for k, v in self.__dict__.items()
        }


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not len(positive) or not len(negative):
        return float("nan")
    pos, neg = np.asarray(positive), np.sort(np.asarray(negative))
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))


def measure(
    name: str,
    asked: Sequence[Asked],
    settings: Settings,
    rarity: Callable[[str], float],
    models: dict[str, LogisticModel] | None = None,
    threshold: float | None = None,
) -> AnswerabilityFigures:
    """Refusal and sentence-choice figures of the fitted (or given) models on one set's asks."""
    models = models or fitted_models()
    gate = models["answerability"]
    threshold = gate.threshold if threshold is None else threshold
    scores = gate.probabilities(gate_rows(asked, models["sentence"], rarity, gate.features))
    answerable = [float(s) for a, s in zip(asked, scores, strict=True) if a.answerable]
    must_refuse = [float(s) for a, s in zip(asked, scores, strict=True) if a.left_out and not a.answer_present]
    left_out = sum(a.left_out for a in asked)
    near = [float(s) for a, s in zip(asked, scores, strict=True) if a.near_miss]
    chosen = best = reachable = 0
    for a in asked:
        if not a.answerable or not a.answer_present:
            continue
        ranked = a.scored(models["sentence"])
        picked = "".join(c.text for c in choose_sentences(a.query.question, ranked, settings.answer))
        reachable += 1
        chosen += a.holds_answer(picked)
        best += bool(ranked) and a.holds_answer(ranked[0].text)
    return AnswerabilityFigures(
        dataset=name,
        questions=len(answerable),
        threshold=threshold,
        auc=auc(answerable, must_refuse),
        false_refusal_rate=sum(s < threshold for s in answerable) / max(len(answerable), 1),
        refusal_accuracy=sum(s < threshold for s in must_refuse) / max(len(must_refuse), 1),
        must_refuse_share=len(must_refuse) / max(left_out, 1),
        answer_in_chosen=chosen / max(reachable, 1),
        answer_in_best=best / max(reachable, 1),
        near_misses=len(near),
        near_miss_refusal=sum(s < threshold for s in near) / len(near) if near else float("nan"),
    )
