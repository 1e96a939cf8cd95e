"""What a generated sentence may cite: the model's markers go, code attaches a checked `[n]`.

The Attacher cuts streamed text into sentences; each finished one is checked against the passages by
the citation rule (`answer.CitationRule`, also what the evaluation re-checks). A sentence no passage
supports is flagged or dropped; a model that says 资料中没有相关信息 is taken at its word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from coopbot import answer
from coopbot.chunking import split_sentences
from coopbot.schema import Citation, Hit, SentenceSupport
from coopbot.textnorm import comparable

NO_INFO = "资料中没有相关信息"
UNSUPPORTED_MARK = "[无出处]"
# The model's own citation habits: 【资料1】 [1] [1,2] (资料1) 资料1 — stripped, then cited in code.
_MODEL_MARKERS = re.compile(
    r"【\s*资料\s*\d+\s*】|\[\s*(?:资料\s*)?\d+(?:\s*[,，、]\s*(?:资料\s*)?\d+)*\s*\]|[（(]\s*资料\s*\d+(?:\s*[,，、]\s*\d+)*\s*[)）]"
    r"|^(?:根据|依据|参见)?\s*资料\s*\d+(?:\s*[和、,，]\s*\d+)*\s*(?:中|所述|显示|提到)?\s*[,，:：]?"
)
# "the passages do not say": as the whole answer, a refusal; inside an answer, a remark without a claim.
_NO_INFO = re.compile(r"资料中?(?:没有|未|并未|并没有|无)(?:找到|提及|提到|涉及|给出|说明|包含)?|没有相关信息|无法回答")


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
    rule: answer.CitationRule
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
        if self.question and answer.support_score(sentence, self.question) >= self.rule.min_support:
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
        return [
            answer.span_citation(n, cited.hit.chunk, cited.start, cited.end) for n, cited in sorted(self._cited.items())
        ]


def _best_span(sentence: str, passage: str) -> tuple[int, int]:
    """The passage sentence that holds most of `sentence`: what its citation quotes."""
    spans = split_sentences(passage) or [(0, len(passage))]
    return max(spans, key=lambda span: answer.support_score(sentence, passage[span[0] : span[1]]))
