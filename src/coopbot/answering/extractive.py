"""The extractive answer: the passages' own sentences, scored, chosen and cited verbatim.

`score_sentences` ranks every sentence of the top passages (a generator's prompt shows the same
ranking); `compose` quotes the best ones with `[n]` and checks each citation by the citation rule.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from coopbot.answering.citations import LIST_ITEM, CitationRule, check_citations, span_citation
from coopbot.answering.kinds import asked_kinds, holds_asked_kind
from coopbot.answering.model import LogisticModel, fitted_models
from coopbot.config import AnswerSettings
from coopbot.index.embedder import Embedder
from coopbot.schema import Chunk, Citation, Hit, SentenceSupport
from coopbot.text.normalise import char_bigrams, comparable, jaccard
from coopbot.text.sentences import split_sentences
from coopbot.text.words import question_terms

# Enumeration questions want every item, not the single best sentence.
_ENUMERATION = re.compile(r"哪些|哪几|有什么|有哪|包括什么|包含什么|几个方面|几项|列举|分别")


SentenceRow = tuple[Hit, int, int, dict[str, float]]
"""A sentence of a passage (hit, start, end) and its features, before a model scores it."""

Rarity = Callable[[str], float]
"""How rare a word is in the knowledge base (`LexicalIndex.idf`): the weight of a question word."""

# What the fitted sentence model reads; `sentence_features` computes them, in this order.
SENTENCE_FEATURES = (
    "cosine",  # embedding similarity of question and sentence
    "cosine_gap",  # how far below the best sentence's similarity for this question
    "overlap",  # rarity-weighted share of the question's words in the sentence
    "window_overlap",  # the same in the sentence with its neighbours (answers cross sentence boundaries)
    "rarest_in_window",  # the question's rarest word is in the sentence or a neighbour
    "bigram_coverage",  # share of the character bigrams of the question's words in the window
    "longest_match",  # the longest stretch of the question found verbatim in the sentence (share of the question)
    "longest_match_window",  # the same in the window
    "passage_rank",  # log of the passage's rank in the retrieval
    "log_length",  # log of the sentence length in characters
    "kind",  # the question asks for a date, person, place or amount and the sentence holds one
)


@dataclass(frozen=True)
class ScoredSentence:
    """A sentence of a retrieved passage and how well it answers the question: what the extractive
    composer quotes and what a generator's prompt shows. `score` is the fitted probability that the
    sentence holds the answer."""

    hit: Hit
    start: int  # sentence span within the chunk text
    end: int
    score: float
    features: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def text(self) -> str:
        return self.hit.chunk.text[self.start : self.end]


@dataclass(frozen=True)
class QuestionWords:
    """A question's content words, each weighted by its rarity in the knowledge base."""

    weights: dict[str, float]

    @classmethod
    def of(cls, question: str, rarity: Rarity) -> QuestionWords:
        return cls({comparable(t): rarity(t) for t in question_terms(question)})

    def share_in(self, text: str) -> float:
        """The rarity-weighted share of the words found in `text` (already `comparable`)."""
        total = sum(self.weights.values())
        return sum(w for t, w in self.weights.items() if t in text) / total if total else 0.0

    @property
    def rarest(self) -> str | None:
        return max(self.weights, key=lambda t: self.weights[t]) if self.weights else None


def score_sentences(
    question: str, asked: str, hits: Sequence[Hit], embedder: Embedder, answer: AnswerSettings, rarity: Rarity
) -> list[ScoredSentence]:
    """Every sentence of the top passages, best first, scored by the fitted sentence model.

    `asked` is the user's own question (for a follow-up, `question` also holds the earlier one): it
    says what kind of answer (date, person, place) the sentence should hold.
    """
    rows = sentence_features(question, asked, hits[: answer.passages], embedder, answer.min_sentence_chars, rarity)
    return rank_sentences(rows, fitted_models()["sentence"])


def rank_sentences(rows: Sequence[SentenceRow], model: LogisticModel) -> list[ScoredSentence]:
    """`sentence_features` rows scored by a sentence model, best first."""
    scored = [ScoredSentence(hit, start, end, model.probability(values), values) for hit, start, end, values in rows]
    return sorted(scored, key=lambda c: -c.score)


def sentence_features(
    question: str, asked: str, hits: Sequence[Hit], embedder: Embedder, min_chars: int, rarity: Rarity
) -> list[SentenceRow]:
    """(hit, start, end, features) for every quotable sentence (`min_chars` or longer) of `hits`, in passage order."""
    passages = [(hit, split_sentences(hit.chunk.text)) for hit in hits]
    spans = [
        (hit, sentences, i)
        for hit, sentences in passages
        for i, (start, end) in enumerate(sentences)
        if end - start >= min_chars
    ]
    if not spans:
        return []
    query_vector = embedder.embed_query(question)
    texts = [hit.chunk.text[slice(*sentences[i])] for hit, sentences, i in spans]
    similarity = embedder.embed_sentences(texts) @ query_vector
    best = float(similarity.max())
    asking = AskedText.of(question, asked, rarity)
    rows = []
    for (hit, sentences, i), cosine in zip(spans, similarity, strict=True):
        values = {"cosine": float(cosine), "cosine_gap": float(cosine) - best, "passage_rank": math.log(hit.rank)}
        values.update(text_features(asking, hit.chunk.text, sentences, i))
        rows.append((hit, *sentences[i], values))
    return rows


@dataclass(frozen=True)
class AskedText:
    """What the text features need to know about a question, worked out once per question."""

    words: QuestionWords
    grams: frozenset[str]  # character bigrams of its content words
    plain: str  # the question, `comparable`
    kinds: tuple[re.Pattern[str], ...]  # what kind of answer it asks for

    @classmethod
    def of(cls, question: str, asked: str, rarity: Rarity) -> AskedText:
        words = QuestionWords.of(question, rarity)
        grams = frozenset(g for word in words.weights for g in char_bigrams(word))
        return cls(words, grams, comparable(question), tuple(asked_kinds(asked)))


def text_features(asking: AskedText, text: str, sentences: Sequence[tuple[int, int]], i: int) -> dict[str, float]:
    """The features of sentence `i` of a passage that read only text: the question's words, phrases and kind.

    "Window" is the sentence with its neighbours: answers and the words that locate them often sit in
    adjacent sentences. `longest_match` is the longest stretch of the question found verbatim, as a
    share of the question: people who ask about a passage reuse its phrases.
    """
    start, end = sentences[i]
    around = sentences[max(0, i - 1) : i + 2]
    window = comparable(text[around[0][0] : around[-1][1]])
    sentence = comparable(text[start:end])
    rarest = asking.words.rarest
    grams = char_bigrams(window)
    return {
        "overlap": asking.words.share_in(sentence),
        "window_overlap": asking.words.share_in(window),
        "rarest_in_window": float(rarest is not None and rarest in window),
        "bigram_coverage": len(asking.grams & grams) / len(asking.grams) if asking.grams else 0.0,
        "longest_match": _longest_match(asking.plain, sentence),
        "longest_match_window": _longest_match(asking.plain, window),
        "log_length": math.log(end - start),
        "kind": float(holds_asked_kind(asking.kinds, text[start:end])),
    }


def _longest_match(question: str, text: str) -> float:
    """The longest substring of `question` that occurs in `text`, as a share of the question's length."""
    if not question or not text:
        return 0.0
    match = difflib.SequenceMatcher(None, question, text, autojunk=False).find_longest_match()
    return match.size / len(question)


def _redundant(candidate: ScoredSentence, chosen: Sequence[ScoredSentence]) -> bool:
    grams = char_bigrams(candidate.text)
    return any(jaccard(grams, char_bigrams(other.text)) > 0.6 for other in chosen)


def choose_sentences(
    question: str, candidates: Sequence[ScoredSentence], answer: AnswerSettings
) -> list[ScoredSentence]:
    """The sentences an answer quotes: the best, those close to it, its likely neighbours, whole lists.

    A sentence joins when its probability is at least `answer.relative_score` of the best one's; a
    neighbour of the best joins above `answer.neighbour_score` (answers cross sentence boundaries); a
    lead-in ending in a colon brings its list items. Both values are fitted on external data.
    """
    if not candidates:
        return []
    enumeration = bool(_ENUMERATION.search(comparable(question)))
    limit = answer.max_sentences_list if enumeration else answer.max_sentences
    best = candidates[0]
    chosen: list[ScoredSentence] = [best]
    for candidate in candidates[1:]:
        if len(chosen) == limit or candidate.score < best.score * answer.relative_score:
            break
        if not _redundant(candidate, chosen):
            chosen.append(candidate)
    taken = {(c.hit.chunk.chunk_id, c.start) for c in chosen}
    same_passage = sorted(
        (c for c in candidates if c.hit.chunk.chunk_id == best.hit.chunk.chunk_id), key=lambda c: c.start
    )
    place = same_passage.index(best)
    for neighbour in same_passage[max(0, place - 1) : place] + same_passage[place + 1 : place + 2]:
        if neighbour.score >= answer.neighbour_score and (neighbour.hit.chunk.chunk_id, neighbour.start) not in taken:
            chosen.append(neighbour)
    return chosen + list_items(chosen, candidates, answer.max_sentences_list)


def compose(
    question: str, candidates: Sequence[ScoredSentence], answer: AnswerSettings
) -> tuple[str, list[Citation], list[SentenceSupport]]:
    """The chosen sentences (`choose_sentences`), verbatim, grouped by passage, each with `[n]`.

    `question` is what was searched; `candidates` come from `score_sentences`, best first.
    """
    chosen = choose_sentences(question, candidates, answer)
    if not chosen:
        return "", [], []

    # Number passages in order of their best sentence; within a passage keep the document's order.
    order: dict[str, int] = {}
    for candidate in chosen:
        order.setdefault(candidate.hit.chunk.chunk_id, len(order) + 1)
    chosen.sort(key=lambda c: (order[c.hit.chunk.chunk_id], c.start))
    citations = [_citation(n, [c for c in chosen if c.hit.chunk.chunk_id == cid]) for cid, n in order.items()]

    lines, claims = [], []
    for n in order.values():
        sentences = [c for c in chosen if order[c.hit.chunk.chunk_id] == n]
        lines.append("".join(("\n" if LIST_ITEM.match(c.text) else "") + f"{c.text}[{n}]" for c in sentences))
        claims += [(c.text, [n]) for c in sentences]
    passages = {c.n: c.passage for c in citations}
    support = check_citations(claims, passages, CitationRule.from_settings(answer))
    return "\n".join(lines), citations, support


def list_items(
    chosen: Sequence[ScoredSentence], candidates: Sequence[ScoredSentence], limit: int
) -> list[ScoredSentence]:
    """A chosen lead-in that ends in a colon ("按照下列标准……：") brings the list items that follow it.

    Without them the answer would announce an answer and stop.
    """
    by_passage: dict[str, list[ScoredSentence]] = {}
    for candidate in candidates:
        by_passage.setdefault(candidate.hit.chunk.chunk_id, []).append(candidate)
    taken = {(c.hit.chunk.chunk_id, c.start) for c in chosen}
    extra: list[ScoredSentence] = []
    for lead in chosen:
        if not lead.text.rstrip().endswith(("：", ":")):
            continue
        following = sorted(
            (c for c in by_passage[lead.hit.chunk.chunk_id] if c.start >= lead.end), key=lambda c: c.start
        )
        for item in following[:limit]:
            if not LIST_ITEM.match(item.text):
                break
            if (item.hit.chunk.chunk_id, item.start) not in taken:
                taken.add((item.hit.chunk.chunk_id, item.start))
                extra.append(item)
    return extra


def _citation(n: int, sentences: list[ScoredSentence]) -> Citation:
    """One citation per passage: the span from its first to its last chosen sentence, verbatim."""
    chunk: Chunk = sentences[0].hit.chunk
    return span_citation(n, chunk, min(c.start for c in sentences), max(c.end for c in sentences))
