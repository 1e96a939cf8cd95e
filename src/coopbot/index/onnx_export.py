"""Export a sentence-transformers folder to ONNX once (`coopbot model prepare`): fp32, then int8.

`sentence-transformers[onnx]` cannot be installed beside transformers 5 (optimum-onnx pins
transformers < 4.58), so the graph is traced here with torch's TorchScript exporter: the
transformer, the folder's pooling and its normalisation in one graph whose output is the sentence
vector. Attention is traced in its eager form, which ONNX Runtime's BERT fusions recognise; the
fusions run in Python (no hardware-specific graph is saved), and the fused graph is quantised to
int8 per channel. Both graphs must agree with torch on the probe texts before they are installed.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coopbot.index.bundled_model import PROBE_TEXTS, staged_folder
from coopbot.index.embedder import EmbeddingError
from coopbot.index.onnx_encoder import (
    GRAPH_FILES,
    MARKER_FILE,
    ONNX_DIR,
    OUTPUT_NAME,
    TOKENIZER_FILE,
    OnnxEncoderName,
    load_onnx_encoder,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Lowest cosine to torch's vectors over the probe texts; int8 measured ~0.997 on e5-small.
MIN_COSINE: dict[OnnxEncoderName, float] = {"onnx": 0.999, "onnx-int8": 0.99}
OPSET = 17
_INSTALL = "pip install onnx onnxruntime (both are coopbot dependencies: pip install -e .)"


def export(folder: Path, source_fingerprint: str, *, force: bool = False) -> dict[str, Any]:
    """Write `folder/onnx/` (graphs, tokenizer, marker) atomically unless it is there for these weights.

    Returns the marker: the weights' fingerprint, the probe cosines to torch, the library versions.
    """
    target = folder / ONNX_DIR
    marker = target / MARKER_FILE
    if marker.is_file() and not force:
        info: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("source_fingerprint") == source_fingerprint:
            return info
    try:
        import onnx
        import onnxruntime
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingError(f"exporting the model to ONNX needs {exc.name}: {_INSTALL}") from exc
    with staged_folder(target) as staging:
        model = SentenceTransformer(
            str(folder), device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "eager"}
        )
        traced = staging / "traced.onnx"
        _trace(model, traced)
        _fuse(folder, traced, staging / GRAPH_FILES["onnx"])
        traced.unlink()
        _quantise(staging / GRAPH_FILES["onnx"], staging / GRAPH_FILES["onnx-int8"])
        _save_tokenizer(model, staging / TOKENIZER_FILE)
        cosines = {encoder: _probe_cosine(model, staging, encoder) for encoder in GRAPH_FILES}
        for encoder, cosine in cosines.items():
            if cosine < MIN_COSINE[encoder]:
                raise EmbeddingError(
                    f"the exported {encoder!r} graph disagrees with torch (lowest probe cosine {cosine:.4f} < "
                    f"{MIN_COSINE[encoder]}): keep COOPBOT_ENCODER=torch and report the versions in {marker}"
                )
        info = {
            "source_fingerprint": source_fingerprint,
            "min_probe_cosine": {encoder: round(cosine, 5) for encoder, cosine in cosines.items()},
            "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        }
        (staging / MARKER_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _trace(model: SentenceTransformer, path: Path) -> None:
    """Trace input ids and mask -> sentence vector, with a padded example so the mask is in the graph."""
    import torch

    class SentenceGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            vectors: torch.Tensor = self.model(features)[OUTPUT_NAME]
            return vectors

    example = model.tokenizer(list(PROBE_TEXTS[:2]), padding=True, return_tensors="pt")
    if bool(example["attention_mask"].all()):
        raise EmbeddingError("the trace example must hold padding, or the graph would ignore the attention mask")
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow, checked by the probes
        torch.onnx.export(
            SentenceGraph().eval(),
            (example["input_ids"], example["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=[OUTPUT_NAME],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _fuse(folder: Path, source: Path, target: Path) -> None:
    """ONNX Runtime's BERT fusions (attention, embedding and skip layer norms, bias + GELU) in Python only
    (`opt_level=0`): the saved graph holds no optimisation specific to this machine's CPU."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    fused = optimize_model(
        str(source),
        model_type="bert",
        num_heads=config["num_attention_heads"],  # not detected from the traced graph
        hidden_size=config["hidden_size"],
        opt_level=0,
    )
    fused.save_model_to_file(str(target))


def _quantise(source: Path, target: Path) -> None:
    """Dynamic int8: weights per output channel (per-tensor lost a point of cosine), activations at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _save_tokenizer(model: SentenceTransformer, path: Path) -> None:
    """The tokenizer exactly as the torch path runs it (transformers rebuilds XLM-R's pre-tokenizer, so the
    folder's own tokenizer.json differs on whitespace), with the model's truncation and right padding."""
    from tokenizers import Tokenizer

    tokenizer = model.tokenizer
    fast = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    if model.max_seq_length:  # longer texts are cut, as torch cuts them
        fast.enable_truncation(max_length=model.max_seq_length)
    fast.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
    fast.save(str(path))


def _probe_cosine(model: SentenceTransformer, staging: Path, encoder: OnnxEncoderName) -> float:
    """Lowest cosine between torch's and the graph's vectors over the probe texts, as queries and passages,
    one by one and in a padded batch."""
    files = [staging / GRAPH_FILES[encoder], staging / TOKENIZER_FILE]
    graph = load_onnx_encoder(files, threads=1)
    texts = [prefix + text for prefix in ("query: ", "passage: ") for text in PROBE_TEXTS]
    theirs = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    batched = graph.encode(texts, batch_size=len(texts), normalize_embeddings=True)
    alone = graph.encode(texts, batch_size=1, normalize_embeddings=True)
    return float(min((batched * theirs).sum(axis=1).min(), (alone * theirs).sum(axis=1).min()))
