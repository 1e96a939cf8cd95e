"""The ONNX encoders on the real bundled model: `coopbot model prepare` exports them, and they agree with torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from coopbot.config import BUNDLED_MODEL, Settings
from coopbot.index.embedder import BUNDLED_FOLDER, load_embedder, model_identity
from coopbot.index.onnx_encoder import GRAPH_FILES, MARKER_FILE, ONNX_DIR, TOKENIZER_FILE

from ..conftest import coopbot

SENTENCES = [
    "长三角生态绿色一体化发展示范区的建设目标是什么？",
    "長江三角洲區域一體化發展規劃綱要",
    "第一条　为了促进科技成果转化为现实生产力，制定本法。",
    "粤港澳大湾区  国际科技创新中心\t建设",
    "推动产学研协同创新。" * 120,  # longer than 512 tokens: cut where torch cuts it
]


@pytest.fixture(scope="module")
def onnx_data_dir(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """A data dir with a copy of the session's converted model, exported by `coopbot model prepare` (minutes)."""
    data_dir = tmp_path_factory.mktemp("onnx")
    shutil.copytree(model_dir, data_dir / "models" / BUNDLED_FOLDER)
    env = {  # explicit: module fixtures run before the per-test cleaning of COOPBOT_* variables
        "COOPBOT_DATA_DIR": str(data_dir),
        "COOPBOT_EMBEDDING_MODEL": BUNDLED_MODEL,
        "COOPBOT_ENCODER": "onnx-int8",  # an ONNX encoder configured: a failed export fails the command
    }
    result = coopbot("model", "prepare", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ONNX encoders ready" in result.stdout + result.stderr  # the console may write to either
    return data_dir


def test_model_prepare_exports_both_graphs(onnx_data_dir: Path) -> None:
    onnx_dir = onnx_data_dir / "models" / BUNDLED_FOLDER / ONNX_DIR
    for name in [*GRAPH_FILES.values(), TOKENIZER_FILE]:
        assert (onnx_dir / name).stat().st_size > 1000, name
    marker = json.loads((onnx_dir / MARKER_FILE).read_text(encoding="utf-8"))
    assert marker["min_probe_cosine"]["onnx"] > 0.999 and marker["min_probe_cosine"]["onnx-int8"] > 0.99
    torch_identity = model_identity(Settings(data_dir=onnx_data_dir))
    assert marker["source_fingerprint"] == torch_identity.fingerprint


def test_onnx_vectors_match_torch(onnx_data_dir: Path, model_dir: Path) -> None:
    torch_embedder = load_embedder(Settings(data_dir=onnx_data_dir, embedding_model=str(model_dir)))
    expected = {
        "passages": torch_embedder.embed_passages(SENTENCES),
        "queries": torch_embedder.embed_queries(SENTENCES[:2]),
    }
    for encoder, floor in (("onnx", 0.999), ("onnx-int8", 0.99)):
        embedder = load_embedder(Settings(data_dir=onnx_data_dir, encoder=encoder))
        assert embedder.dimension == torch_embedder.dimension == 384
        got = {"passages": embedder.embed_passages(SENTENCES), "queries": embedder.embed_queries(SENTENCES[:2])}
        for kind, vectors in got.items():
            cosines = (vectors * expected[kind]).sum(axis=1)
            assert cosines.min() > floor, (encoder, kind, cosines)
        assert np.allclose(np.linalg.norm(got["passages"], axis=1), 1.0, atol=1e-4)
        # the question is nearest to the passage it asks about, as with torch
        scores = got["passages"] @ got["queries"][0]
        assert int(np.argmax(scores)) == int(np.argmax(expected["passages"] @ expected["queries"][0]))


def test_each_encoder_is_its_own_index_identity(onnx_data_dir: Path, model_dir: Path) -> None:
    fingerprints = {
        encoder: model_identity(Settings(data_dir=onnx_data_dir, encoder=encoder)).fingerprint
        for encoder in ("torch", "onnx", "onnx-int8")
    }
    assert len(set(fingerprints.values())) == 3
    # torch's is the model folder's, as before encoders were selectable: indexes built with it keep working
    original = model_identity(Settings(data_dir=onnx_data_dir, embedding_model=str(model_dir)))
    assert fingerprints["torch"] == original.fingerprint
