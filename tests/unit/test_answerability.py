"""The fitted answer core on hand-made passages: the logistic models, the gate's signals, sentence choice.

The fitted weights themselves are measured on external data (`coopbot eval answerability`, tests in
test_evals_suite); here the code around them: fitting, the file, the features and the refusal text.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from coopbot.answering.extractive import QuestionWords, ScoredSentence, choose_sentences
from coopbot.answering.gate import GATE_FEATURES, NAME_FEATURES, decide, gate_features, missing_names, refusal_text
from coopbot.answering.model import LogisticModel, ModelFileError, fit_logistic, fitted_models
from coopbot.config import AnswerSettings, Settings
from coopbot.evals.answerability import auc
from coopbot.schema import Chunk, Hit

AREA = (
    "长三角生态绿色一体化发展示范区范围包括上海市青浦区、江苏省苏州市吴江区、浙江省嘉兴市嘉善县，面积约2300平方公里。"
)
EU = "欧盟通过“地平线2020”计划，促进成员国之间的科研合作，推动技术创新和经济发展。"


def rarity(word: str) -> float:
    """A stand-in for `LexicalIndex.idf`: longer words are rarer; the unseen-word probe is rarest."""
    return 10.0 if word == "\u0000" else float(len(word))


def hit(text: str, rank: int, *, title: str = "标题", dense: float = 0.8, lexical: float = 5.0) -> Hit:
    chunk = Chunk(f"c{rank}", f"doc{rank}.md", title, (title,), text, 0, len(text), "h", rank)
    return Hit(chunk, 0.9, rank, dense_rank=rank, dense_score=dense, lexical_rank=rank, lexical_score=lexical)


def sentence(h: Hit, text: str, score: float, cosine: float = 0.8) -> ScoredSentence:
    start = h.chunk.text.index(text)
    return ScoredSentence(h, start, start + len(text), score, {"cosine": cosine, "window_overlap": 0.5})


def test_fit_logistic_recovers_the_direction_and_size_of_each_feature() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4000, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, 0.0]
    z = 2.0 * (x[:, 0]) - 1.0 * (x[:, 1] - 10.0) / 5.0 + 0.0 * x[:, 2]
    y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(float)
    model = fit_logistic(x, y, ("a", "b", "c"), l2=0.1)
    a, b, c = model.coefficients  # on standardised features: the true values are 2, -1, 0
    assert a == pytest.approx(2.0, abs=0.25) and b == pytest.approx(-1.0, abs=0.2) and abs(c) < 0.15
    assert model.probability({"a": 3.0, "b": 10.0, "c": 0.0}) > 0.95
    one_by_one = [model.probability(dict(zip("abc", row, strict=True))) for row in x[:5]]
    assert model.probabilities(x[:5]) == pytest.approx(one_by_one)


def test_a_model_round_trips_and_refuses_missing_features_and_garbled_files() -> None:
    model = LogisticModel(("a", "b"), (1.0, -2.0), 0.5, (0.0, 1.0), (1.0, 2.0), 0.3, {"fitted_on": "x"})
    again = LogisticModel.from_dict(model.to_dict())
    assert again == model and again.provenance == {"fitted_on": "x"}
    assert again.probability({"a": 0.0, "b": 1.0}) == pytest.approx(1 / (1 + math.exp(-0.5)))
    with pytest.raises(ModelFileError, match="'b'"):
        model.probability({"a": 1.0})
    with pytest.raises(ModelFileError, match="differ in length"):
        LogisticModel.from_dict({**model.to_dict(), "means": [0.0]})
    with pytest.raises(ModelFileError, match="lacks or garbles"):
        LogisticModel.from_dict({"features": ["a"]})


def test_the_packaged_models_name_their_features_and_provenance() -> None:
    models = fitted_models()
    assert set(models) == {"sentence", "answerability"}
    assert models["answerability"].features == GATE_FEATURES
    assert 0.0 < models["answerability"].threshold < 1.0
    assert "drcd-test" in models["answerability"].provenance["fitted_on"]


def test_the_strict_gate_reads_the_named_things_and_keeps_the_sentence_model() -> None:
    balanced, strict = fitted_models("balanced"), fitted_models("strict")
    assert strict["sentence"] == balanced["sentence"]  # only the answer-or-refuse decision differs
    assert strict["answerability"].features == GATE_FEATURES + NAME_FEATURES
    assert "near-miss" in strict["answerability"].provenance["fitted_on"]
    assert Settings().answer.gate == "balanced" and Settings(answer={"gate": "strict"}).answer.gate == "strict"


def test_the_strict_gate_weighs_a_named_thing_missing_from_the_answering_document() -> None:
    """The near miss the balanced gate cannot see: the same passage, a question about a place it never names."""
    on, other = hit(AREA, 1), hit("广东省的示范区建设情况另行规定。", 2, title="广东省的规定")
    sentences = [sentence(on, AREA, 0.9)]
    asked, near = "上海市青浦区的示范区面积是多少？", "广东省的示范区面积是多少？"

    def probability(question: str, gate: str) -> float:
        return decide(question, [on, other], sentences, rarity, None, gate).answerability  # type: ignore[arg-type]

    # Odds of answering the near miss against the question the passage answers: halved by the balanced gate
    # (other words differ too), cut by more than a hundred times by the strict one.
    assert probability(near, "balanced") / probability(asked, "balanced") > 0.3
    assert probability(near, "strict") / probability(asked, "strict") < 0.01


def test_question_words_weigh_rare_words_more() -> None:
    words = QuestionWords.of("示范区的面积是多少平方公里？", rarity)
    assert "的" not in words.weights and words.rarest is not None
    assert words.share_in("示范区面积约2300平方公里") == pytest.approx(1.0)
    assert 0.0 < words.share_in("示范区很美") < 0.5
    assert QuestionWords.of("是什么？", rarity).share_in("什么都有") == 0.0  # no content words: no coverage


def test_gate_features_separate_a_covering_passage_from_an_off_topic_one() -> None:
    on, off = hit(AREA, 1), hit(EU, 1)
    question = "示范区的面积是多少平方公里？"
    words = QuestionWords.of(question, rarity)
    covered = gate_features(question, words, [on], [sentence(on, AREA, 0.9)], rarity)
    missed = gate_features(question, words, [off], [sentence(off, EU, 0.1, cosine=0.7)], rarity)
    assert set(covered) == set(GATE_FEATURES) | set(NAME_FEATURES)
    assert covered["top_coverage"] == 1.0 and missed["top_coverage"] == 0.0
    assert covered["missing_rarity"] == 0.0 and missed["missing_rarity"] > 0.0
    assert covered["best_sentence"] == 0.9 and missed["best_cosine"] == 0.7
    assert gate_features(question, words, [], [], rarity)["top3_coverage"] == 0.0  # nothing retrieved: no error


def test_gate_features_read_whether_the_answering_passage_holds_the_named_things() -> None:
    """The near-miss signal: the passage that would answer is about 上海 and 2300, the question about 广东."""
    on, other = hit(AREA, 1), hit("广东省的示范区建设情况另行规定。", 2)
    asked = "上海市青浦区的示范区面积是多少？"
    near = "广东省的示范区面积是多少？"
    sentences = [sentence(on, AREA, 0.9)]
    held = gate_features(asked, QuestionWords.of(asked, rarity), [on, other], sentences, rarity)
    lacking = gate_features(near, QuestionWords.of(near, rarity), [on, other], sentences, rarity)
    assert held["names_in_best"] == 1.0 and held["names_in_top3"] == 1.0
    assert lacking["names_in_best"] == 0.0 and lacking["names_in_top3"] == 1.0  # named, but not where the answer is
    elsewhere = hit("广东省的示范区建设情况另行规定。", 2, title="广东省的规定")
    lacking = gate_features(near, QuestionWords.of(near, rarity), [on, elsewhere], sentences, rarity)
    assert lacking["names_in_source"] == 0.0  # another document names it: still not where the answer is
    both = "上海市青浦区和广东省的示范区面积是多少？"  # one document answers, in two of its passages
    split = gate_features(both, QuestionWords.of(both, rarity), [on, other], sentences, rarity)
    assert split["names_in_best"] < 1.0 and split["names_in_source"] == 1.0
    unnamed = "示范区的面积是多少？"  # naming nothing is no evidence against answering
    assert gate_features(unnamed, QuestionWords.of(unnamed, rarity), [on], sentences, rarity)["names_in_best"] == 1.0


def test_decide_refuses_without_passages_or_content_words() -> None:
    settings = Settings()
    on = hit(AREA, 1)
    assert not decide("示范区的面积是多少平方公里？", [], [], rarity, settings.answer.refusal_threshold).answer
    assert (
        decide("是什么？", [on], [sentence(on, AREA, 0.9)], rarity, settings.answer.refusal_threshold).answerability
        == 0.0
    )
    assert decide("示范区的面积是多少平方公里？", [on], [sentence(on, AREA, 0.9)], rarity, 0.0).answer


def test_a_refusal_names_what_is_missing_and_what_the_knowledge_base_has() -> None:
    hits = [hit(AREA, 1, title="示范区总体方案"), hit(EU, 2, title="欧盟科研合作")]
    assert missing_names("2030年示范区的面积是多少？", hits) == ["2030年"]
    assert missing_names("示范区的面积是多少？", hits) == []
    text = refusal_text("2030年示范区的面积是多少？", hits)
    assert "没有关于“2030年”的资料" in text and "《示范区总体方案》、《欧盟科研合作》" in text
    assert refusal_text("示范区的面积是多少？", hits).startswith("知识库中没有找到能回答这个问题的内容。下面是")
    assert refusal_text("2030年示范区的面积是多少？", []) == "知识库中没有找到能回答这个问题的内容。"


PARAGRAPH = "示范区成立于2019年。面积约2300平方公里。包括三个区县。规划期至2035年。"


def test_choice_takes_the_best_close_scores_and_likely_neighbours() -> None:
    h = hit(PARAGRAPH, 1)
    ranked = [
        sentence(h, "面积约2300平方公里。", 0.9),
        sentence(h, "包括三个区县。", 0.3),
        sentence(h, "示范区成立于2019年。", 0.05),
        sentence(h, "规划期至2035年。", 0.5),
    ]
    ranked.sort(key=lambda c: -c.score)  # best first, as score_sentences returns them
    only_best = AnswerSettings(relative_score=1.01, neighbour_score=1.01)
    assert [c.text for c in choose_sentences("面积多大？", ranked, only_best)] == ["面积约2300平方公里。"]
    close = AnswerSettings(relative_score=0.5, neighbour_score=1.01)
    assert [c.text for c in choose_sentences("面积多大？", ranked, close)] == [
        "面积约2300平方公里。",
        "规划期至2035年。",
    ]
    neighbours = AnswerSettings(relative_score=1.01, neighbour_score=0.2)
    chosen = [c.text for c in choose_sentences("面积多大？", ranked, neighbours)]
    assert chosen == ["面积约2300平方公里。", "包括三个区县。"]  # the previous one is too unlikely
    assert choose_sentences("面积多大？", [], neighbours) == []


def test_auc_counts_ties_as_half() -> None:
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.5], [0.5]) == 0.5
    assert auc([0.1], [0.9]) == 0.0
    assert math.isnan(auc([], [0.1]))
