"""The embedding model run by ONNX Runtime: a graph exported once from the torch model, fp32 or int8.

On a CPU, ONNX Runtime runs the same model faster than torch, and its dynamically quantised int8
graph faster still (`benchmarks/ingest.py --encoders` measures both). The graphs, and the tokenizer
exactly as the torch path applies it, are written by `coopbot model prepare` (`onnx_export.py`)
into `<model folder>/onnx/`; this module only reads them, so it imports neither torch nor
transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from coopbot.index.embedder import EmbeddingError

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

OnnxEncoderName = Literal["onnx", "onnx-int8"]
ONNX_DIR = "onnx"
GRAPH_FILES: dict[OnnxEncoderName, str] = {"onnx": "encoder-fp32.onnx", "onnx-int8": "encoder-int8.onnx"}
TOKENIZER_FILE = "tokenizer.json"
MARKER_FILE = "coopbot-onnx.json"
OUTPUT_NAME = "sentence_embedding"


def encoder_files(folder: Path, encoder: OnnxEncoderName, source_fingerprint: str) -> list[Path]:
    """The graph and tokenizer an ONNX encoder reads, checked to be exported from the weights in `folder`
    now (`source_fingerprint`): a stale graph would make vectors of the old weights under the new identity."""
    onnx_dir = folder / ONNX_DIR
    files = [onnx_dir / GRAPH_FILES[encoder], onnx_dir / TOKENIZER_FILE]
    marker = onnx_dir / MARKER_FILE
    if not all(path.is_file() for path in [*files, marker]):
        raise EmbeddingError(
            f"the {encoder!r} encoder needs the ONNX graph exported from {folder}, and {onnx_dir} does not hold it: "
            "run `coopbot model prepare`, or set COOPBOT_ENCODER=torch to run the model through torch."
        )
    exported_from = json.loads(marker.read_text(encoding="utf-8")).get("source_fingerprint")
    if exported_from != source_fingerprint:
        raise EmbeddingError(
            f"the ONNX graph in {onnx_dir} was exported from other weights than {folder} holds now: "
            "run `coopbot model prepare` to export it again."
        )
    return files


def session_options(threads: int) -> onnxruntime.SessionOptions:
    """One forward pass on `threads` cores, with workers that sleep instead of spinning when idle (the
    machine is shared: spinning threads take CPU from the other processes). The memory arena stays on:
    measured on knowledge/ chunks, turning it off saved ~80 MB of peak RSS but slowed int8 by a quarter
    or more (it holds the peak of the longest batch, so 512-token passages raise RSS more)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: the graph's unused-initializer notes are noise
    return options


class OnnxEncoder:
    """An ONNX Runtime session over an exported sentence-transformers graph (transformer, pooling and
    normalisation traced together), with the `SentenceTransformer.encode` keywords `Embedder` uses."""

    def __init__(self, session: onnxruntime.InferenceSession, tokenizer: Tokenizer, dimension: int) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.dimension = dimension

    def get_embedding_dimension(self) -> int:
        """Length of every vector the graph returns."""
        return self.dimension

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int,
        normalize_embeddings: bool,
        convert_to_numpy: Literal[True] = True,
        show_progress_bar: bool = False,
    ) -> npt.NDArray[np.float32]:
        """Vectors in the order of `texts`. Batches hold texts of similar length (longest first, as
        sentence-transformers does), so little of each forward pass is spent on padding."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in batch])
            feed = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            }
            vectors[batch] = self.session.run([OUTPUT_NAME], feed)[0]
        if normalize_embeddings and len(texts):
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


def load_onnx_encoder(files: Sequence[Path], threads: int) -> OnnxEncoder:
    """Open the graph and tokenizer (as `encoder_files` returns them) with `threads` intra-op threads."""
    graph, tokenizer_file = files
    try:
        import onnxruntime
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EmbeddingError(
            f"ONNX encoders need onnxruntime ({exc}): pip install -e ., or COOPBOT_ENCODER=torch"
        ) from exc
    session = onnxruntime.InferenceSession(str(graph), session_options(threads), providers=["CPUExecutionProvider"])
    dimension = session.get_outputs()[0].shape[-1]
    if not isinstance(dimension, int):
        raise EmbeddingError(f"{graph} does not declare its vector length: run `coopbot model prepare --force`")
    return OnnxEncoder(session, Tokenizer.from_file(str(tokenizer_file)), dimension)
