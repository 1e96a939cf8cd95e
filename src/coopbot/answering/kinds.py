"""What kind of answer a question asks for (a date, a person, a place, an amount) and whether a text holds one.

Hand-written patterns, used only as one feature of the fitted sentence model (`kind`), whose weight the
fit decides. Refusing an answer of the wrong kind outright was measured and dropped: on drcd-test it
refused 5.4 % of answerable questions to catch 1 % more of the unanswerable ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from coopbot.text.normalise import comparable

_NUMERAL = r"[\d０-９.,，一二三四五六七八九十百千万亿两]"
# A number, in digits or in Chinese, matched from its first character only: tried from every character of
# a long run of numerals, a pattern that fails after it takes quadratic time.
_AMOUNT = rf"(?<!{_NUMERAL}){_NUMERAL}+"
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


def holds_asked_kind(kinds: Sequence[re.Pattern[str]], text: str) -> bool:
    """True when a question asks for some kinds of answer and `text` holds every one of them."""
    return bool(kinds) and all(found.search(text) for found in kinds)


def asked_kinds(question: str) -> list[re.Pattern[str]]:
    """What a one-part question asks for; a question with several parts wants several kinds of sentence."""
    asked = comparable(question)
    if len([part for part in re.split(r"[?？]", asked) if part.strip()]) > 1:
        return []
    return [found for wants, found in _ANSWER_KINDS if wants.search(asked)]
