"""Text normalisation for matching, never for display.

Chinese text mixes full-width and half-width forms of the same letters, digits and punctuation
(`ＡＢＣ１２３，` vs `ABC123,`), so comparisons must fold them. `to_halfwidth` and `for_matching` are
length-preserving: character i of the output comes from character i of the input, so an offset
found in the normalised text points at the same place in the original. `strip_control` is not.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable

_FULLWIDTH_FIRST = 0xFF01  # ！
_FULLWIDTH_LAST = 0xFF5E  # ～
_FULLWIDTH_OFFSET = 0xFEE0  # ord("！") - ord("!")
_IDEOGRAPHIC_SPACE = "\u3000"

_HALFWIDTH_TABLE: dict[int, str] = {
    code: chr(code - _FULLWIDTH_OFFSET) for code in range(_FULLWIDTH_FIRST, _FULLWIDTH_LAST + 1)
}
_HALFWIDTH_TABLE[ord(_IDEOGRAPHIC_SPACE)] = " "

# Punctuation variants folded to one form each, applied after the full-width fold. The Chinese full
# stop 。 deliberately stays distinct from "." : "." also appears inside numbers ("3.5%") and
# abbreviations, while 。 always ends a sentence, so sentence splitting on matching text stays exact.
# ⋯ … 《 》 〈 〉 stay as they are: they have no one-character ASCII counterpart.
_PUNCTUATION_VARIANTS: dict[str, str] = {
    ",": "，、﹐﹑､",  # the comma family, incl. the enumeration comma
    "。": "｡",
    ":": "﹕",
    ";": "﹔",
    "?": "﹖",
    "!": "﹗",
    ".": "﹒",
    "(": "﹙",
    ")": "﹚",
    "[": "【〔〖﹝",
    "]": "】〕〗﹞",
    '"': "“”„‟「」『』〝〞﹁﹂﹃﹄｢｣",
    "'": "‘’‚‛′",
    "-": "‐‑‒–—―−﹣",
    "~": "〜〰",
    "·": "・‧･•∙",
    " ": "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f",
}


def _matching_table() -> dict[int, str]:
    """Compose the three folds (width, punctuation family, ASCII case) into one translate table."""
    punctuation = {ord(v): target for target, variants in _PUNCTUATION_VARIANTS.items() for v in variants}
    table: dict[int, str] = {}
    for code in {*_HALFWIDTH_TABLE, *punctuation, *range(ord("A"), ord("Z") + 1)}:
        ch = _HALFWIDTH_TABLE.get(code, chr(code))
        ch = punctuation.get(ord(ch), ch)
        table[code] = ch.lower() if ch.isascii() else ch
    return table


_MATCHING_TABLE = _matching_table()

# Invisible characters that are not category Cc but still break matching when pasted in.
_INVISIBLE = frozenset("\ufeff\u200b\u2060")
_KEPT_CONTROLS = frozenset("\n\t")


def to_halfwidth(text: str) -> str:
    """Fold full-width ASCII variants (U+FF01-U+FF5E) and the ideographic space to half width.

    Length-preserving: one character in, one character out.
    """
    return text.translate(_HALFWIDTH_TABLE)


def for_matching(text: str) -> str:
    """The form of `text` to compare and search in, never to show.

    Half-width as in `to_halfwidth`, one form per punctuation family (Chinese and ASCII commas,
    colons, semicolons, brackets, quotes, dashes, ... all become the ASCII character; the enumeration
    comma 、 counts as a comma), odd spaces become " ", and ASCII letters are lowercased. Only ASCII
    is lowercased because `str.lower` can change the length (e.g. "İ" becomes two characters).

    Length-preserving: `len(for_matching(t)) == len(t)` and character i of the result comes from
    character i of `t`, so offsets found in the result apply to the original text unchanged.
    """
    return text.translate(_MATCHING_TABLE)


def strip_control(text: str) -> str:
    """Remove control characters except newline and tab, plus zero-width junk such as a stray BOM.

    Pasted or scraped text carries NULs, carriage returns, escape codes and zero-width spaces that
    are invisible to people but break matching and display. Not length-preserving.
    """
    return "".join(
        ch for ch in text if ch in _KEPT_CONTROLS or (unicodedata.category(ch) != "Cc" and ch not in _INVISIBLE)
    )


_T2S: list[Callable[[str], str]] = []  # the OpenCC converter, created on first use (its tables take ~0.1 s)


def to_simplified(text: str) -> str:
    """Traditional Chinese characters and phrases folded to simplified (OpenCC `t2s`), for matching only.

    So 臺灣的發展 and 台湾的发展 compare equal. Simplified text, ASCII and punctuation pass through
    unchanged. Not guaranteed to be length-preserving (OpenCC converts some phrases as a whole), so never
    use offsets found in the result on the original text.
    """
    if not text:
        return text
    if not _T2S:
        import opencc  # type: ignore[import-untyped]

        _T2S.append(opencc.OpenCC("t2s").convert)
    return _T2S[0](text)


@functools.lru_cache(maxsize=8192)
def comparable(text: str) -> str:
    """Simplified characters in `for_matching` form: what every comparison (BM25 words, citation support,
    question coverage, answer points) works on, so traditional and simplified, full and half width agree.

    Cached (bounded): the same passages and sentences are compared again and again on the hot path.
    """
    return to_simplified(for_matching(text))


def char_bigrams(text: str) -> frozenset[str]:
    """Adjacent letter/digit pairs of `comparable(text)` (a lone character stands for itself)."""
    kept = "".join(ch for ch in comparable(text) if ch.isalnum())
    return frozenset(kept[i : i + 2] for i in range(len(kept) - 1)) or frozenset(kept and [kept])


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0
