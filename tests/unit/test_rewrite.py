"""Follow-up questions become standalone queries; standalone questions stay as they are."""

from __future__ import annotations

from coopbot.assistant import bounded_history
from coopbot.retrieval.rewrite import heuristic_rewrite, is_follow_up
from coopbot.schema import Turn

HISTORY = [
    Turn("user", "长三角一体化到2025年的发展目标是什么？"),
    Turn("assistant", "到2025年，长三角一体化发展取得实质性进展。[1]"),
]


def test_elliptical_questions_are_follow_ups() -> None:
    for question in (
        "那到2035年呢？",
        "它的面积多大？",
        "还有哪些措施？",
        "这部法律是哪年修订的？",
        "具体呢",
        "研发投入强度呢？",
        "北京的目标呢?",
    ):
        assert is_follow_up(question), question
    for question in (
        "长三角生态绿色一体化发展示范区的面积是多少？",
        "科技成果转化法规定了哪些奖励？",
        "为什么长三角生态绿色一体化发展示范区要跨省设立呢？",  # long: stands alone despite 呢
    ):
        assert not is_follow_up(question), question


def test_follow_up_gets_the_previous_question() -> None:
    query = heuristic_rewrite("那到2035年呢？", HISTORY)
    assert query.startswith("长三角一体化到2025年的发展目标是什么？") and query.endswith("那到2035年呢？")


def test_standalone_question_and_empty_history_are_unchanged() -> None:
    question = "科技成果转化法规定了哪些奖励？"
    assert heuristic_rewrite(question, HISTORY) == question
    assert heuristic_rewrite("那到2035年呢？", []) == "那到2035年呢？"


def test_chained_follow_ups_reach_back_to_the_topic() -> None:
    history = [*HISTORY, Turn("user", "那到2035年呢？"), Turn("assistant", "……")]
    query = heuristic_rewrite("还有呢？", history)
    assert "长三角一体化" in query and "2035" in query and query.endswith("还有呢？")


def test_history_is_bounded_before_it_becomes_a_query() -> None:
    """A follow-up after a very long earlier turn: each turn is cut to the question limit, and the query keeps
    its end (the question itself) when the earlier turns make it longer."""
    long_turn = "长三角" * 6000
    history = [Turn("user", "无关的问题"), Turn("assistant", "无关"), Turn("user", long_turn), Turn("assistant", "好")]
    recent = bounded_history(history, 1, 2000)
    assert [len(turn.content) for turn in recent] == [2000, 1]
    query = heuristic_rewrite("那2035年呢？", recent)[-2000:]
    assert len(query) == 2000 and query.endswith("那2035年呢？")
    assert bounded_history(history, 0, 2000) == []
