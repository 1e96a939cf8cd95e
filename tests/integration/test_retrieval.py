"""Hybrid retrieval: fusion, near-duplicates, modes, LangChain, evaluation helpers; real model and Chroma."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from coopbot.config import Settings
from coopbot.evals.retrieval import (
    EvalSet,
    EvalSetError,
    Passage,
    Query,
    evaluate_set,
    index_eval_set,
    load_eval_set,
)
from coopbot.index.embedder import Embedder, cached_embedder, load_embedder
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest.pipeline import ingest
from coopbot.retrieval.retriever import Candidate, Retriever, fuse
from coopbot.schema import Hit

# A small corpus with a trap for each retriever: the pump passages all match "水泵 维护" semantically,
# but only `asset` carries the exact asset code; `fuel` shares no word with "怎样开车更省油".
PASSAGES = {
    "asset": ("设备台账", "资产编号HX-2049登记在后勤处名下，存放于三号楼地下室。"),
    "pump1": ("水泵维护", "水泵检修前必须关闭进水阀门并排空管道内的积水。"),
    "pump2": ("水泵维护", "离心泵的日常维护包括更换机械密封和给轴承加注润滑脂。"),
    "pump3": ("水泵维护", "潜水泵启动前要检查电缆绝缘，防止漏电事故。"),
    "pump4": ("水泵维护", "泵房应保持通风干燥，电机温升超过规定值时立即停机检查。"),
    "pump5": ("水泵维护", "多级泵运行中出现异常振动，通常是叶轮不平衡或联轴器不对中造成的。"),
    "pump6": ("水泵维护", "冬季停用的水泵要放净泵体存水，以免冻裂壳体。"),
    "fuel": ("节能驾驶", "降低车辆燃料消耗的办法包括保持合适的轮胎气压、平稳起步和减少急刹车。"),
    "yrd": ("长三角", "长江三角洲区域一体化发展规划纲要提出建设具有全球影响力的科技创新共同体。"),
    "gba": ("大湾区", "粤港澳大湾区建设国际科技创新中心，推动广州、深圳、香港、澳门协同发展。"),
    "jjj": ("京津冀", "京津冀协同发展战略的核心是有序疏解北京非首都功能。"),
    # the same paragraph twice, as two documents repeating each other
    "dup1": ("湿地保护", "滨海湿地保护修复工程完成退养还滩一千二百公顷，恢复盐沼植被，候鸟栖息地明显扩大。"),
    "dup2": ("湿地保护（转载）", "滨海湿地保护修复工程完成退养还滩一千二百公顷，恢复盐沼植被，候鸟栖息地明显扩大了。"),
}
QUERIES = [
    Query("q-asset", "HX-2049水泵的维护", ("asset",)),
    Query("q-fuel", "怎样开车更省油", ("fuel",)),
    Query("q-gba", "粵港澳大灣區要建設什麼中心？", ("gba",)),
    Query("q-dup", "滨海湿地退养还滩恢复了多少公顷？", ("dup1", "dup2")),
]


@pytest.fixture(scope="module")
def corpus_settings(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Settings:
    """The small corpus indexed once for the module (one passage, one chunk)."""
    data_dir = tmp_path_factory.mktemp("retrieval")
    settings = Settings(data_dir=data_dir, embedding_model=str(model_dir), collection="small-corpus")
    eval_set = EvalSet("small", data_dir, [Passage(k, t, x) for k, (t, x) in PASSAGES.items()], QUERIES)
    index_eval_set(settings, eval_set, embedder=load_embedder(settings))
    return settings


@pytest.fixture(scope="module")
def retriever(corpus_settings: Settings) -> Retriever:
    return Retriever(corpus_settings, embedder=load_embedder(corpus_settings))


def _ids(hits: Sequence[Hit]) -> list[str]:
    return [h.chunk.chunk_id for h in hits]


def test_hybrid_finds_what_only_bm25_finds(retriever: Retriever) -> None:
    """A rare exact term: dense search drowns it among the semantically closer pump passages."""
    dense = retriever.search("HX-2049水泵的维护", 3, mode="dense")
    assert "asset" not in _ids(dense)
    hybrid = retriever.search("HX-2049水泵的维护", 3)
    assert hybrid[0].chunk.chunk_id == "asset"
    assert hybrid[0].lexical_rank == 1 and hybrid[0].dense_rank is not None and hybrid[0].dense_rank > 3


def test_lexical_only_hits_still_report_their_cosine(corpus_settings: Settings, retriever: Retriever) -> None:
    """With 3 candidates per retriever, `asset` (dense rank 7) comes from BM25 alone; its cosine is read back."""
    narrow = Retriever(corpus_settings.replace(retrieval_candidates=3), embedder=retriever.embedder)
    hit = next(h for h in narrow.search("HX-2049水泵的维护", 3) if h.chunk.chunk_id == "asset")
    assert hit.dense_rank is None and hit.lexical_rank == 1
    full = {h.chunk.chunk_id: h.dense_score for h in retriever.search("HX-2049水泵的维护", 13, mode="dense")}
    assert hit.dense_score == pytest.approx(full["asset"], abs=1e-4)


def test_hybrid_finds_what_only_dense_finds(retriever: Retriever) -> None:
    """A paraphrase sharing no word with the passage: BM25 cannot see it."""
    assert "fuel" not in _ids(retriever.search("怎样开车更省油", 5, mode="bm25"))
    hit = retriever.search("怎样开车更省油", 3)[0]
    assert hit.chunk.chunk_id == "fuel"
    assert hit.dense_rank == 1 and hit.lexical_rank is None and hit.lexical_score == 0.0


def test_traditional_question_finds_simplified_passage(retriever: Retriever) -> None:
    for mode in ("bm25", "hybrid"):
        hit = retriever.search("粵港澳大灣區要建設什麼中心？", 3, mode=mode)[0]
        assert hit.chunk.chunk_id == "gba" and hit.lexical_rank == 1


def test_near_duplicates_are_filtered(corpus_settings: Settings, retriever: Retriever) -> None:
    question = "滨海湿地退养还滩恢复了多少公顷？"
    hits = retriever.search(question, 5)
    assert len(set(_ids(hits)) & {"dup1", "dup2"}) == 1
    assert len(hits) == 5 and len(set(_ids(hits))) == 5  # the top k is still filled
    keep_all = Retriever(corpus_settings.replace(dedup_jaccard=1.0), embedder=retriever.embedder)
    assert {"dup1", "dup2"} <= set(_ids(keep_all.search(question, 5)))


def test_modes_and_hit_fields(retriever: Retriever) -> None:
    question = "长三角科技创新共同体"
    bm25 = retriever.search(question, 3, mode="bm25")
    dense = retriever.search(question, 3, mode="dense")
    hybrid = retriever.search(question, 3)  # settings.retrieval.retriever = hybrid
    assert bm25[0].chunk.chunk_id == dense[0].chunk.chunk_id == hybrid[0].chunk.chunk_id == "yrd"
    assert all(h.dense_rank is None and h.lexical_rank is not None for h in bm25)
    assert all(h.lexical_rank is None and h.dense_rank is not None and h.dense_score == h.score for h in dense)
    assert all(h.dense_score is not None and h.lexical_score is not None for h in hybrid)
    assert len(bm25) == 2 and len(dense) == len(hybrid) == 3  # BM25 proposes only chunks sharing a word
    for hits in (bm25, dense, hybrid):
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert hybrid[0].chunk.text == PASSAGES["yrd"][1] and hybrid[0].chunk.heading_path == ("长三角",)


def test_excluded_chunks_are_searched_as_if_not_indexed(retriever: Retriever) -> None:
    """Leave-gold-out: the rest ranks from 1 in each retriever, as in an index without the left-out chunk."""
    question = "长三角科技创新共同体"
    full = retriever.search(question, 4)
    assert full[0].chunk.chunk_id == "yrd"
    without = retriever.search(question, 4, exclude=["yrd"])
    assert "yrd" not in _ids(without) and len(without) == 4
    assert [h.rank for h in without] == [1, 2, 3, 4]
    dense = retriever.search(question, 12, mode="dense", exclude={"yrd"})
    ranks = [h.dense_rank for h in dense if h.dense_rank is not None]
    assert "yrd" not in _ids(dense) and ranks[0] == 1 and ranks == sorted(set(ranks)) and ranks[-1] <= 12
    assert len(ranks) == 11  # 12 left; one of the two duplicated paragraphs is dropped as a near-duplicate
    bm25 = retriever.search(question, 3, mode="bm25", exclude={"yrd"})
    assert "yrd" not in _ids(bm25) and [h.lexical_rank for h in bm25] == list(range(1, len(bm25) + 1))
    assert _ids(retriever.search(question, 4, exclude=[])) == _ids(full)


def test_empty_query_and_bad_arguments(retriever: Retriever) -> None:
    for empty in ("", "   \n\t"):
        with pytest.raises(ValueError, match="empty: type a question"):
            retriever.search(empty)
    with pytest.raises(ValueError, match="k must be at least 1"):
        retriever.search("长三角", 0)
    with pytest.raises(ValueError, match="unknown retriever mode"):
        retriever.search("长三角", mode="sparse")  # type: ignore[arg-type]
    assert retriever.search("？？？", 3, mode="bm25") == []  # nothing to match on is not an error


def test_as_langchain_returns_documents_with_metadata(retriever: Retriever) -> None:
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    lc = retriever.as_langchain(k=2)
    assert isinstance(lc, BaseRetriever)
    docs = lc.invoke("粤港澳大湾区建设什么中心")
    assert len(docs) == 2 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.page_content == PASSAGES["gba"][1]
    meta = top.metadata
    assert meta["chunk_id"] == "gba" and meta["doc_id"] == "gba" and meta["doc_title"] == "大湾区"
    assert meta["heading_path"] == ["大湾区"]
    assert (meta["char_start"], meta["char_end"]) == (0, len(PASSAGES["gba"][1]))
    assert meta["rank"] == 1 and isinstance(meta["score"], float) and meta["lexical_rank"] == 1


def test_empty_index_returns_nothing(settings: Settings) -> None:
    retriever = Retriever(settings, embedder=load_embedder(settings))
    assert retriever.search("长三角", 5) == []
    assert retriever.search("长三角", 5, mode="bm25") == []


# -- fusion without a model ----------------------------------------------------------------------------


def _candidates(dense: list[float], lexical: list[float]) -> list[Candidate]:
    return [
        Candidate(f"c{i}", dense_rank=i + 1, dense_score=d, lexical_score=s)
        for i, (d, s) in enumerate(zip(dense, lexical, strict=True))
    ]


def test_fusion_follows_the_retriever_that_is_sure() -> None:
    """Standardised scores act as a gate: a best hit far out of its own top-50 beats an undecided list's best."""
    undecided_dense = np.linspace(0.86, 0.81, 50).tolist()  # evenly spread: the best is ~1.7 sd up
    sure_lexical = np.linspace(3.0, 0.5, 50).tolist()
    sure_lexical[9] = 15.0  # chunk c9 holds a rare query term: ~7 sd up
    candidates = _candidates(undecided_dense, sure_lexical)
    assert fuse(candidates, undecided_dense, sorted(sure_lexical, reverse=True), 0.4)[0].chunk_id == "c9"

    sure_dense = [0.95, *np.linspace(0.84, 0.80, 49).tolist()]  # c0 is a clear semantic match
    undecided_lexical = np.linspace(0.5, 3.0, 50).tolist()  # c49 has the best, unremarkable BM25 score
    candidates = _candidates(sure_dense, undecided_lexical)
    assert fuse(candidates, sure_dense, sorted(undecided_lexical, reverse=True), 0.4)[0].chunk_id == "c0"


def test_fusion_without_lexical_evidence_keeps_the_dense_order() -> None:
    dense = [0.9, 0.8, 0.7]
    ordered = fuse(_candidates(dense, [0.0, 0.0, 0.0]), dense, [0.0, 0.0, 0.0], 0.4)
    assert [c.chunk_id for c in ordered] == ["c0", "c1", "c2"]
    lexical_only = [Candidate("x", lexical_rank=1, lexical_score=5.0)]  # not in the dense list
    assert fuse(lexical_only, [], [5.0], 0.4)[0].score == pytest.approx(0.0)


def test_fusion_weight_extremes_reproduce_single_retrievers() -> None:
    rng = np.random.default_rng(0)
    dense = sorted(rng.uniform(0.7, 0.9, 20).tolist(), reverse=True)
    lexical = rng.uniform(0, 10, 20).tolist()
    candidates = _candidates(dense, lexical)
    by_dense = [c.chunk_id for c in fuse(candidates, dense, sorted(lexical, reverse=True), 0.0)]
    assert by_dense == [f"c{i}" for i in range(20)]
    by_lexical = [c.chunk_id for c in fuse(candidates, dense, sorted(lexical, reverse=True), 1.0)]
    assert by_lexical == [c.chunk_id for c in sorted(candidates, key=lambda c: -(c.lexical_score or 0))]


# -- evaluation helpers and the embedding cache ---------------------------------------------------------


def test_evaluate_set_with_the_embedding_cache(tmp_path: Path, model_dir: Path) -> None:
    base = Settings(data_dir=tmp_path / "project", embedding_model=str(model_dir))
    plain = load_embedder(base)
    cache = cached_embedder(base, plain)
    eval_set = EvalSet("tiny", tmp_path, [Passage(k, t, x) for k, (t, x) in PASSAGES.items()], QUERIES)

    first = evaluate_set(
        base.replace(data_dir=tmp_path / "a", collection="tiny-a"),
        eval_set,
        passage_embedder=cache,
        query_embedder=plain,
    )
    assert (first.cache_hits, first.cache_misses) == (0, len(PASSAGES))
    assert first.scores["hybrid"].recall(5) == 1.0 and first.scores["hybrid"].recall(1) >= 0.75
    assert first.scores["hybrid"].mrr(10) >= first.scores["dense"].mrr(10)
    assert len(first.scores["dense"].seconds) == len(QUERIES)

    second = evaluate_set(
        base.replace(data_dir=tmp_path / "b", collection="tiny-b"),
        eval_set,
        modes=("hybrid",),
        passage_embedder=cache,
        query_embedder=plain,
    )
    assert (second.cache_hits, second.cache_misses) == (len(PASSAGES), 0)  # nothing encoded again
    assert second.scores["hybrid"].found_at == first.scores["hybrid"].found_at
    texts = ["长三角一体化", "科技成果转化"]
    np.testing.assert_allclose(cache.embed_passages(texts), plain.embed_passages(texts), atol=1e-6)
    assert list(base.data_dir.glob("cache/embeddings/*.sqlite"))


def test_load_eval_set_checks_the_files(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match=r"corpus\.jsonl is missing"):
        load_eval_set(tmp_path)
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"id": "p1", "title": "t", "text": "正文"}) + "\n")
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"id": "q1", "question": "问？", "gold_ids": ["p9"], "answers": []}) + "\n"
    )
    with pytest.raises(EvalSetError, match=r"\['p9'\] are not in the corpus"):
        load_eval_set(tmp_path)
    (tmp_path / "queries.jsonl").write_text(json.dumps({"id": "q1", "question": "问？", "gold_ids": ["p1"]}) + "\n")
    loaded = load_eval_set(tmp_path)
    assert loaded.passages == [Passage("p1", "t", "正文")] and loaded.queries[0].gold_ids == ("p1",)


# -- server mode: one Chroma, several processes with their own data dirs --------------------------------


def test_server_mode_retrievers_with_their_own_data_dirs(
    settings: Settings,
    chroma_server: int,
    tmp_path: Path,
) -> None:
    from ..conftest import KNOWLEDGE

    writer = settings.replace(chroma_mode="server", chroma_port=chroma_server)
    reader = writer.replace(data_dir=tmp_path / "other-process")
    embedder: Embedder = load_embedder(writer)
    shutil.copy(KNOWLEDGE / "seed-cross-regional-innovation-cooperation.txt", writer.knowledge_dir)
    ingest(writer, embedder=embedder)

    retriever = Retriever(reader, embedder=embedder)  # no lexical file of its own yet: built from the server
    assert retriever.last_sync.added == retriever.last_sync.fetched > 10
    assert HybridIndex(reader).lexical.ids == HybridIndex(writer).lexical.ids  # as the two files hold them

    (writer.knowledge_dir / "extra.md").write_text(
        "# 协作示例\n\n建立跨区域联席会议制度，设立鄜州协同创新基金。", encoding="utf-8"
    )
    ingest(writer, embedder=embedder)
    retriever.index.refresh()  # what the periodic check does when the collection's size moved
    hit = retriever.search("鄜州协同创新基金", 1, mode="bm25")[0]
    assert hit.chunk.doc_id == "extra.md"
