"""Every QA metric on hand-made answers whose right values are known (no model, no index)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from coopbot.answering.citations import CitationRule
from coopbot.evals.cases import GoldQuote, QACase
from coopbot.evals.qa import CaseResult, judge, metrics, summary
from coopbot.schema import Answer, Chunk, Citation, Hit, SentenceSupport

RULE = CitationRule(min_support=0.6, min_word_support=0.75)

LAW = "law.md"
PASSAGE = "第四十五条 将职务科技成果转让的，从转让净收入中提取不低于百分之五十的比例。其他条款另行规定。"
OTHER = "第一条 为了促进科技成果转化为现实生产力，制定本法。"
GOLD = GoldQuote(LAW, "从转让净收入中提取不低于百分之五十的比例")


def case(
    kind: str = "fact", gold: tuple[GoldQuote, ...] = (GOLD,), points: tuple[str, ...] = ("百分之五十",)
) -> QACase:
    return QACase(id=f"c-{kind}", kind=kind, question="完成人能分到多少？", history=(), gold=gold, answer_points=points)


def cite(n: int, passage: str, chunk_id: str = "law#1", doc: str = LAW) -> Citation:
    return Citation(n, chunk_id, doc, "法", ("法",), passage[:10], 0, 10, passage)


def answer(text: str, citations: list[Citation], support: list[SentenceSupport], refused: bool = False) -> Answer:
    return Answer(question="q", text=text, citations=citations, refused=refused, support=support)


def hit(text: str, doc: str = LAW) -> Hit:
    chunk = Chunk("x", doc, "法", ("法",), text, 0, len(text), "h", 0)
    return Hit(chunk=chunk, score=1.0, rank=1)


def timed(result: CaseResult, seconds: float) -> CaseResult:
    result.seconds = seconds
    return result


def test_a_right_answer_scores_full_marks() -> None:
    sentence = "将职务科技成果转让的，从转让净收入中提取不低于百分之五十的比例。"
    result = judge(
        case(),
        answer(sentence + "[1]", [cite(1, PASSAGE)], [SentenceSupport(sentence, (1,), True, 1.0)]),
        [(LAW, PASSAGE)],
        RULE,
    )
    assert result.hit and result.passed
    assert result.points_found == ("百分之五十",)
    assert (result.citations_on_gold, result.citations_total) == (1, 1)
    assert (result.sentences_supported, result.sentences_total) == (1, 1)
    values = metrics([timed(result, 0.2)]).values
    assert values["hit@5"] == values["answer_point_recall"] == values["citation_precision"] == 1.0
    assert values["supported_citation_rate"] == 1.0 and values["false_refusal_rate"] == 0.0
    assert values["refusal_accuracy"] is None  # no unanswerable case: not measured, not 0


def test_duplicate_citations_of_one_passage_count_once_and_a_wrong_passage_lowers_precision() -> None:
    first, second = "从转让净收入中提取不低于百分之五十的比例。", "为了促进科技成果转化为现实生产力。"
    citations = [cite(1, PASSAGE), cite(2, PASSAGE), cite(3, OTHER, chunk_id="law#0")]
    support = [SentenceSupport(first, (1, 2), True, 1.0), SentenceSupport(second, (3,), True, 1.0)]
    result = judge(case(), answer(f"{first}[1][2]{second}[3]", citations, support), [(LAW, PASSAGE)], RULE)
    assert (result.citations_on_gold, result.citations_total) == (1, 2)
    assert metrics([result]).values["citation_precision"] == 0.5


def test_a_citation_the_checker_would_not_accept_is_unsupported() -> None:
    """The rate re-checks each citation against its passage: a claim the passage does not make fails."""
    made_up = "完成人可以分到全部收入的百分之九十。"
    support = [SentenceSupport(made_up, (1,), True, 1.0), SentenceSupport("另一句没有引用。", (), False, 0.0)]
    result = judge(case(), answer(made_up + "[1]另一句没有引用。", [cite(1, PASSAGE)], support), [(LAW, PASSAGE)], RULE)
    assert (result.sentences_supported, result.sentences_total) == (0, 2)
    assert metrics([result]).values["supported_citation_rate"] == 0.0


def test_refusal_with_related_passages() -> None:
    """Related passages of a refusal are not citations: an answerable case refused finds no point, cites nothing."""
    refusal = replace(answer("知识库中没有找到能回答这个问题的内容。", [], [], refused=True), related=[hit(PASSAGE)])
    answerable = timed(judge(case(), refusal, [(LAW, PASSAGE)], RULE), 0.1)
    unanswerable = timed(judge(case("unanswerable", gold=(), points=()), refusal, [], RULE), 0.3)
    assert answerable.hit and not answerable.passed and unanswerable.passed
    values = metrics([answerable, unanswerable]).values
    assert values["false_refusal_rate"] == 1.0 and values["refusal_accuracy"] == 1.0
    assert values["answer_point_recall"] == 0.0
    assert values["citation_precision"] is None  # nothing was cited: no precision to speak of
    assert values["supported_citation_rate"] is None


def test_an_answered_unanswerable_case_fails_refusal_accuracy() -> None:
    sentence = "从转让净收入中提取不低于百分之五十的比例。"
    wrong = answer(sentence + "[1]", [cite(1, PASSAGE)], [SentenceSupport(sentence, (1,), True, 1.0)])
    result = judge(case("unanswerable", gold=(), points=()), wrong, [], RULE)
    assert not result.passed and result.hit is None
    assert metrics([result]).values["refusal_accuracy"] == 0.0


def test_empty_answer() -> None:
    result = judge(case(), answer("", [], []), [(LAW, OTHER)], RULE)
    assert not result.hit and not result.passed
    values = metrics([result]).values
    assert values["hit@5"] == 0.0 and values["answer_point_recall"] == 0.0
    assert values["supported_citation_rate"] is None


def test_traditional_characters_in_the_answer_match_simplified_points() -> None:
    sentence = "從轉讓淨收入中提取不低於百分之五十的比例。"
    traditional = "第四十五條 將職務科技成果轉讓的，" + sentence
    result = judge(
        case(points=("转让净收入", "百分之五十")),
        answer(sentence + "[1]", [cite(1, traditional)], [SentenceSupport(sentence, (1,), True, 1.0)]),
        [(LAW, traditional)],
        RULE,
    )
    assert result.points_found == ("转让净收入", "百分之五十")
    assert result.hit and result.citations_on_gold == 1  # the gold quote is simplified, the passage traditional


def test_hit_at_5_looks_only_at_the_top_five() -> None:
    retrieved = [(LAW, OTHER)] * 5 + [(LAW, PASSAGE)]
    assert not judge(case(), answer("", [], []), retrieved, RULE).hit
    assert judge(case(), answer("", [], []), retrieved[1:], RULE).hit
    assert not judge(case(), answer("", [], []), [("other.md", PASSAGE)], RULE).hit  # right text, wrong file


def test_summary_groups_by_kind_and_takes_latency_quantiles() -> None:
    results = [timed(judge(case(kind), answer("", [], []), [], RULE), s) for kind, s in [("fact", 0.1), ("list", 0.3)]]
    data = summary(results, "extractive")
    assert data["cases"] == 2 and data["backend"] == "extractive"
    assert set(data["by_kind"]) == {"fact", "list"}
    assert data["by_kind"]["list"]["latency_ms"] == {"p50": 300.0, "p95": 300.0}
    assert data["overall"]["latency_ms"]["p50"] == pytest.approx(200.0)
    assert set(data["overall"]) >= {"hit@5", "answer_point_recall", "citation_precision", "latency_ms"}


def test_support_is_rechecked_against_the_passage_with_its_headings() -> None:
    """The year in 2024年……7000亿元 comes from the report's title: the checker read it there, and so does the judge."""
    passage = "今年中央预算内投资拟安排7000亿元。"
    sentence = "2024年中央预算内投资拟安排7000亿元。"
    titled = Citation(
        1, "r#1", "report.md", "政府工作报告（2024年）", ("政府工作报告（2024年）",), passage, 0, 18, passage
    )
    support = [SentenceSupport(sentence, (1,), True, 0.8)]
    result = judge(case(), answer(sentence + "[1]", [titled], support), [("report.md", passage)], RULE)
    assert result.sentences_supported == result.sentences_total == 1
    untitled = Citation(1, "r#1", "report.md", "政府工作报告", ("政府工作报告",), passage, 0, 18, passage)
    result = judge(case(), answer(sentence + "[1]", [untitled], support), [("report.md", passage)], RULE)
    assert result.sentences_supported == 0  # 2024 is nowhere in what the passage shows


def test_the_gate_score_is_carried_into_the_result_and_its_json() -> None:
    refusal = replace(answer("知识库中没有找到能回答这个问题的内容。", [], [], refused=True), answerability=0.12)
    result = judge(case("unanswerable", gold=(), points=()), refusal, [], RULE)
    assert result.answerability == 0.12
    data = result.to_dict()
    assert data["scores"]["answerability"] == data["answer"]["answerability"] == 0.12
    unscored = judge(case(), answer("", [], []), [], RULE)  # no gate score computed: None, in the JSON too
    assert unscored.answerability is None and unscored.to_dict()["scores"]["answerability"] is None
