"""HybridIndex: the Chroma collection and BM25 hold the same chunks after every write.

Real Chroma (what the invariant is about) and the fake embedder (vectors only need to be stable here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from coopbot.config import Settings
from coopbot.evals.retrieval import Passage, passage_chunk
from coopbot.index.bm25 import LexicalIndex, SyncReport, index_path
from coopbot.index.chroma import StoredChunk, indexed_model
from coopbot.index.embedder import Embedder, model_identity
from coopbot.index.hybrid import HybridIndex, Writes
from coopbot.ingest import pipeline

from ..fakes.embedder import fake_embedder, fake_settings

PASSAGES = {
    "yrd": ("长三角", "长江三角洲区域一体化发展规划纲要提出建设具有全球影响力的科技创新共同体。"),
    "gba": ("大湾区", "粤港澳大湾区建设国际科技创新中心，推动广州、深圳、香港、澳门协同发展。"),
    "jjj": ("京津冀", "京津冀协同发展战略的核心是有序疏解北京非首都功能。"),
    "pump": ("水泵维护", "水泵检修前必须关闭进水阀门并排空管道内的积水。"),
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fake_settings(tmp_path)


@pytest.fixture
def embedder(settings: Settings) -> Embedder:
    return fake_embedder(settings)


def _chunks(*ids: str, replace: dict[str, str] | None = None) -> list[StoredChunk]:
    texts = {chunk_id: PASSAGES[chunk_id][1] for chunk_id in ids} | (replace or {})
    return [passage_chunk(Passage(i, PASSAGES[i][0], texts[i]), "hybrid") for i in ids]


def _add(writes: Writes, chunks: Sequence[StoredChunk], embedder: Embedder) -> None:
    writes.add(chunks, embedder.embed_passages([s.chunk.embed_text for s in chunks]))


def _in_step(index: HybridIndex) -> set[str]:
    """The ids both hold, in memory and in the BM25 file; fails when the collection and BM25 differ."""
    chroma = set(index.records())
    assert index.lexical.ids == chroma
    assert LexicalIndex.load(index_path(index.settings)).ids == chroma
    return chroma


def test_writes_delete_and_replace_keep_both_equal(settings: Settings, embedder: Embedder) -> None:
    index = HybridIndex(settings)
    with index.writing() as writes:
        assert writes.held == {}
        _add(writes, _chunks("yrd", "gba", "jjj"), embedder)
    assert _in_step(index) == {"yrd", "gba", "jjj"}

    with index.writing() as writes:
        writes.delete(["jjj"])
    assert _in_step(index) == {"yrd", "gba"}

    with index.writing() as writes:  # new content under a kept id: BM25 tokenises the new text
        writes.delete(["gba"])
        _add(writes, _chunks("gba", "pump", replace={"gba": "粤港澳大湾区设立鄜州联合实验室。"}), embedder)
    assert _in_step(index) == {"yrd", "gba", "pump"}
    assert "实验室" in index.lexical.tokens("gba") and "深圳" not in index.lexical.tokens("gba")
    assert index.lexical.search("联合实验室", 1)[0].chunk_id == "gba"

    with index.writing() as writes:  # metadata only: nothing to tokenise, nothing to save
        before = index.lexical.loaded_stamp
        writes.update_metadata(_chunks("yrd"))
    assert _in_step(index) == {"yrd", "gba", "pump"} and index.lexical.loaded_stamp == before
    assert LexicalIndex.load(index_path(settings)).collection_version == index._store.version()

    index.drop()
    assert _in_step(index) == set()


def test_a_failed_block_leaves_bm25_behind_and_the_next_one_heals_it(settings: Settings, embedder: Embedder) -> None:
    index = HybridIndex(settings)
    with pytest.raises(KeyboardInterrupt), index.writing() as writes:
        _add(writes, _chunks("yrd", "gba"), embedder)
        raise KeyboardInterrupt
    assert set(index.records()) == {"yrd", "gba"} and index.lexical.ids == set()

    with index.writing() as writes:
        assert set(writes.held) == {"yrd", "gba"}
        _add(writes, _chunks("pump"), embedder)
    assert _in_step(index) == {"yrd", "gba", "pump"}
    assert index.lexical.search("长江三角洲", 1)[0].chunk_id == "yrd"  # read back from Chroma


@pytest.mark.parametrize("damage", ["deleted", "truncated", "stale"])
def test_a_bm25_file_out_of_step_is_rebuilt_from_chroma(settings: Settings, embedder: Embedder, damage: str) -> None:
    with HybridIndex(settings).writing() as writes:
        _add(writes, _chunks("yrd", "gba", "jjj"), embedder)
    path = index_path(settings)
    if damage == "deleted":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    else:  # one chunk missing, one that Chroma never had
        stale = LexicalIndex.load(path)
        stale.update({"ghost": "幽灵段落 京津冀"}, ["jjj"])
        stale.save()

    index = HybridIndex(settings)
    report = index.refresh()
    assert _in_step(index) == {"yrd", "gba", "jjj"}
    assert (report.added, report.removed) == ((1, 1) if damage == "stale" else (3, 0))
    assert index.lexical.search("京津冀", 1)[0].chunk_id == "jjj"


def test_a_second_index_sees_the_first_ones_writes(settings: Settings, embedder: Embedder) -> None:
    writer, reader = HybridIndex(settings), HybridIndex(settings)
    with writer.writing() as writes:
        _add(writes, _chunks("yrd", "gba"), embedder)
    reader.keep_in_step()  # the BM25 file was rewritten: reread
    assert _in_step(reader) == {"yrd", "gba"}

    with writer.writing() as writes:
        writes.delete(["yrd"])
        _add(writes, _chunks("pump"), embedder)
    assert reader.lexical.ids == {"yrd", "gba"}  # not yet
    assert reader.refresh().changed is False  # the file already holds the writer's changes
    assert _in_step(reader) == {"gba", "pump"}
    assert [h.chunk.chunk_id for h in reader.dense(embedder.embed_query("水泵检修"), 1)] == ["pump"]


def test_searches_heal_bm25_when_another_process_changed_the_collection(settings: Settings, embedder: Embedder) -> None:
    """Between two syncs a reader's BM25 can lag: a dense hit it lacks is added, a chunk gone is dropped."""
    writer = HybridIndex(settings)
    with writer.writing() as writes:
        _add(writes, _chunks("yrd", "gba"), embedder)
    reader = HybridIndex(settings)
    with writer.writing() as writes:
        _add(writes, _chunks("pump"), embedder)
        writes.delete(["yrd"])

    hits = reader.dense(embedder.embed_query("水泵检修前要做什么"), 3)
    assert {h.chunk.chunk_id for h in hits} == {"gba", "pump"} and "pump" in reader.lexical
    found, _ = reader.get(["yrd", "gba"])
    assert set(found) == {"gba"}
    assert _in_step(reader) == {"gba", "pump"}


def test_the_index_tells_which_model_built_it(settings: Settings, embedder: Embedder) -> None:
    """`coopbot model info` reads this: nothing before the first write, then the configured model's identity."""
    assert indexed_model(settings) is None
    index = HybridIndex(settings)
    with index.writing() as writes:
        _add(writes, _chunks("yrd"), embedder)
    identity = model_identity(settings)
    assert indexed_model(settings) == {"model": identity.name, "fingerprint": identity.fingerprint}


def test_reindex_rebuilds_bm25_from_nothing(settings: Settings, embedder: Embedder) -> None:
    """A BM25 file with the right ids but empty word lists passes every id check; a rebuild must not reuse it."""
    (settings.knowledge_dir / "a.md").write_text("# 合作\n\n" + PASSAGES["yrd"][1], encoding="utf-8")
    pipeline.ingest(settings, embedder=embedder)
    path = index_path(settings)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["chunks"] = dict.fromkeys(data["chunks"], "")
    path.write_text(json.dumps(data), encoding="utf-8")
    assert not HybridIndex(settings).lexical.search("科技创新共同体", 5)

    pipeline.reindex(settings, embedder=embedder)
    rebuilt = HybridIndex(settings)
    assert _in_step(rebuilt) and all(rebuilt.lexical.tokens(i) for i in rebuilt.lexical.ids)
    assert rebuilt.lexical.search("科技创新共同体", 5)


def test_a_start_trusts_words_saved_at_the_collections_token_and_nothing_else(
    settings: Settings, embedder: Embedder
) -> None:
    with HybridIndex(settings).writing() as writes:
        _add(writes, _chunks("yrd", "gba"), embedder)
    assert HybridIndex(settings).refresh() == SyncReport(0, 0, 0)  # saved at the current token: no ids read

    with HybridIndex(settings).writing() as writes:  # another writer's block: a new token
        _add(writes, _chunks("jjj"), embedder)
    stale = LexicalIndex.load(index_path(settings))
    stale.update({}, ["jjj"])  # words from before that block (an update forgets the token)
    stale.save()
    index = HybridIndex(settings)
    assert index.refresh().added == 1 and _in_step(index) == {"yrd", "gba", "jjj"}
