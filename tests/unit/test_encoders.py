"""Choosing the encoder (torch or ONNX Runtime), the fingerprint rule, and the errors that say what to run.

The ONNX side runs a real ONNX Runtime session on a tiny hand-built graph (a word table summed over the
attention mask) with a whitespace word tokenizer, so ordering, padding and normalisation are tested for real
in well under a second; the real model's graphs are tested in tests/integration/test_onnx_encoder.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from coopbot.config import Settings
from coopbot.index import embedder as embedder_module
from coopbot.index.embedder import EmbeddingError, load_embedder, model_identity
from coopbot.index.onnx_encoder import GRAPH_FILES, MARKER_FILE, ONNX_DIR, TOKENIZER_FILE, OnnxEncoder

from ..fakes.embedder import FakeSentenceModel, fake_settings

WORDS = ["<pad>", "<unk>", "passage:", "query:", "长三角", "一体化", "发展", "科技", "合作"]
WIDTH = 4
# The fake model folder's fingerprint as computed before encoders were selectable: torch's must never change,
# or every index built with torch would be refused.
FAKE_FOLDER_FINGERPRINT = "c6044ee75af08e5613fb3647b223bb20"


def _table() -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(7)
    return rng.normal(size=(len(WORDS), WIDTH)).astype(np.float32)


def _write_graph(path: Path) -> None:
    """sentence_embedding = sum over unmasked tokens of a word table's rows (not normalised)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["rows"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "last"], ["mask3"]),
        helper.make_node("Mul", ["rows", "mask3"], ["kept"]),
        helper.make_node("ReduceSum", ["kept", "tokens"], ["sentence_embedding"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", WIDTH])],
        initializer=[
            numpy_helper.from_array(_table(), "table"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "last"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "tokens"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _write_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.enable_padding(pad_id=0, pad_token="<pad>")
    tokenizer.save(str(path))


def _expected(text: str) -> npt.NDArray[np.float32]:
    ids = [WORDS.index(w) if w in WORDS else 1 for w in text.split()]
    vector = _table()[ids].sum(axis=0)
    unit: npt.NDArray[np.float32] = vector / np.linalg.norm(vector)
    return unit


@pytest.fixture
def onnx_settings(tmp_path: Path) -> Settings:
    """Fake model folder with tiny ONNX graphs for both encoders, exported (as the marker says) from its weights."""
    settings = fake_settings(tmp_path, encoder="onnx")
    folder = Path(settings.index.embedding_model)
    onnx_dir = folder / ONNX_DIR
    onnx_dir.mkdir()
    for name in GRAPH_FILES.values():
        _write_graph(onnx_dir / name)
    _write_tokenizer(onnx_dir / TOKENIZER_FILE)
    weights = model_identity(settings.replace(encoder="torch")).fingerprint
    (onnx_dir / MARKER_FILE).write_text(json.dumps({"source_fingerprint": weights}), encoding="utf-8")
    return settings


def test_onnx_encoder_keeps_input_order_and_ignores_padding(onnx_settings: Settings) -> None:
    embedder = load_embedder(onnx_settings)
    assert isinstance(embedder.model, OnnxEncoder) and embedder.dimension == WIDTH
    texts = ["科技", "长三角 一体化 发展 合作", "发展", "长三角 科技"]
    vectors = embedder.model.encode(texts, batch_size=2, normalize_embeddings=True)  # batches mix lengths: padded
    assert np.allclose(vectors, np.stack([_expected(t) for t in texts]), atol=1e-5)
    passages = embedder.embed_passages(texts)  # the prefix is a word of the tiny vocabulary
    assert np.allclose(passages[1], _expected("passage: " + texts[1]), atol=1e-5)
    assert embedder.embed_queries([]).shape == (0, WIDTH)


def test_the_setting_chooses_the_backend(onnx_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    def fake_torch(location: str, threads: int) -> FakeSentenceModel:
        calls.append((location, threads))
        return FakeSentenceModel()

    monkeypatch.setattr(embedder_module, "_load_sentence_transformer", fake_torch)
    torch_settings = onnx_settings.replace(encoder="torch", encoder_threads=3)
    assert isinstance(load_embedder(torch_settings).model, FakeSentenceModel)
    assert calls == [(torch_settings.index.embedding_model, 3)]
    int8 = load_embedder(onnx_settings.replace(encoder="onnx-int8"))
    assert isinstance(int8.model, OnnxEncoder) and int8 is not load_embedder(onnx_settings)
    assert load_embedder(onnx_settings.replace(encoder="onnx-int8")) is int8  # loaded once per process


def test_torch_fingerprint_is_the_one_indexes_were_built_with(onnx_settings: Settings) -> None:
    torch_identity = model_identity(onnx_settings.replace(encoder="torch"))
    assert torch_identity.fingerprint == FAKE_FOLDER_FINGERPRINT
    assert torch_identity.name == onnx_settings.index.embedding_model


def test_each_encoder_has_its_own_fingerprint_that_follows_its_graph(onnx_settings: Settings) -> None:
    identities = {e: model_identity(onnx_settings.replace(encoder=e)) for e in ("torch", "onnx", "onnx-int8")}
    assert len({identity.fingerprint for identity in identities.values()}) == 3
    assert identities["onnx-int8"].name.endswith("(onnx-int8)")
    assert model_identity(onnx_settings) == identities["onnx"]  # stable
    graph = Path(onnx_settings.index.embedding_model) / ONNX_DIR / GRAPH_FILES["onnx"]
    graph.write_bytes(graph.read_bytes() + b"\0")  # another export: other vectors may come out
    assert model_identity(onnx_settings).fingerprint != identities["onnx"].fingerprint


def test_missing_graph_says_to_run_model_prepare(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, encoder="onnx-int8")
    with pytest.raises(EmbeddingError, match="coopbot model prepare"):
        load_embedder(settings)
    with pytest.raises(EmbeddingError, match="COOPBOT_ENCODER=torch"):
        model_identity(settings)


def test_graph_of_other_weights_is_refused(onnx_settings: Settings) -> None:
    marker = Path(onnx_settings.index.embedding_model) / ONNX_DIR / MARKER_FILE
    marker.write_text(json.dumps({"source_fingerprint": "0" * 32}), encoding="utf-8")
    with pytest.raises(EmbeddingError, match=r"other weights.*coopbot model prepare"):
        model_identity(onnx_settings)


def test_onnx_needs_a_local_model_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, embedding_model="intfloat/multilingual-e5-small", encoder="onnx")
    with pytest.raises(EmbeddingError, match="local model folder"):
        model_identity(settings)


def test_encoder_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOPBOT_ENCODER", "onnx-int8")
    assert Settings().index.encoder == "onnx-int8"
    monkeypatch.setenv("COOPBOT_INDEX__ENCODER", "tensorrt")
    monkeypatch.delenv("COOPBOT_ENCODER")
    with pytest.raises(ValidationError, match="encoder"):
        Settings()
