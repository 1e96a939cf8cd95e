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
# 二氧化碳, which passages paraphrase. Measured with a gate fitted on near misses and the name
# features: with nz, CMRC near misses refused 0.58 (0.63 without), DuReader false refusals 0.11 (0.09),
# DRCD-dev leave-gold-out refusal 0.80 (0.82).
NAME_TAGS = ("ns", "nr", "nt")
_MIN_NAME = 2
_PLACE_SUFFIX = re.compile(r"(?:维吾尔自治区|壮族自治区|回族自治区|特别行政区|自治区|省|市)$")
# The standard abbreviations of China's provincial-level divisions (a fact of the language, not of a case),
# without those that are everyday characters too (新 宁 青 吉 黑 云 贵 甘 蒙 藏 台: 新台阶 is no place).
_PROVINCE_ABBREVIATIONS = {
    "北京": "京", "天津": "津", "河北": "冀", "山西": "晋", "辽宁": "辽", "上海": "沪", "江苏": "苏",
    "浙江": "浙", "安徽": "皖", "福建": "闽", "江西": "赣", "山东": "鲁", "河南": "豫", "湖北": "鄂",
    "湖南": "湘", "广东": "粤", "广西": "桂", "海南": "琼", "重庆": "渝", "四川": "川蜀", "贵州": "黔",
    "云南": "滇", "陕西": "陕秦", "甘肃": "陇", "香港": "港", "澳门": "澳",
}  # fmt: skip
# An abbreviation counts only inside a run of two or more (川渝, 京津冀): alone, 川 or 京 are parts of words.
_ABBREVIATION_RUN = re.compile(f"[{''.join(_PROVINCE_ABBREVIATIONS.values())}]{{2,}}")


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
    return sum(holds(text, t) for t in things) / len(things) if things else 1.0


def holds(text: str, thing: NamedThing) -> bool:
    """Whether `text` (`comparable`) names `thing`, as written or in a form writers use for the same thing: a
    place without its administrative suffix (广东省: 广东), a province by its one-character abbreviation in a
    compound of them (四川: 川渝, 上海: 沪苏浙皖), a name of three or more characters shortened by dropping
    characters (长三角: 长江三角洲)."""
    if thing.text in text:
        return True
    if thing.kind == "year":
        return False
    stem = _PLACE_SUFFIX.sub("", thing.text) if thing.kind == "ns" else thing.text
    if len(stem) >= _MIN_NAME and stem in text:
        return True
    abbreviations = _PROVINCE_ABBREVIATIONS.get(stem, "")
    if abbreviations and any(set(run) & set(abbreviations) for run in _ABBREVIATION_RUN.findall(text)):
        return True
    return len(thing.text) >= 3 and _shortened(thing.text).search(text) is not None


@lru_cache(maxsize=4096)
def _shortened(name: str) -> re.Pattern[str]:
    """The characters of `name` in order with at most two others between neighbours: 长三角 in 长江三角洲."""
    return re.compile("[^，。；！？\n]{0,2}".join(map(re.escape, name)))
