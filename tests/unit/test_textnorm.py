"""Width and punctuation folding for matching: the fold must never move an offset."""

from __future__ import annotations

import random

import pytest

from coopbot.text.normalise import for_matching, strip_control, to_halfwidth

# Characters that stress length preservation: full-width forms, Chinese punctuation, characters whose
# Unicode case mapping changes length (İ, ß, ŉ, ﬁ), combining marks, astral characters.
_ALPHABET = (
    "abcXYZ019 ,.:;?!()[]\"'-~"
    "ＡＢＣｘｙｚ０１９，．：；？！（）［］＂＇－～　"
    "、。“”‘’【】「」『』《》〈〉…—–·・"
    "区域创新合作長江三角洲發展"
    "İßŉﬁÅǅ\u0301\u00a0\u2009\ufeff\u200b"
    "\U00020000\U0001f600\n\t"
)


def _random_texts(count: int) -> list[str]:
    rng = random.Random(0)
    texts = []
    for _ in range(count):
        length = rng.randrange(0, 40)
        chars = [
            rng.choice(_ALPHABET) if rng.random() < 0.8 else chr(rng.randrange(0x20, 0x30000)) for _ in range(length)
        ]
        texts.append("".join(chars))
    return texts


def test_to_halfwidth_maps_the_whole_fullwidth_ascii_block() -> None:
    fullwidth = "".join(chr(code) for code in range(0xFF01, 0xFF5F))
    ascii_printable = "".join(chr(code) for code in range(0x21, 0x7F))
    assert to_halfwidth(fullwidth) == ascii_printable
    assert to_halfwidth("\u3000") == " "


def test_to_halfwidth_leaves_everything_else_alone() -> None:
    text = "区域合作，。、“”《》ab AB 1.5％"
    assert to_halfwidth(text) == "区域合作,。、“”《》ab AB 1.5%"
    assert to_halfwidth("") == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("，,、", ",,,"),
        ("：:", "::"),
        ("；;", ";;"),
        ("（）()", "()()"),
        ("？?！!", "??!!"),
        ("【注】［注］", "[注][注]"),
        ("“引”「号」‘单’", '"引""号"\'单\''),
        ("——–-－", "-----"),
        ("ＡＢＣ Abc", "abc abc"),
        ("\u3000\u00a0x", "  x"),
        ("。.", "。."),  # the Chinese full stop stays distinct: "." also sits inside numbers
        ("《规划纲要》…", "《规划纲要》…"),
    ],
)
def test_for_matching_folds_each_punctuation_family_to_one_form(text: str, expected: str) -> None:
    assert for_matching(text) == expected


def test_for_matching_makes_fullwidth_and_halfwidth_variants_equal() -> None:
    assert for_matching("标签：跨区域（创新）！ＡＩ") == for_matching("标签:跨区域(创新)!ai")


def test_for_matching_only_lowercases_ascii() -> None:
    assert for_matching("İSTANBUL ß Ｉ") == "İstanbul ß i"


def test_for_matching_is_length_preserving_and_positionwise() -> None:
    for text in _random_texts(3000):
        folded = for_matching(text)
        assert len(folded) == len(text), repr(text)
        # character i of the result depends on character i of the input only: offsets carry over
        assert folded == "".join(for_matching(ch) for ch in text), repr(text)
        assert for_matching(folded) == folded, repr(text)  # idempotent


def test_to_halfwidth_is_length_preserving() -> None:
    for text in _random_texts(1000):
        assert len(to_halfwidth(text)) == len(text), repr(text)


def test_offsets_found_in_the_folded_text_apply_to_the_original() -> None:
    original = "长三角一体化（ＹＲＤ）：推动科技创新，共建共享。"
    start = for_matching(original).index("(yrd):")
    assert original[start : start + len("(yrd):")] == "（ＹＲＤ）："


def test_strip_control_removes_controls_but_keeps_newline_and_tab() -> None:
    text = "a\x00b\r\nc\td\x1b[0m\x7f\x85e\ufeff\u200bf\u3000g\n"
    assert strip_control(text) == "ab\nc\td[0mef\u3000g\n"
    assert strip_control("区域合作\n\t创新") == "区域合作\n\t创新"


def test_strip_control_on_random_text_leaves_no_control_characters() -> None:
    for text in _random_texts(500):
        cleaned = strip_control(text + "\x00\x07\x1f\r")
        assert all(ch in "\n\t" or not (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F) for ch in cleaned)
        assert cleaned.count("\n") == text.count("\n")
