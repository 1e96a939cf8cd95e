"""May we answer: the refusal gate, the one owner of that decision.

`decide` turns signals that survive paraphrase (how well the best sentence answers, by the fitted
sentence model; its embedding similarity; the rarity-weighted share of the question's words the top
passages hold; the margins of both retrievers and whether they agree; see `gate_features`) into one
probability with a logistic model fitted on external data (`model.fitted_models()["answerability"]`) and
compares it with the fitted threshold, chosen for at most 5 % false refusals on the fitting set.
`refusal_text` words a refusal: which named things of the question (years, places, names) no retrieved
passage mentions (`missing_names`), and which documents the closest material comes from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from coopbot.answering.extractive import QuestionWords, Rarity, ScoredSentence
from coopbot.answering.model import GateChoice, fitted_models
from coopbot.schema import Hit
from coopbot.text.names import holds, named_things, names_held
from coopbot.text.normalise import comparable

REFUSAL = "知识库中没有找到能回答这个问题的内容。"
RELATED_NOTE = "下面是最接近的资料，仅供参考，不作为答案的依据。"

# What the fitted gate reads; `gate_features` computes them, in this order.
GATE_FEATURES = (
    "best_sentence",  # the sentence model's best probability that a sentence holds the answer
    "best_cosine",  # the best sentence's embedding similarity to the question
    "best_window_overlap",  # the best rarity-weighted share of question words in one sentence and its neighbours
    "best_bigram_coverage",  # the best share of the question words' character bigrams in one such window
    "best_longest_match",  # the longest stretch of the question found verbatim in one such window
    "top_coverage",  # rarity-weighted share of the question's words in the top passage
    "top3_coverage",  # the same in the top three passages together
    "missing_rarity",  # rarity of the rarest question word none of the top three passages holds (0..1)
    "lexical_margin",  # BM25: (first - second) / first
    "dense_margin",  # cosine: first - second
    "agreement",  # log of the best rank both retrievers give one of the top three passages
    "top_dense",  # the best passage cosine
)
# Computed too, read by a gate fitted with them (`benchmarks/answerability.py --name-features`); not by the
# packaged one, see issue 12's note: with near misses they refuse more near misses and more multi-part questions.
NAME_FEATURES = (
    "names_in_best",  # share of the question's named things (years, places, people, organisations) in the
    # best sentence's passage
    "names_in_top3",  # the same in the top three passages together
    "names_in_source",  # the same in the retrieved passages of the best sentence's document (a question whose
    # parts sit in two passages of one document is not a near miss)
)


@dataclass(frozen=True)
class Decision:
    """The gate's verdict: the probability that the passages answer the question against the threshold."""

    answerability: float
    threshold: float

    @property
    def answer(self) -> bool:
        return self.answerability >= self.threshold


def gate_features(
    question: str, words: QuestionWords, hits: Sequence[Hit], sentences: Sequence[ScoredSentence], rarity: Rarity
) -> dict[str, float]:
    """The gate's inputs for one question and its words (all zero-ish when nothing was retrieved)."""
    top = [comparable(h.chunk.embed_text) for h in hits[:3]]
    best = max(sentences, key=lambda s: s.score) if sentences else None
    best_passage = comparable(best.hit.chunk.embed_text) if best else ""
    source = [comparable(h.chunk.embed_text) for h in hits if best and _source(h) == _source(best.hit)]
    unseen = rarity("\u0000")  # the rarity of a word no passage holds: the scale of `missing_rarity`
    missing = [w for t, w in words.weights.items() if not any(t in text for text in top)]
    lexical = [*sorted((h.lexical_score or 0.0 for h in hits), reverse=True), 0.0, 0.0]
    dense = [*sorted((h.dense_score or 0.0 for h in hits), reverse=True), 0.0, 0.0]
    both = [max(h.dense_rank or 100, h.lexical_rank or 100) for h in hits[:3]]
    return {
        "best_sentence": best.score if best else 0.0,
        "best_cosine": _best(sentences, "cosine"),
        "best_window_overlap": _best(sentences, "window_overlap"),
        "best_bigram_coverage": _best(sentences, "bigram_coverage"),
        "best_longest_match": _best(sentences, "longest_match_window"),
        "top_coverage": words.share_in(top[0]) if top else 0.0,
        "top3_coverage": words.share_in("\n".join(top)),
        "missing_rarity": max(missing, default=0.0) / unseen if unseen > 0 else 0.0,
        "lexical_margin": (lexical[0] - lexical[1]) / lexical[0] if lexical[0] > 0 else 0.0,
        "dense_margin": dense[0] - dense[1],
        "agreement": math.log(min(both, default=100)),
        "top_dense": dense[0],
        "names_in_best": names_held(question, best_passage) if best else 0.0,
        "names_in_top3": names_held(question, "\n".join(top)) if top else 0.0,
        "names_in_source": names_held(question, "\n".join(source)) if source else 0.0,
    }


def _source(hit: Hit) -> str:
    """The document a passage comes from; by title, which is what an evaluation set's passages share."""
    return hit.chunk.doc_title or hit.chunk.doc_id


def _best(sentences: Sequence[ScoredSentence], feature: str) -> float:
    return max((s.features.get(feature, 0.0) for s in sentences), default=0.0)


def decide(
    question: str,
    hits: Sequence[Hit],
    sentences: Sequence[ScoredSentence],
    rarity: Rarity,
    threshold: float | None,
    gate: GateChoice = "balanced",
) -> Decision:
    """Answer or refuse: the fitted probability (of the `gate` model) against `threshold` (None: the model's own)."""
    model = fitted_models(gate)["answerability"]
    threshold = model.threshold if threshold is None else threshold
    words = QuestionWords.of(question, rarity)
    if not hits or not sentences or not words.weights:
        return Decision(0.0, threshold)
    return Decision(model.probability(gate_features(question, words, hits, sentences, rarity)), threshold)


def missing_names(question: str, hits: Sequence[Hit]) -> list[str]:
    """Years, places, people and organisations the question names that no retrieved passage mentions:
    what a refusal says the knowledge base lacks ("知识库中没有关于“2030年”的资料")."""
    held = comparable("\n".join(h.chunk.embed_text for h in hits))
    return [f"{t.text}年" if t.kind == "year" else t.text for t in named_things(question) if not holds(held, t)]


def refusal_text(question: str, hits: Sequence[Hit]) -> str:
    """The refusal, saying what the question named that the knowledge base lacks and what it has instead."""
    text = REFUSAL
    missing = missing_names(question, hits[:3]) if hits else []
    if missing:
        titles = list(dict.fromkeys(h.chunk.doc_title for h in hits[:3] if h.chunk.doc_title))
        text += f"知识库中没有关于“{'”“'.join(missing)}”的资料"
        text += f"；最接近的资料来自：{'、'.join(f'《{t}》' for t in titles)}。" if titles else "。"
    return text + (RELATED_NOTE if hits else "")
