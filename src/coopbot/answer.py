"""Passages -> an answer: the refusal gate, the extractive composer and the citation checker.

Nothing here trusts a model to cite: every `[n]` is attached and verified in code against the
passage it points at, and a question the passages do not cover is refused before composing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from coopbot.chunking import split_sentences
from coopbot.config import Settings
from coopbot.embedding import Embedder
from coopbot.lexical import tokenize
from coopbot.schema import Chunk, Citation, Hit, SentenceSupport
from coopbot.textnorm import char_bigrams, comparable, jaccard

REFUSAL = "知识库中没有找到能回答这个问题的内容。"
RELATED_NOTE = "下面是最接近的资料，仅供参考，不作为答案的依据。"

# Words that ask rather than say: they never make a passage relevant.
_QUESTION_WORDS = frozenset(
    [
        "什么",
        "哪些",
        "哪个",
        "哪几",
        "哪几个",
        "哪里",
        "哪儿",
        "如何",
        "怎么",
        "怎样",
        "怎么样",
        "为什么",
        "为何",
        "多少",
        "几个",
        "是否",
        "是不是",
        "有没有",
        "吗",
        "呢",
        "吧",
        "啊",
        "请问",
        "请",
        "告诉",
        "我",
        "你",
        "您",
        "一下",
        "介绍",
        "说说",
        "讲讲",
        "主要",
        "有",
        "是",
        "的",
        "了",
        "和",
        "与",
        "及",
        "在",
        "对",
        "中",
        "把",
        "被",
        "都",
        "也",
        "还",
        "又",
        "就",
        "要",
        "能",
        "会",
        "可以",
        "哪",
        "几",
        "多",
        "些",
        "个",
        "之",
        "其",
        "该",
        "这",
        "那",
        "它",
        "他们",
        "它们",
        "这个",
        "那个",
        "还有",
        "那么",
        "方面",
        "内容",
        "情况",
        "问题",
        "提出",
        "提到",
        "规定",
        "文件",
        "资料",
    ]
)
# Enumeration questions want every item, not the single best sentence.
_ENUMERATION = re.compile(r"哪些|哪几|有什么|有哪|包括什么|包含什么|几个方面|几项|列举|分别")
_KEEP = re.compile(r"[0-9a-z\u3400-\u9fff]")
# The numbering that opens a list item: （一） 一、 1. （1） ① and the like.
_LIST_ITEM = re.compile(r"^\s*(?:[（(][一二三四五六七八九十\d]+[）)]|[一二三四五六七八九十]+、|\d+[.、．](?!\d)|[①-⑳])")


def question_terms(question: str) -> list[str]:
    """The content words of a question: tokens minus question words and punctuation, in order, unique."""
    seen: dict[str, None] = {}
    for token in tokenize(question):
        if token not in _QUESTION_WORDS and _KEEP.search(token) and token not in seen:
            seen[token] = None
    return list(seen)


def support_score(sentence: str, passage: str) -> float:
    """Share of the sentence's character bigrams that occur in the passage (1.0: quoted verbatim)."""
    wanted = char_bigrams(sentence)
    return len(wanted & char_bigrams(passage)) / len(wanted) if wanted else 0.0


_FIGURE = re.compile(r"\d+(?:\.\d+)?")


def _figure_at(figure: str, text: str, start: int = 0) -> int:
    """Where `figure` occurs in `text` as a whole number (not 16 inside 2016 or 1.6), from `start`; -1: nowhere."""
    found = re.compile(rf"(?<![\d.]){re.escape(figure)}(?![\d]|\.\d)").search(text, start)
    return found.start() if found else -1


def figures_found(sentence: str, passage: str, *, in_order: bool = False) -> bool:
    """Every figure of the sentence occurs in the passage (in the same order, if asked).

    A sentence that copies a passage's words but changes its figures (35.8 -> 38.5) is not supported by it.
    """
    return _figures_in(_FIGURE.findall(comparable(sentence)), comparable(passage), in_order=in_order)


def _figures_in(figures: Sequence[str], text: str, *, in_order: bool) -> bool:
    at = 0
    for figure in figures:
        where = _figure_at(figure, text, at)
        if where < 0:
            return False
        at = where + len(figure) if in_order else 0
    return True


_CLAUSE = re.compile(r"[，,；;：:。！？!?\n]")


def _figures_placed(sentence: str, window: str) -> bool:
    """The figures of each clause of the sentence occur, in order, within one clause of the window.

    "制造业的税率从16%调到了9%" relates 16% and 9%; the passage does not ("现行16%的税率降至13%，……现行10%的
    税率降至9%"): figures a sentence puts together must be together in the passage.
    """
    clauses = [comparable(clause) for clause in _CLAUSE.split(window)]
    for part in _CLAUSE.split(sentence):
        figures = _FIGURE.findall(comparable(part))
        if figures and not any(_figures_in(figures, clause, in_order=True) for clause in clauses):
            return False
    return True


def word_support(sentence: str, passage: str) -> float:
    """Share of the sentence's words found in one sentence of the passage, or two adjacent ones, that also
    holds the sentence's figures as the sentence relates them; the best such window counts (0.0: none)."""
    words = set(tokenize(sentence))
    if not words:
        return 0.0
    spans = split_sentences(passage) or [(0, len(passage))]
    windows = [*spans, *((a[0], b[1]) for a, b in pairwise(spans))]
    best = 0.0
    for start, end in windows:
        window = passage[start:end]
        if _figures_placed(sentence, window):
            text = comparable(window)
            best = max(best, sum(word in text for word in words) / len(words))
    return best


@dataclass(frozen=True)
class CitationRule:
    """When a passage supports a sentence: one rule for the citation checker and the evaluation.

    A quoted or lightly edited sentence shares most of its character bigrams with the passage
    (`min_support`). A generated sentence may reword it ("制造业的税率从16%调到了13%" for "将制造业等行业现行
    16%的税率降至13%"): it stands when one or two adjacent sentences of the passage hold `min_word_support`
    of its words. Either way every figure of the sentence must be in the passage.
    """

    min_support: float
    min_word_support: float

    @classmethod
    def from_settings(cls, settings: Settings) -> CitationRule:
        return cls(settings.citation_min_support, settings.citation_min_word_support)

    def supports(self, sentence: str, passage: str) -> bool:
        claim = _claim(sentence)
        return self._supports(claim, passage, support_score(claim, passage))

    def best(self, sentence: str, passages: Mapping[int, str]) -> tuple[int | None, float]:
        """The passage that supports the sentence best (by character bigrams) and that score; None when none does."""
        claim = _claim(sentence)
        scores = {n: support_score(claim, text) for n, text in passages.items()}
        for n in sorted(scores, key=lambda n: -scores[n]):
            if self._supports(claim, passages[n], scores[n]):
                return n, scores[n]
        return None, max(scores.values(), default=0.0)

    def _supports(self, claim: str, passage: str, score: float) -> bool:
        """`supports`, given the claim's character-bigram `score` against the passage (computed once)."""
        if score >= self.min_support and figures_found(claim, passage):
            return True
        return word_support(claim, passage) >= self.min_word_support


def _claim(sentence: str) -> str:
    """What a sentence claims: without a list's own numbering ("2. "), which is not a figure."""
    return _LIST_ITEM.sub("", sentence, count=1)


def check_citations(
    claims: Sequence[tuple[str, Sequence[int]]], passages: Mapping[int, str], rule: CitationRule
) -> list[SentenceSupport]:
    """Verify each sentence's citations by `rule`; drop those that do not support it, re-point to one that does.

    A sentence no passage supports keeps no citation and is marked unsupported: the caller decides
    whether to flag or drop it.
    """
    verdicts = []
    for sentence, cited in claims:
        kept = tuple(n for n in dict.fromkeys(cited) if n in passages and rule.supports(sentence, passages[n]))
        if kept:
            score = max(support_score(sentence, passages[n]) for n in kept)
        else:
            best, score = rule.best(sentence, passages)
            kept = (best,) if best is not None else ()
        verdicts.append(SentenceSupport(sentence, kept, bool(kept), round(score, 4)))
    return verdicts


@dataclass(frozen=True)
class Evidence:
    """How well the retrieved passages cover a question: the refusal gate's inputs."""

    coverage: float  # share of the question's content words (weighted by length) found in the top passages
    agreement: bool  # a top passage ranks high for both the dense and the lexical retriever
    terms: tuple[str, ...]


def assess(question: str, hits: Sequence[Hit], top: int = 3) -> Evidence:
    """Rank and lexical signals, not a cosine threshold: e5 similarities are bunched and uncalibrated."""
    terms = question_terms(question)
    text = comparable("\n".join(h.chunk.embed_text for h in hits[:top]))
    weights = {t: min(len(t), 4) for t in terms}
    total = sum(weights.values())
    found = sum(w for t, w in weights.items() if comparable(t) in text)
    agreement = any(
        h.dense_rank is not None and h.lexical_rank is not None and h.dense_rank <= 5 and h.lexical_rank <= 5
        for h in hits[:top]
    )
    return Evidence(found / total if total else 0.0, agreement, tuple(terms))


def is_covered(evidence: Evidence, settings: Settings) -> bool:
    """Answer only when the passages contain the question's content words (or both retrievers agree)."""
    if not evidence.terms:
        return False
    if evidence.coverage >= settings.refusal_min_coverage:
        return True
    return evidence.agreement and evidence.coverage >= settings.refusal_min_coverage_agreed


_AMOUNT = r"[\d０-９.,，一二三四五六七八九十百千万亿两]+"  # a number, in digits or in Chinese
# What some questions ask for, and what an answer must then contain: an answer of the wrong kind
# (a sentence about the office when asked where the office is) is not an answer.
_ANSWER_KINDS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (  # a date: 哪一年 / 何时 / 什么时候 / 哪天
        re.compile(r"哪一?年|何年|何时|什么时候|什么时间|哪一?天|几月|几号|哪个月|哪一?日"),
        re.compile(r"\d{4}\s*年|\d{1,2}\s*月|\d{1,2}\s*日|[〇零一二三四五六七八九]{4}年|[一二三四五六七八九十]{1,3}月"),
    ),
    (  # a person: 是谁 / 谁是 / 叫什么名字
        re.compile(r"是谁|谁是|谁担任|叫什么名字|姓名"),
        re.compile(r"同志|先生|女士|主任[^，。；、]{0,4}[由为是]|由[^，。；]{2,6}担任"),
    ),
    (  # a place: 设在哪 / 位于哪 / 在哪个城市
        re.compile(r"设在哪|位于哪|坐落在哪|在哪个城市|在哪座城市|在哪个省|总部在哪|驻地"),
        re.compile(r"设在|位于|坐落|驻在|总部"),
    ),
    (  # a sum of money: 多少钱 / 多少万元: a rule without an amount does not answer it
        re.compile(r"多少钱|多少[万亿千百]?元|罚款[^，。？?]{0,6}多少|金额[^，。？?]{0,4}多少"),
        re.compile(rf"{_AMOUNT}\s*[万亿千百]?元"),
    ),
    (  # an area: 多少平方公里 / 面积多大
        re.compile(r"多少[万]?平方(?:公里|千米|米)|面积[^，。？?]{0,4}多[少大]|多少(?:亩|公顷)"),
        re.compile(rf"{_AMOUNT}\s*[万]?(?:平方(?:公里|千米|米)|亩|公顷)"),
    ),
    (  # a count of vehicles: 多少辆 / 多少万辆
        re.compile(r"多少[万]?辆"),
        re.compile(rf"{_AMOUNT}\s*[万]?辆"),
    ),
)


_KIND_BONUS = 0.05  # a sentence of the asked-for kind outranks a slightly closer one that is not


def answers_the_kind(question: str, text: str) -> bool:
    """False when the question asks for a date, a person or a place and the answer holds none.

    A sentence about the right topic but of the wrong kind (the office's tasks when asked where the
    office is) is how an extractive answer goes wrong on facts the documents do not contain.
    """
    return all(found.search(text) for found in _kinds(question))


def _kinds(question: str) -> list[re.Pattern[str]]:
    """What a one-part question asks for; a question with several parts wants several kinds of sentence."""
    asked = comparable(question)
    if len([part for part in re.split(r"[?？]", asked) if part.strip()]) > 1:
        return []
    return [found for wants, found in _ANSWER_KINDS if wants.search(asked)]


@dataclass(frozen=True)
class ScoredSentence:
    """A sentence of a retrieved passage and how well it answers the question: what the extractive
    composer quotes and what a generator's prompt shows."""

    hit: Hit
    start: int  # sentence span within the chunk text
    end: int
    score: float

    @property
    def text(self) -> str:
        return self.hit.chunk.text[self.start : self.end]


def score_sentences(
    question: str, asked: str, hits: Sequence[Hit], embedder: Embedder, settings: Settings
) -> list[ScoredSentence]:
    """Every sentence of the top passages, scored by embedding similarity plus lexical overlap.

    `asked` is the user's own question (for a follow-up, `question` also holds the earlier one): it
    says what kind of answer (date, person, place) to prefer.
    """
    spans = [
        (hit, start, end)
        for hit in hits[: settings.answer_passages]
        for start, end in split_sentences(hit.chunk.text)
        if end - start >= settings.answer_min_sentence_chars
    ]
    if not spans:
        return []
    query_vector = embedder.embed_query(question)
    vectors = embedder.embed_sentences([hit.chunk.text[s:e] for hit, s, e in spans])
    similarity = vectors @ query_vector
    terms = [comparable(t) for t in question_terms(question)]
    kinds = _kinds(asked)
    candidates = []
    for (hit, start, end), sim in zip(spans, similarity, strict=True):
        sentence = comparable(hit.chunk.text[start:end])
        overlap = sum(t in sentence for t in terms) / len(terms) if terms else 0.0
        prior = 1.0 / (hit.rank + 1)  # the retriever's ranking of the passage, as a tie-breaker
        score = float(sim) + settings.answer_lexical_weight * overlap + 0.02 * prior
        if kinds and all(kind.search(hit.chunk.text[start:end]) for kind in kinds):
            score += _KIND_BONUS
        candidates.append(ScoredSentence(hit, start, end, score))
    return sorted(candidates, key=lambda c: -c.score)


def _redundant(candidate: ScoredSentence, chosen: Sequence[ScoredSentence]) -> bool:
    grams = char_bigrams(candidate.text)
    return any(jaccard(grams, char_bigrams(other.text)) > 0.6 for other in chosen)


def compose(
    question: str, candidates: Sequence[ScoredSentence], settings: Settings
) -> tuple[str, list[Citation], list[SentenceSupport]]:
    """Pick the sentences that best answer the question, verbatim, grouped by passage, each with `[n]`.

    `question` is what was searched; `candidates` come from `score_sentences`, best first.
    """
    if not candidates:
        return "", [], []
    enumeration = bool(_ENUMERATION.search(comparable(question)))
    limit = settings.answer_max_sentences_list if enumeration else settings.answer_max_sentences
    margin = settings.answer_margin * (2 if enumeration else 1)
    best = candidates[0].score
    chosen: list[ScoredSentence] = []
    for candidate in candidates:
        if len(chosen) == limit or candidate.score < best - margin:
            break
        if not _redundant(candidate, chosen):
            chosen.append(candidate)

    chosen += list_items(chosen, candidates, settings.answer_max_sentences_list)

    # Number passages in order of their best sentence; within a passage keep the document's order.
    order: dict[str, int] = {}
    for candidate in chosen:
        order.setdefault(candidate.hit.chunk.chunk_id, len(order) + 1)
    chosen.sort(key=lambda c: (order[c.hit.chunk.chunk_id], c.start))
    citations = [_citation(n, [c for c in chosen if c.hit.chunk.chunk_id == cid]) for cid, n in order.items()]

    lines, claims = [], []
    for n in order.values():
        sentences = [c for c in chosen if order[c.hit.chunk.chunk_id] == n]
        lines.append("".join(("\n" if _LIST_ITEM.match(c.text) else "") + f"{c.text}[{n}]" for c in sentences))
        claims += [(c.text, [n]) for c in sentences]
    passages = {c.n: c.passage for c in citations}
    support = check_citations(claims, passages, CitationRule.from_settings(settings))
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
            if not _LIST_ITEM.match(item.text):
                break
            if (item.hit.chunk.chunk_id, item.start) not in taken:
                taken.add((item.hit.chunk.chunk_id, item.start))
                extra.append(item)
    return extra


def _citation(n: int, sentences: list[ScoredSentence]) -> Citation:
    """One citation per passage: the span from its first to its last chosen sentence, verbatim."""
    chunk: Chunk = sentences[0].hit.chunk
    return span_citation(n, chunk, min(c.start for c in sentences), max(c.end for c in sentences))


def span_citation(n: int, chunk: Chunk, start: int, end: int) -> Citation:
    """Citation `n` quoting `chunk.text[start:end]`, located in its document (extractive and generated answers)."""
    return Citation(
        n=n,
        chunk_id=chunk.chunk_id,
        doc_file=chunk.doc_id,
        doc_title=chunk.doc_title,
        heading_path=chunk.heading_path,
        quote=chunk.text[start:end],
        char_start=chunk.char_start + start,
        char_end=chunk.char_start + end,
        passage=chunk.text,
    )
