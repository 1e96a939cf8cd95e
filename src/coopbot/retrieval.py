"""Question -> ranked chunks. Dense search over Chroma for now; hybrid retrieval builds on it."""

from __future__ import annotations

from coopbot.config import Settings
from coopbot.embedding import Embedder, load_embedder, model_identity
from coopbot.schema import Hit
from coopbot.store import ChunkStore


def dense_search(
    settings: Settings,
    question: str,
    k: int = 5,
    *,
    store: ChunkStore | None = None,
    embedder: Embedder | None = None,
) -> list[Hit]:
    """The k chunks whose vectors are closest to the question's (`query_prefix` applied)."""
    question = question.strip()
    if not question:
        raise ValueError("the question is empty: type a question, e.g. 长三角一体化的战略定位是什么？")
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    embedder = embedder or load_embedder(settings)
    store = store or ChunkStore(settings)
    identity = model_identity(settings)
    if store.count(identity) == 0:
        return []
    vector = embedder.embed_queries([question])[0]
    return store.query(identity, vector, k)
