"""The evaluation suite as CI runs it: the real `coopbot eval` commands with `--check evals/thresholds.toml`.

The QA suite runs over the session's index of knowledge/ and the retrieval suite over the CMRC 2018
and DRCD dev sets in evals/datasets/. A metric below its floor fails the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coopbot.config import Settings
from coopbot.evals.retrieval import RetrievalScores

from ..conftest import ROOT, coopbot

THRESHOLDS = ROOT / "evals" / "thresholds.toml"
DATASETS = ROOT / "evals" / "datasets"  # CMRC and DRCD, copied in with their licenses: the gate runs everywhere
GATED_SETS = ("cmrc2018-trial", "drcd-dev")


def test_qa_suite_meets_its_floors(kb_settings: Settings, tmp_path: Path) -> None:
    env = {"COOPBOT_DATA_DIR": str(kb_settings.data_dir), "COOPBOT_EMBEDDING_MODEL": kb_settings.index.embedding_model}
    report = tmp_path / "report"
    run = coopbot(
        "eval", "qa", "evals/qa/knowledge.jsonl", "--json", "--report", str(report), "--check", str(THRESHOLDS), env=env
    )
    print(run.stderr[-4000:])
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(run.stdout)
    assert figures["backend"] == "extractive" and figures["cases"] >= 80
    assert {"fact", "list", "cross", "followup", "unanswerable", "traditional", "noisy"} <= set(figures["by_kind"])
    for value in (v for k, v in figures["overall"].items() if k not in ("cases", "latency_ms")):
        assert value is None or 0.0 <= value <= 1.0
    assert "gate passed" in run.stderr
    assert {p.name for p in report.iterdir()} >= {"results.jsonl", "report.md", "report.html", "summary.json"}


def test_a_raised_floor_fails_the_gate_naming_the_metric(kb_settings: Settings, tmp_path: Path) -> None:
    """The same run against an impossible floor exits 1 and names it: the gate can fail."""
    strict = tmp_path / "strict.toml"
    strict.write_text('[qa.by_kind.list]\n"hit@5" = 1.01\n', encoding="utf-8")
    env = {"COOPBOT_DATA_DIR": str(kb_settings.data_dir), "COOPBOT_EMBEDDING_MODEL": kb_settings.index.embedding_model}
    run = coopbot("eval", "qa", "evals/qa/knowledge.jsonl", "--kinds", "list", "--check", str(strict), env=env)
    assert run.returncode == 1
    assert "qa.by_kind.list.hit@5" in run.stderr and "below its floor 1.01" in run.stderr


@pytest.fixture(scope="module")
def external_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for the retrieval and answerability suites: the passage vectors are encoded once."""
    return tmp_path_factory.mktemp("external")


@pytest.mark.parametrize("gate", ["balanced", "strict"])
def test_blind_suite_meets_its_floors(kb_settings: Settings, tmp_path: Path, gate: str) -> None:
    """The blind cases (written by someone who never read the answer code) have floors of their own, for the
    default gate and the opt-in strict one (`answer.gate`)."""
    env = {
        "COOPBOT_DATA_DIR": str(kb_settings.data_dir),
        "COOPBOT_EMBEDDING_MODEL": kb_settings.index.embedding_model,
        "COOPBOT_ANSWER__GATE": gate,
    }
    section = "blind" if gate == "balanced" else f"blind-{gate}"
    run = coopbot(
        "eval", "qa", "evals/qa/blind.jsonl", "--json", "--report", str(tmp_path / "blind"),
        "--section", section, "--check", str(THRESHOLDS), env=env,
    )  # fmt: skip
    print(run.stderr[-4000:])
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["cases"] >= 80 and f"every {section} threshold" in run.stderr
    assert "alt='refusal trade-off'" in (tmp_path / "blind" / "report.html").read_text(encoding="utf-8")


def test_answerability_suite_meets_its_floors(model_dir: Path, external_data_dir: Path) -> None:
    """Refusal with the gold passage left out and of near misses, and the answer in the chosen sentences, on sets
    nobody fitted on."""
    env = {"COOPBOT_DATA_DIR": str(external_data_dir), "COOPBOT_EMBEDDING_MODEL": str(model_dir)}
    for name in GATED_SETS:
        run = coopbot("eval", "answerability", str(DATASETS / name), "--json", "--check", str(THRESHOLDS), env=env)
        print(run.stderr[-2000:])
        assert run.returncode == 0, run.stderr[-2000:]
        figures = json.loads(run.stdout)
        assert figures["dataset"] == name and figures["questions"] == len(
            (DATASETS / name / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        )
        assert 0.0 < figures["must_refuse_share"] <= 1.0 and figures["answer_in_best"] <= figures["answer_in_chosen"]
        assert figures["near_misses"] > 50 and figures["near_miss_refusal"] is not None


def test_retrieval_suite_meets_its_floors(model_dir: Path, external_data_dir: Path) -> None:
    env = {"COOPBOT_DATA_DIR": str(external_data_dir), "COOPBOT_EMBEDDING_MODEL": str(model_dir)}
    for name in GATED_SETS:
        run = coopbot("eval", "retrieval", str(DATASETS / name), "--json", "--check", str(THRESHOLDS), env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        figures = json.loads(run.stdout)
        assert figures["dataset"] == name and figures["default"] == "hybrid"
        assert set(figures["retrievers"]) == {"bm25", "dense", "hybrid"}
        hybrid = figures["retrievers"]["hybrid"]
        assert set(hybrid) == {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "latency_ms"}
        assert hybrid["recall@1"] <= hybrid["recall@5"] <= hybrid["recall@10"]


def test_ndcg_counts_every_gold_passage() -> None:
    scores = RetrievalScores("hybrid", gold_ranks=[(1,), (3,), (), (1, 2)], gold_counts=[1, 1, 1, 2])
    expected = (1.0 + 0.5 + 0.0 + 1.0) / 4  # rank 3 -> 1/log2(4); both golds first -> ideal
    assert scores.ndcg(10) == pytest.approx(expected)
    assert scores.recall(1) == 0.5 and scores.recall(5) == 0.75
    assert scores.mrr(10) == pytest.approx((1 + 1 / 3 + 0 + 1) / 4)
    assert RetrievalScores("x", gold_ranks=[(11,)], gold_counts=[1]).ndcg(10) == 0.0
