"""The BM25 matrix: the cache a starting process loads gives exactly the scores of a fresh build."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from coopbot.index.bm25 import LexicalIndex
from coopbot.index.bm25_matrix import Bm25Matrix

TOKENS = {
    "c3": ["长三角", "科技", "创新", "共同体", "科技"],
    "c1": ["大湾区", "国际", "科技", "创新", "中心"],
    "c2": ["京津冀", "协同", "发展", "北京", "非首都", "功能"],
    "c4": [],
}
QUERIES = [["科技", "创新"], ["北京"], ["长三角", "科技"], ["没有的词"]]


def test_document_frequency_from_the_matrix_matches_counting() -> None:
    matrix = Bm25Matrix.build(TOKENS, k1=1.5, b=0.75)
    counted = Counter(word for words in TOKENS.values() for word in set(words))
    assert {word: matrix.document_frequency(word) for word in counted} == dict(counted)
    assert matrix.document_frequency("没有的词") == 0 and matrix.ids == ["c1", "c2", "c3", "c4"]


def test_a_cached_matrix_scores_exactly_like_a_fresh_build(tmp_path: Path) -> None:
    built = Bm25Matrix.build(TOKENS, k1=1.5, b=0.75)
    built.save(tmp_path / "m.npz", "gen-1")
    loaded = Bm25Matrix.load(tmp_path / "m.npz", "gen-1", k1=1.5, b=0.75)
    assert loaded is not None and loaded.ids == built.ids and loaded.vocab == built.vocab
    for words in QUERIES:
        assert np.array_equal(loaded.scores(words), built.scores(words))
    assert Bm25Matrix.load(tmp_path / "m.npz", "gen-2", k1=1.5, b=0.75) is None  # other words
    assert Bm25Matrix.load(tmp_path / "m.npz", "gen-1", k1=1.2, b=0.75) is None  # other parameters
    (tmp_path / "bad.npz").write_bytes(b"not a numpy file")
    assert Bm25Matrix.load(tmp_path / "bad.npz", "gen-1", k1=1.5, b=0.75) is None


def test_a_process_opening_a_saved_index_loads_the_matrix_instead_of_building(tmp_path: Path) -> None:
    path = tmp_path / "lexical.json"
    writer = LexicalIndex(path)
    writer.update({"a": "长三角科技创新共同体", "b": "京津冀协同发展"})
    writer.save()
    expected = writer.search("科技创新", 5)  # builds and caches the matrix of the saved words
    reader = LexicalIndex.load(path)
    assert reader.generation == writer.generation and reader._cached_matrix() is not None
    assert reader.search("科技创新", 5) == expected
    reader.update({"c": "粤港澳大湾区"})  # memory differs from the file now: neither cached nor cacheable
    assert reader.generation is None and reader._cached_matrix() is None
    assert [hit.chunk_id for hit in reader.search("大湾区", 5)] == ["c"]
