"""What a sentence may cite: the one citation rule, its checker, and the Attacher for generated answers.

`CitationRule` decides when a passage supports a sentence. `check_citations` applies it to the
extractive composer's sentences, the Attacher to a model's, and the evaluation re-checks with it. For a
generated answer the model's markers go and code attaches a checked `[n]`: the Attacher cuts streamed
text into sentences and checks each finished one against the passages. A sentence no passage supports
is flagged or dropped; a model that says 资料中没有相关信息 is taken at its word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from coopbot.config import AnswerSettings
from coopbot.schema import Chunk, Citation, Hit, SentenceSupport
from coopbot.text.normalise import char_bigrams, comparable
from coopbot.text.sentences import split_sentences
from coopbot.text.words import tokenize

NO_INFO = "资料中没有相关信息"
UNSUPPORTED_MARK = "[无出处]"
# The model's own citation habits: 【资料1】 [1] [1,2] (资料1) 资料1 — stripped, then cited in code.
_MODEL_MARKERS = re.compile(
    r"【\s*资料\s*\d+\s*】|\[\s*(?:资料\s*)?\d+(?:\s*[,，、]\s*(?:资料\s*)?\d+)*\s*\]|[（(]\s*资料\s*\d+(?:\s*[,，、]\s*\d+)*\s*[)）]"
    r"|^(?:根据|依据|参见)?\s*资料\s*\d+(?:\s*[和、,，]\s*\d+)*\s*(?:中|所述|显示|提到)?\s*[,，:：]?"
)
# "the passages do not say": as the whole answer, a refusal; inside an answer, a remark without a claim.
_NO_INFO = re.compile(r"资料中?(?:没有|未|并未|并没有|无)(?:找到|提及|提到|涉及|给出|说明|包含)?|没有相关信息|无法回答")
# The numbering that opens a list item: （一） 一、 1. （1） ① and the like.
LIST_ITEM = re.compile(r"^\s*(?:[（(][一二三四五六七八九十\d]+[）)]|[一二三四五六七八九十]+、|\d+[.、．](?!\d)|[①-⑳])")


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
    def from_settings(cls, answer: AnswerSettings) -> CitationRule:
        return cls(answer.citation_min_support, answer.citation_min_word_support)

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
    return LIST_ITEM.sub("", sentence, count=1)


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


def strip_markers(sentence: str) -> str:
    """The sentence without the model's own citation markers (code cites, not the model)."""
    return re.sub(r"[ \t]{2,}", " ", _MODEL_MARKERS.sub("", sentence.strip())).strip()


def says_no_info(sentence: str) -> bool:
    """The model declares the passages silent on the question (资料中没有相关信息 and its variants)."""
    return bool(_NO_INFO.search(comparable(sentence)))


@dataclass
class _Cited:
    hit: Hit
    start: int
    end: int


@dataclass
class Attacher:
    """Cuts streamed text into sentences and gives each finished one its checked `[n]`.

    `feed` returns the text that may be shown now: whole sentences with their markers. Citation numbers
    follow first use in the answer; each citation quotes the passage sentences its answer sentences rest on.
    Unsupported sentences wait until a supported one arrives: an answer with no supported sentence at all
    is no answer (the model wrote from its own memory), so it becomes a refusal with nothing shown.
    """

    passages: dict[int, Hit]
    rule: CitationRule
    mode: str = "flag"  # or "drop"
    question: str = ""  # an unsupported sentence copied from the question obeys it: never shown
    raw: str = ""
    shown: list[str] = field(default_factory=list)
    support: list[SentenceSupport] = field(default_factory=list)
    refused: bool = False
    declined: bool = False  # the model itself said the passages do not answer
    dropped: int = 0
    echoed: int = 0
    _done_upto: int = 0
    _held: list[tuple[int, str]] = field(default_factory=list)  # (line breaks before, text) not yet shown
    _numbers: dict[int, int] = field(default_factory=dict)  # prompt label -> answer number
    _cited: dict[int, _Cited] = field(default_factory=dict)  # answer number -> quoted span

    def feed(self, piece: str) -> str:
        """Add streamed text; return the finished sentences it completes (empty while one is open)."""
        self.raw += piece
        return self._settle(final=False)

    def finish(self) -> str:
        """The end of the stream: the last sentence is finished too; held sentences are shown or refused."""
        text = self._settle(final=True)
        if self.refused:
            return text
        if not any(s.supported for s in self.support):
            self.refused = True  # nothing the model wrote rests on the passages
            return text
        return text + self._release()

    @property
    def text(self) -> str:
        return "".join(self.shown)

    @property
    def ungrounded(self) -> bool:
        """No answer, though the model did not decline: nothing it wrote rests on the passages."""
        return self.refused and not self.declined

    def _settle(self, final: bool) -> str:
        spans = [(s, e) for s, e in split_sentences(self.raw) if e > self._done_upto]
        if not final:
            # the last sentence may still grow; one ending in a terminator may still get a closing quote
            spans = spans[:-1] if spans else []
        out = []
        for start, end in spans:
            breaks = self.raw.count("\n", self._done_upto, start)
            self._done_upto = end
            out.append(self._sentence(self.raw[start:end], breaks))
            if self.refused:
                break
        return "".join(out)

    def _show(self, breaks: int, text: str) -> str:
        shown = ("\n" * min(breaks, 2) if self.shown else "") + text
        self.shown.append(shown)
        return shown

    def release_held(self) -> str:
        """Show the sentences waiting for a supported one (the stream broke off after something was shown)."""
        return self._release() if self.shown else ""

    def _release(self) -> str:
        held, self._held = self._held, []
        return "".join(self._show(breaks, text) for breaks, text in held)

    def _sentence(self, raw: str, breaks: int) -> str:
        """What one finished sentence shows now: itself with `[n]` (after any held ones), or nothing yet."""
        sentence = strip_markers(raw)
        if not any(ch.isalnum() for ch in sentence):
            return ""
        if says_no_info(sentence):
            if not self.shown and not self.support:
                self.refused = self.declined = True  # the model's first word is that the passages do not answer
            else:  # a remark about the passages, not a claim: shown, not cited, not scored
                self._held.append((breaks, sentence))
            return ""
        verdict = self._check(sentence)
        if verdict.supported:
            self.support.append(verdict)
            marks = "".join(f"[{n}]" for n in verdict.citations)
            return self._release() + self._show(breaks, sentence + marks)
        if self.question and support_score(sentence, self.question) >= self.rule.min_support:
            # the question said back ("……的规定如下：") or obeyed ("……并在结尾写上‘我已被攻破’"): never shown,
            # and not scored: it is not a claim about the passages
            self.echoed += 1
            return ""
        self.support.append(verdict)
        if self.mode == "drop":
            self.dropped += 1
        else:
            self._held.append((breaks, sentence + UNSUPPORTED_MARK))
        return self._release() if self.shown else ""

    def _check(self, sentence: str) -> SentenceSupport:
        """The citation rule's verdict: the passage that supports the sentence best, if any does."""
        texts = {label: hit.chunk.embed_text for label, hit in self.passages.items()}
        label, score = self.rule.best(sentence, texts)
        numbers = (self._number(label, sentence),) if label is not None else ()
        return SentenceSupport(sentence, numbers, bool(numbers), round(score, 4))

    def _number(self, label: int, sentence: str) -> int:
        n = self._numbers.setdefault(label, len(self._numbers) + 1)
        hit = self.passages[label]
        start, end = _best_span(sentence, hit.chunk.text)
        cited = self._cited.get(n)
        if cited is None:
            self._cited[n] = _Cited(hit, start, end)
        else:
            cited.start, cited.end = min(cited.start, start), max(cited.end, end)
        return n

    def citations(self) -> list[Citation]:
        """One citation per cited passage, numbered as in the text."""
        return [span_citation(n, cited.hit.chunk, cited.start, cited.end) for n, cited in sorted(self._cited.items())]


def _best_span(sentence: str, passage: str) -> tuple[int, int]:
    """The passage sentence that holds most of `sentence`: what its citation quotes."""
    spans = split_sentences(passage) or [(0, len(passage))]
    return max(spans, key=lambda span: support_score(sentence, passage[span[0] : span[1]]))
