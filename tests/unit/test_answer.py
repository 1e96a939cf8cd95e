"""The citation checker, the refusal signals and question handling, on hand-made passages."""

from __future__ import annotations

import pytest

from coopbot.answering.citations import CitationRule, check_citations, figures_found, support_score, word_support
from coopbot.answering.kinds import asked_kinds, holds_asked_kind
from coopbot.assistant import QuestionError, clean_question
from coopbot.schema import Chunk, Hit
from coopbot.text.words import question_terms

PASSAGE_1 = (
    "长三角生态绿色一体化发展示范区范围包括上海市青浦区、江苏省苏州市吴江区、浙江省嘉兴市嘉善县，面积约2300平方公里。"
)
PASSAGE_2 = "欧盟通过“地平线2020”计划，促进成员国之间的科研合作，推动技术创新和经济发展。"


def _hit(text: str, rank: int, dense: int | None = None, lexical: int | None = None) -> Hit:
    chunk = Chunk(f"c{rank}", "doc.md", "标题", ("标题",), text, 0, len(text), "h", rank)
    return Hit(chunk, 0.9, rank, dense_rank=dense, lexical_rank=lexical)


def test_verbatim_sentence_is_fully_supported() -> None:
    assert support_score("面积约2300平方公里。", PASSAGE_1) == 1.0
    assert support_score("面積約2300平方公里", PASSAGE_1) == 1.0  # traditional characters, no punctuation
    assert support_score("欧盟通过地平线计划促进科研合作", PASSAGE_1) < 0.2


TAX = (
    "实施更大规模的减税。深化增值税改革，将制造业等行业现行16%的税率降至13%，将交通运输业、建筑业等行业现行10%的"
    "税率降至9%，确保主要行业税负明显降低；保持6%一档的税率不变。"
)
RULE = CitationRule(min_support=0.6, min_word_support=0.75)


def test_figures_are_whole_numbers_in_the_passage() -> None:
    assert figures_found("税率降至13%。", TAX) and not figures_found("税率降至3%。", TAX)  # 3 is not inside 13
    assert not figures_found("2016年税率降至13%。", TAX) and figures_found("没有数字。", TAX)
    assert figures_found("从16%降至13%", TAX, in_order=True) and not figures_found("从13%到16%", TAX, in_order=True)


@pytest.mark.parametrize(
    ("sentence", "supported"),
    [
        ("制造业的税率从16%调到了13%。", True),  # reworded: few shared bigrams, the same words and figures
        ("交通运输业的税率降到了9%。", True),
        ("深化增值税改革，将制造业等行业现行16%的税率降至13%。", True),  # quoted
        ("2. 将交通运输业、建筑业等行业现行10%的税率降至9%。", True),  # "2." numbers the model's list
        ("16.5%的税率降至13%。", False),  # a decimal at the start is a figure, not a list's numbering
        ("制造业的税率从13%调到了16%。", False),  # figures swapped
        ("制造业的税率从16%调到了9%。", False),  # 16% and 9% are in different clauses of the passage
        ("制造业的税率从16%调到了12%。", False),  # a figure the passage does not have
        ("建筑业税率提高到了16%。", False),  # too few of its words in any passage sentence
        ("小微企业税收负担将全面取消。", False),
    ],
)
def test_citation_rule_accepts_rewording_but_not_changed_claims(sentence: str, supported: bool) -> None:
    assert RULE.supports(sentence, TAX) is supported
    assert RULE.best(sentence, {1: PASSAGE_2, 2: TAX})[0] == (2 if supported else None)


def test_word_support_stays_within_adjacent_sentences() -> None:
    far = "制造业的税率降至13%。" + "这里说的是别的事情。" * 3 + "交通运输业税率降至9%。"
    assert word_support("制造业税率降至13%，交通运输业税率降至9%。", far) < 0.75
    assert word_support("制造业税率降至13%。", far) == 1.0
    assert CitationRule(0.6, 1.01).supports("制造业的税率从16%调到了13%。", TAX) is False  # 1.01: quotes only


def test_checker_drops_and_repoints_wrong_citations() -> None:
    claims = [
        ("示范区面积约2300平方公里。", [2]),  # cites the wrong passage: re-pointed to [1]
        ("欧盟通过“地平线2020”计划促进成员国科研合作。", [2, 1]),  # [1] does not support it: dropped
        ("示范区每年接待游客一亿人次。", [1]),  # nothing supports it
    ]
    verdicts = check_citations(claims, {1: PASSAGE_1, 2: PASSAGE_2}, RULE)
    assert [v.citations for v in verdicts] == [(1,), (2,), ()]
    assert [v.supported for v in verdicts] == [True, True, False]
    assert verdicts[2].score < 0.6


def test_checker_handles_duplicate_citations_and_empty_sentences() -> None:
    verdicts = check_citations([("面积约2300平方公里", [1, 1]), ("", [1])], {1: PASSAGE_1}, RULE)
    assert verdicts[0].citations == (1,)
    assert not verdicts[1].supported


def test_question_terms_drop_question_words() -> None:
    terms = question_terms("请问长三角示范区的面积有多少？")
    assert "面积" in terms and "长三角" in " ".join(terms)
    assert not {"请问", "多少", "的", "有"} & set(terms)


def test_clean_question() -> None:
    assert clean_question("  长三角\x00一体化\n\t是什么？ ", 100) == ("长三角一体化 是什么？", [])
    text, notices = clean_question("问" * 50, 10)
    assert text == "问" * 10 and "10" in notices[0]
    with pytest.raises(QuestionError, match="问题是空的"):
        clean_question(" \n\x07 ", 100)


def answers_the_kind(question: str, text: str) -> bool:
    """The `kind` sentence feature, read as "no kind asked, or the text holds it"."""
    kinds = asked_kinds(question)
    return not kinds or holds_asked_kind(kinds, text)


def test_answer_kind_must_match_what_is_asked() -> None:
    assert answers_the_kind("条例从哪天开始施行？", "本条例自2024年5月1日起施行。")
    assert not answers_the_kind("纲要是哪一年印发的？", "推动成渝地区双城经济圈建设。")
    assert not answers_the_kind("执委会现任主任是谁？", "执委会负责示范区发展规划的编制。")
    assert not answers_the_kind("办公室设在哪个城市？", "设立长三角区域合作办公室，建立合作平台。")
    assert answers_the_kind("办公室设在哪个城市？", "领导小组办公室设在国家发展改革委。")
    assert answers_the_kind("示范区包括哪些地方？", "包括青浦、吴江、嘉善。")  # no kind asked: nothing to check
    # a question in two parts asks for two kinds of sentence: no single kind is required
    assert answers_the_kind("规划期到哪一年？又提出了什么新要求？", "提出了更高要求。")


def test_a_quantity_question_needs_an_amount_in_its_unit() -> None:
    """Asked for a sum, an area or a count of vehicles, a sentence without one is no answer: the
    penalty article that names no amount, a percentage instead of a number of vehicles."""
    assert not answers_the_kind("出具虚假评估意见，最高罚款是多少钱？", "由有关部门依法给予处罚，并处以罚款。")
    assert answers_the_kind("罚款是多少？", "处五万元以上二十万元以下的罚款。")
    assert not answers_the_kind("去年全国新能源汽车生产了多少万辆？", "新能源汽车产销量占全球比重超过60%。")
    assert answers_the_kind("去年全国新能源汽车生产了多少万辆？", "新能源汽车产量达到958.7万辆。")
    assert answers_the_kind("规划覆盖的区域面积有多大？", "规划范围包括四省市全域（面积35.8万平方公里）。")
    assert not answers_the_kind("示范区面积是多少平方公里？", "示范区包括青浦、吴江、嘉善三地。")


def test_answer_points_and_gold_coverage() -> None:
    from coopbot.evals import GoldQuote, covers, point_found

    assert point_found("4.5%—5%", "增长目标为4.5%-5%左右。")  # dash variants and width are normalised
    assert point_found("长三角", "長三角一體化")  # traditional answer text
    assert not point_found("百分之五十", "不低于百分之五的比例")
    gold = GoldQuote("a.md", "从该项科技成果转让净收入中提取不低于百分之五十的比例")
    assert covers("将该项职务科技成果转让的，从该项科技成果转让净收入中提取不低于百分之五十的比例；", "a.md", gold)
    assert not covers("从该项科技成果转让净收入中提取不低于百分之五十的比例", "b.md", gold)  # another file
