"""The lexical index: Chinese tokens, BM25, persistence, incremental updates, and staying in step with Chroma."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import pytest

from coopbot.config import Settings
from coopbot.index import bm25
from coopbot.index.bm25 import LexicalIndex, index_path
from coopbot.index.embedder import Embedder, load_embedder
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest.pipeline import ingest
from coopbot.retrieval.retriever import Retriever
from coopbot.text.words import tokenize

from ..conftest import KNOWLEDGE

SEED = "seed-cross-regional-innovation-cooperation.txt"

SMALL_DOC = """# 区域合作示例

## 第一章 总则

第一条 为了促进区域协同创新，制定本示例。第二条 各地区应当共享科研设施。

## 第二章 合作机制

第三条 建立跨区域联席会议制度，定期会商合作事项。第四条 设立协同创新基金，支持联合攻关。
"""

PASSAGES = {
    "p1": "长江三角洲区域一体化发展规划纲要提出建设科技创新共同体。",
    "p2": "粤港澳大湾区建设国际科技创新中心，推动广州深圳香港澳门协同发展。",
    "p3": "京津冀协同发展战略要求疏解北京非首都功能。",
    "p4": "成渝地区双城经济圈建设科技创新中心。",
}


# -- the tokenizer (no model needed) ------------------------------------------------------------------


def test_traditional_and_simplified_give_the_same_tokens() -> None:
    assert tokenize("臺灣的科技發展與創新體系") == tokenize("台湾的科技发展与创新体系")
    assert tokenize("副主席候選人的年齡限制為?") == tokenize("副主席候选人的年龄限制为？")


def test_full_and_half_width_and_case_give_the_same_tokens() -> None:
    assert tokenize("ＡＢＣ１２３：５Ｇ网络，Ｗｉ－Ｆｉ") == tokenize("abc123:5g网络,wi-fi")
    assert "5g" in tokenize("５Ｇ网络") or "5" in tokenize("５Ｇ网络")


def test_punctuation_whitespace_and_question_words_are_dropped() -> None:
    tokens = tokenize("“长三角”一体化的  战略定位是什么？！……（试行）\n\t——《纲要》")
    assert tokens
    assert all(any(ch.isalnum() for ch in t) for t in tokens), tokens
    assert not {"什么", "的", "是"} & set(tokens)
    assert {"长三角", "一体化", "战略", "定位", "纲要", "试行"} <= set(tokens)
    assert tokenize("？！。，、 \n") == []


def test_search_mode_gives_sub_words() -> None:
    tokens = tokenize("科技成果转化")
    assert {"科技", "成果", "转化"} <= set(tokens)


# -- the index (no model needed) ----------------------------------------------------------------------


def test_bm25_ranks_the_passage_with_the_rare_words_first() -> None:
    index = LexicalIndex(None)
    index.update(PASSAGES)
    hits = index.search("大湾区 国际科技创新中心", 3)
    assert hits[0].chunk_id == "p2"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert index.search("完全无关的量子色动力学", 3) == []  # no shared word, no hit
    assert index.search("什么？", 3) == []


def test_idf_weighs_rare_words_above_common_ones() -> None:
    index = LexicalIndex(None)
    assert index.idf("大湾区") == pytest.approx(math.log(2.0))  # empty index: every word is equally unseen
    index.update(PASSAGES)
    common, rare, unseen = (index.idf(w) for w in ("科技", "京津冀", "量子色动力学"))
    assert 0.0 <= common < rare < unseen


def test_traditional_query_finds_simplified_passage() -> None:
    index = LexicalIndex(None)
    index.update(PASSAGES)
    assert index.search("粵港澳大灣區的國際科技創新中心", 1)[0].chunk_id == "p2"


def test_index_is_persisted_reloaded_and_updated_incrementally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lexical" / "coll.json"
    index = LexicalIndex(path)
    index.update(PASSAGES)
    index.save()
    assert path.is_file() and not list(path.parent.glob("*.tmp"))

    reloaded = LexicalIndex.load(path)
    assert reloaded.ids == set(PASSAGES)
    assert reloaded.tokens("p2") == index.tokens("p2")
    assert reloaded.search("京津冀", 1)[0].chunk_id == "p3"
    assert not reloaded.file_changed()

    tokenized: list[str] = []
    real = tokenize

    def counting(text: str) -> list[str]:
        tokenized.append(text)
        return real(text)

    monkeypatch.setattr(bm25, "tokenize", counting)
    added, removed = reloaded.update({**PASSAGES, "p5": "海南自由贸易港建设。"}, ["p1"])
    assert (added, removed) == (1, 1) and tokenized == ["海南自由贸易港建设。"]  # only the new text
    reloaded.save()
    assert index.file_changed()  # another holder of the file sees it moved
    assert LexicalIndex.load(path).ids == {"p2", "p3", "p4", "p5"}
    assert LexicalIndex.load(path).search("自由贸易港", 1)[0].chunk_id == "p5"


def test_unreadable_or_foreign_file_loads_empty(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json", encoding="utf-8")
    assert len(LexicalIndex.load(path)) == 0
    path.write_text(json.dumps({"tokenizer": "another", "chunks": {"a": "x y"}}), encoding="utf-8")
    assert len(LexicalIndex.load(path)) == 0
    assert len(LexicalIndex.load(tmp_path / "missing.json")) == 0


# -- in step with Chroma (real model, real Chroma) -----------------------------------------------------


@pytest.fixture
def embedder(settings: Settings) -> Embedder:
    return load_embedder(settings)


def _chroma_ids(settings: Settings) -> set[str]:
    return set(HybridIndex(settings).records())


def _lexical_ids(settings: Settings) -> set[str]:
    return HybridIndex(settings).lexical.ids  # as the file holds them


def test_ingest_keeps_the_lexical_index_in_step(settings: Settings, embedder: Embedder) -> None:
    small = settings.knowledge_dir / "small.md"
    small.write_text(SMALL_DOC, encoding="utf-8")
    shutil.copy(KNOWLEDGE / SEED, settings.knowledge_dir)
    ingest(settings, embedder=embedder)
    assert _lexical_ids(settings) == _chroma_ids(settings) != set()

    small.write_text(SMALL_DOC.replace("联席会议制度", "联席会议和协商制度"), encoding="utf-8")  # edit
    ingest(settings, embedder=embedder)
    assert _lexical_ids(settings) == _chroma_ids(settings)
    held = HybridIndex(settings).lexical
    assert any("协商" in held.tokens(i) for i in held.ids)

    (settings.knowledge_dir / "more.md").write_text(SMALL_DOC.replace("示例", "样例"), encoding="utf-8")  # add
    ingest(settings, embedder=embedder)
    assert _lexical_ids(settings) == _chroma_ids(settings)

    small.unlink()  # delete
    ingest(settings, embedder=embedder)
    ids = _chroma_ids(settings)
    assert _lexical_ids(settings) == ids and all("small" not in i for i in ids)


def test_retriever_heals_a_deleted_or_stale_lexical_file(settings: Settings, embedder: Embedder) -> None:
    (settings.knowledge_dir / "small.md").write_text(SMALL_DOC, encoding="utf-8")
    ingest(settings, embedder=embedder)
    path = index_path(settings)
    chroma = _chroma_ids(settings)

    path.unlink()
    retriever = Retriever(settings, embedder=embedder)
    assert retriever.last_sync.added == len(chroma) and retriever.last_sync.fetched == len(chroma)
    assert _lexical_ids(settings) == chroma
    assert retriever.search("联席会议制度", 1, mode="bm25")[0].chunk.doc_id == "small.md"

    stale = LexicalIndex.load(path)  # stale: one chunk missing, one that Chroma never had
    stale.update({"ghost-chunk": "幽灵段落 联席会议制度 联席会议制度"}, [sorted(chroma)[0]])
    stale.save()
    retriever = Retriever(settings, embedder=embedder)
    assert (retriever.last_sync.added, retriever.last_sync.removed) == (1, 1)
    assert _lexical_ids(settings) == chroma
    assert all(h.chunk.chunk_id != "ghost-chunk" for h in retriever.search("联席会议制度", 5, mode="bm25"))
