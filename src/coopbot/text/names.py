"""Named things of a question: years, places, people and organisations.

One definition for the refusal gate (are the things the question names in the passage that answers?),
its refusal text (which of them the knowledge base lacks) and the near misses the gate is fitted on
(`evals/near_miss.py` swaps one of them). Years by pattern, the rest by jieba's part-of-speech tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from coopbot.text.normalise import comparable

_YEAR = re.compile(r"((?:1[5-9]|20)\d{2})\s*年")
# jieba's place, person and organisation tags. Not nz ("other proper noun"): it also tags terms such as
# 二氧化碳 or 科研院所, which passages paraphrase. Measured with a gate fitted on near misses and the name
# features: with nz, CMRC near misses refused 0.58 (0.63 without), DuReader false refusals 0.11 (0.09),
# DRCD-dev leave-gold-out refusal 0.80 (0.82).
NAME_TAGS = ("ns", "nr", "nt")
_MIN_NAME = 2


@dataclass(frozen=True)
class NamedThing:
    """A name in `comparable` form and its kind: "year" or jieba's tag."""

    text: str
    kind: str


@lru_cache(maxsize=4096)
def named_things(question: str) -> tuple[NamedThing, ...]:
    """Years (the digits), then proper names of two or more characters, each once, in order."""
    from coopbot.text.words import load_jieba

    load_jieba()
    import jieba.posseg  # type: ignore[import-untyped]

    text = comparable(question)
    found = [NamedThing(m.group(1), "year") for m in _YEAR.finditer(text)]
    found += [
        NamedThing(w.word, w.flag)
        for w in jieba.posseg.lcut(text)
        if w.flag in NAME_TAGS and len(w.word) >= _MIN_NAME and not w.word.isdigit()
    ]
    return tuple(dict.fromkeys(found))


def names_held(question: str, text: str) -> float:
    """The share of the question's named things that `text` (already `comparable`) holds; 1 when it names none."""
    things = named_things(question)
    return sum(t.text in text for t in things) / len(things) if things else 1.0
