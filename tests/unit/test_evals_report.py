"""Reports, comparisons, the RAGAS export and the regression gate, on hand-made results."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from coopbot.answering.citations import CitationRule
from coopbot.evals.cases import GoldQuote, QACase
from coopbot.evals.gate import Breach, ThresholdsError, check, load_thresholds
from coopbot.evals.qa import CaseResult, judge, summary
from coopbot.evals.report import ReportError, compare, export_ragas, html_report, refusal_tradeoff, write_report
from coopbot.schema import Answer, Citation, SentenceSupport

RULE = CitationRule(min_support=0.6, min_word_support=0.75)

PASSAGE = "第四十五条 从转让净收入中提取不低于百分之五十的比例。"
GOLD = GoldQuote("law.md", "从转让净收入中提取不低于百分之五十的比例")


def result(
    case_id: str, kind: str, right: bool, question: str = "能分到多少？", answerability: float | None = None
) -> CaseResult:
    gold = () if kind == "unanswerable" else (GOLD,)
    case = QACase(case_id, kind, question, (), gold, ("百分之五十",) if gold else ())
    if right == bool(gold):  # answer it
        sentence = "从转让净收入中提取不低于百分之五十的比例。"
        citation = Citation(1, "law#1", "law.md", "法", ("法",), sentence, 6, 26, PASSAGE)
        support = [SentenceSupport(sentence, (1,), True, 1.0)]
        answer = Answer("q", sentence + "[1]", [citation], False, support=support, answerability=answerability)
    else:
        answer = Answer("q", "知识库中没有找到能回答这个问题的内容。", [], True, answerability=answerability)
    judged = judge(case, answer, [("law.md", PASSAGE)], RULE)
    judged.seconds = 0.05
    return judged


def run(*flags: bool) -> list[CaseResult]:
    kinds = ["fact", "list", "unanswerable"]
    return [result(f"c{i}", kinds[i % 3], right) for i, right in enumerate(flags)]


def test_report_files_are_written_readable_and_self_contained(tmp_path: Path) -> None:
    results = [*run(True, True, True), result("xss", "fact", True, question="<script>alert(1)</script>多少？")]
    paths = write_report(tmp_path, results, summary(results, "extractive"))
    assert sorted(p.name for p in paths) == ["report.html", "report.md", "results.jsonl", "summary.json"]
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["c0", "c1", "c2", "xss"]
    assert rows[0]["scores"]["passed"] and rows[0]["answer"]["citations"][0]["doc_file"] == "law.md"
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2  # both plots embedded
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page)  # nothing fetched from elsewhere
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| overall | 4 |" in markdown and "## Cases that did not pass (0)" in markdown


def scored(*cases: tuple[str, float | None]) -> list[CaseResult]:
    """Cases of the given kinds and gate scores, each answered or refused as a 0.5 threshold would have it."""
    return [
        result(f"s{i}", kind, (score is not None and score >= 0.5) == (kind != "unanswerable"), answerability=score)
        for i, (kind, score) in enumerate(cases)
    ]


def test_refusal_tradeoff_sweeps_every_observed_score() -> None:
    results = scored(
        ("fact", 0.9),
        ("list", 0.6),
        ("fact", 0.3),  # ties with an unanswerable case: both are refused from the same threshold on
        ("fact", None),  # no gate score: left out
        ("unanswerable", 0.1),
        ("unanswerable", 0.3),
        ("unanswerable", None),
    )
    assert refusal_tradeoff(results) == [
        (0.1, 0.0, 0.0),  # refuse below the lowest score: nothing refused
        (0.3, 0.0, 0.5),
        (0.6, 1 / 3, 1.0),
        (0.9, 2 / 3, 1.0),
        (math.inf, 1.0, 1.0),  # refuse everything
    ]


def test_refusal_tradeoff_needs_a_scored_case_of_each_kind() -> None:
    assert refusal_tradeoff(scored(("fact", 0.9), ("unanswerable", None))) == []
    assert refusal_tradeoff(scored(("fact", None), ("unanswerable", 0.2))) == []
    assert refusal_tradeoff(run(True, True, True)) == []  # no gate scores at all
    assert refusal_tradeoff(scored(("fact", 0.4), ("unanswerable", 0.4))) == [(0.4, 0.0, 0.0), (math.inf, 1.0, 1.0)]


def test_html_report_shows_the_refusal_tradeoff_only_when_it_has_scores() -> None:
    results = scored(("fact", 0.9), ("fact", 0.4), ("unanswerable", 0.2))
    page = html_report(results, summary(results, "extractive"))
    assert page.count("data:image/png;base64,") == 3 and "alt='refusal trade-off'" in page
    for unscored in (run(True, True, True), scored(("fact", 0.9), ("unanswerable", None))):
        page = html_report(unscored, summary(unscored, "extractive"))
        assert page.count("data:image/png;base64,") == 2 and "refusal trade-off" not in page


def test_compare_names_metric_changes_and_changed_cases(tmp_path: Path) -> None:
    before, after = run(True, True, True), run(True, False, True)
    write_report(tmp_path / "a", before, summary(before, "extractive"))
    write_report(tmp_path / "b", after, summary(after, "extractive"))
    diff = compare(tmp_path / "a", tmp_path / "b")
    assert [c[0] for c in diff.changed] == ["c1"]
    assert diff.changed[0][1].startswith("pass, answered") and diff.changed[0][2].startswith("fail, refused")
    changes = {(group, metric): (was, now) for group, metric, was, now in diff.metrics}
    assert changes[("overall", "false_refusal_rate")] == (0.0, 0.5)
    assert compare(tmp_path / "a", tmp_path / "a").changed == []
    with pytest.raises(ReportError, match="coopbot eval qa --report"):
        compare(tmp_path / "a", tmp_path / "missing")


def test_ragas_export_has_the_columns_ragas_reads(tmp_path: Path) -> None:
    path = tmp_path / "ragas.jsonl"
    export_ragas(path, run(True, True, True))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3
    assert {"question", "answer", "contexts", "ground_truth"} <= set(rows[0])
    assert rows[0]["contexts"] == [PASSAGE] and GOLD.quote in rows[0]["ground_truth"]
    assert rows[2]["ground_truths"] == []  # unanswerable: no reference passage


def _thresholds(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "thresholds.toml"
    path.write_text(text, encoding="utf-8")
    return load_thresholds(path)


def test_gate_names_each_breach_and_treats_false_refusals_as_a_ceiling(tmp_path: Path) -> None:
    measured = summary(run(True, False, False), "extractive")  # list refused, unanswerable answered
    thresholds = _thresholds(
        tmp_path,
        '[qa.overall]\n"hit@5" = 0.9\nfalse_refusal_rate = 0.2\n'
        "[qa.by_kind.unanswerable]\nrefusal_accuracy = 0.9\n"
        "[qa.by_kind.fact]\nanswer_point_recall = 1.0\n",
    )
    breaches = check(thresholds, "qa", measured)
    assert [b.name for b in breaches] == ["qa.overall.false_refusal_rate", "qa.by_kind.unanswerable.refusal_accuracy"]
    assert breaches[0].ceiling and "above its ceiling 0.2" in str(breaches[0])
    assert "below its floor 0.9" in str(breaches[1])
    assert check(thresholds, "qa", summary(run(True, True, True), "extractive")) == []


def test_gate_fails_on_a_metric_the_run_did_not_measure(tmp_path: Path) -> None:
    thresholds = _thresholds(
        tmp_path, '[qa.by_kind.traditional]\n"hit@5" = 0.5\n[retrieval.drcd.hybrid]\n"recall@5" = 0.97\n'
    )
    assert check(thresholds, "qa", summary(run(True), "extractive")) == [
        Breach("qa.by_kind.traditional.hit@5", None, 0.5, False)
    ]
    assert check(thresholds, "retrieval", {"drcd": {"hybrid": {"recall@5": 0.98}}}) == []
    assert "not measured" in str(check(thresholds, "retrieval", {"drcd": {"bm25": {"recall@5": 1.0}}})[0])
    # a dataset without thresholds: nothing would be checked, and that is a failure too
    assert "no threshold applies" in str(check(thresholds, "retrieval", {"cmrc": {"hybrid": {"recall@5": 1.0}}})[0])
    assert "no threshold applies" in str(check({}, "qa", {"overall": {}})[0])


def test_bad_thresholds_files(tmp_path: Path) -> None:
    with pytest.raises(ThresholdsError, match="not found"):
        load_thresholds(tmp_path / "absent.toml")
    with pytest.raises(ThresholdsError, match="not valid TOML"):
        _thresholds(tmp_path, "[qa\n")
    with pytest.raises(ThresholdsError, match="must be a number"):
        _thresholds(tmp_path, '[qa.overall]\n"hit@5" = "high"\n')
    with pytest.raises(ThresholdsError, match="latency is not gated"):
        check(_thresholds(tmp_path, "[qa.overall.latency_ms]\np50 = 100\n"), "qa", {})
