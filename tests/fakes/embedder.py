"""A fake embedding model for unit tests: deterministic, instant, and close enough to meaning for ranking tests.

Vectors are hashed character bigrams of the normalised text (so texts that share words are near), unit length.
`fake_embedder(settings)` gives a real `Embedder` around the fake model, with a model folder on disk so the
index's model identity works as for a real model. Integration tests keep the real model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from coopbot.config import Settings
from coopbot.index.embedder import Embedder
from coopbot.text.normalise import char_bigrams, comparable

DIMENSION = 256


class FakeSentenceModel:
    """The part of `SentenceTransformer` that `Embedder` uses."""

    def __init__(self, dimension: int = DIMENSION) -> None:
        self.dimension = dimension

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts: list[str], **_: Any) -> npt.NDArray[np.float32]:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def _vector(self, text: str) -> npt.NDArray[np.float32]:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for gram in char_bigrams(comparable(text)) or {text}:
            slot = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=4).digest(), "little")
            vector[slot % self.dimension] += 1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector


def fake_model_dir(folder: Path) -> Path:
    """A model folder whose files give the fake a stable fingerprint (nothing in it is ever loaded)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "fake"}', encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"fake weights, never loaded")
    return folder


def fake_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings on a fresh data dir whose embedding model is the fake's folder."""
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir(exist_ok=True)
    model = fake_model_dir(tmp_path / "fake-model")
    return Settings(data_dir=tmp_path / "data", knowledge_dir=knowledge, embedding_model=str(model), **overrides)


def fake_embedder(settings: Settings) -> Embedder:
    """A real `Embedder` (prefixes, caches) around the fake model."""
    return Embedder(FakeSentenceModel(), settings)  # type: ignore[arg-type]
