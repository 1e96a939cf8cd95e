"""Question -> ranked chunks: BM25, dense (Chroma), or both fused (the default).

Hybrid search asks both retrievers for their top `retrieval.candidates` chunks and fuses the two
rankings (see `fuse`), then drops near-duplicates of passages already chosen (overlapping chunks,
repeated paragraphs) while filling the top k. Every hit keeps where each retriever ranked it
(`Hit.dense_rank`, `Hit.lexical_rank`, ...) for the answer layer's refusal gate.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from coopbot.config import Settings
from coopbot.index.bm25 import LexicalIndex
from coopbot.index.embedder import Embedder, load_embedder
from coopbot.index.hybrid import HybridIndex
from coopbot.schema import Chunk, Hit, hit_to_dict
from coopbot.text.normalise import char_bigrams, jaccard
from coopbot.text.words import tokenize

if TYPE_CHECKING:
    from langchain_core.retrievers import BaseRetriever

RetrieverMode = Literal["bm25", "dense", "hybrid"]
MODES: tuple[RetrieverMode, ...] = ("bm25", "dense", "hybrid")

EMPTY_QUESTION = "the question is empty: type a question, e.g. 长三角一体化的战略定位是什么？"


def _check_query(query: str, k: int) -> str:
    query = query.strip()
    if not query:
        raise ValueError(EMPTY_QUESTION)
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    return query


# -- fusion ------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A chunk one or both retrievers proposed, with its place and score in each."""

    chunk_id: str
    chunk: Chunk | None = None
    dense_rank: int | None = None  # None: not in the dense top N
    dense_score: float | None = None
    lexical_rank: int | None = None  # None: not in the BM25 top N
    lexical_score: float | None = None  # BM25 score, known for every indexed chunk (0: no shared word)
    score: float = 0.0


def _standardise(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation of a score distribution (deviation 1 when it is flat: no information)."""
    if not values:
        return 0.0, 1.0
    array = np.asarray(values, dtype=np.float64)
    deviation = float(array.std())
    return float(array.mean()), deviation if deviation > 1e-9 else 1.0


def fuse(
    candidates: Sequence[Candidate],
    dense_top: Sequence[float],
    lexical_top: Sequence[float],
    lexical_weight: float,
) -> list[Candidate]:
    """Distribution-based score fusion: standardise each retriever's scores over its own top N, then mix.

    A candidate's dense score becomes (cosine - mean) / sd over the dense top-N cosines, its BM25 score
    likewise over the top-N BM25 scores (zeros included when fewer chunks share a word), and the fused
    score is (1 - w) * dense_z + w * lexical_z. Standardising makes the two scales comparable and acts as
    a per-query gate: a retriever whose best hit stands far out of its own top N (a rare exact term for
    BM25, a clear semantic match for dense: 6-7 sd, the most 50 candidates allow) leads, while one whose
    best hits are hardly apart from the rest (undecided: 2-3 sd) counts for less. A candidate missing
    from the dense top N gets the lowest dense score of that list (its true cosine is at most that);
    every candidate's BM25 score is exact.

    Measured on the three dev sets (benchmarks/retrieval.py): plain RRF (k = 60) of the same two lists
    ignores how decided each retriever is and falls behind the better single retriever (DuReader R@5
    0.97 vs dense 0.99; DRCD R@1 0.86 vs BM25 0.91). This fusion keeps R@5 within 0.01 of the best
    single retriever on every set for any w in 0.3-0.5; w trades R@1 on DRCD (keyword-rich questions)
    against DuReader (search queries): 0.887/0.940 at 0.3, 0.913/0.950 at 0.4 (the default), 0.927/0.930
    at 0.5.
    """
    dense_mean, dense_sd = _standardise(dense_top)
    lexical_mean, lexical_sd = _standardise(lexical_top)
    dense_floor = min(dense_top) if dense_top else 0.0
    for c in candidates:
        dense = c.dense_score if c.dense_score is not None else dense_floor
        lexical = c.lexical_score or 0.0
        c.score = (1 - lexical_weight) * (dense - dense_mean) / dense_sd + lexical_weight * (
            lexical - lexical_mean
        ) / lexical_sd
    return sorted(candidates, key=lambda c: (-c.score, c.dense_rank or 1 << 30, c.lexical_rank or 1 << 30))


# -- the retriever -----------------------------------------------------------------------------------


class Retriever:
    """BM25, dense and hybrid search over one collection; the lexical index is synced on start."""

    def __init__(
        self, settings: Settings, *, index: HybridIndex | None = None, embedder: Embedder | None = None
    ) -> None:
        self.settings = settings
        self.index = index if index is not None else HybridIndex(settings)
        self._embedder = embedder
        self.last_sync = self.index.refresh()  # what the start-up sync changed

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index searched (its `idf` weighs question words in the answer layer)."""
        return self.index.lexical

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings)
        return self._embedder

    def search(
        self, query: str, k: int = 5, *, mode: RetrieverMode | None = None, exclude: Collection[str] = ()
    ) -> list[Hit]:
        """The k best chunks for `query`, best first; `mode` defaults to `settings.retrieval.retriever`.

        `exclude` names chunks to search as if they were not indexed (ranks and score distributions are
        those of the rest): how the answerability fit asks a question with its gold passage left out.
        Raises ValueError for an empty query or k < 1; returns [] when the index is empty.
        """
        query = _check_query(query, k)
        mode = mode or self.settings.retrieval.retriever
        if mode not in MODES:
            raise ValueError(f"unknown retriever mode {mode!r}: use one of {', '.join(MODES)}")
        self.index.keep_in_step()
        n = max(self.settings.retrieval.candidates, k)
        excluded = frozenset(exclude)
        candidates: dict[str, Candidate] = {}
        dense_top: list[float] = []
        vector = self.embedder.embed_query(query) if mode in ("dense", "hybrid") else None
        if vector is not None:
            kept = [h for h in self.index.dense(vector, n + len(excluded)) if h.chunk.chunk_id not in excluded][:n]
            for rank, hit in enumerate(kept, start=1):
                candidates[hit.chunk.chunk_id] = Candidate(
                    hit.chunk.chunk_id, hit.chunk, dense_rank=rank, dense_score=hit.score
                )
                dense_top.append(hit.score)
        lexical_top: list[float] = []
        if mode in ("bm25", "hybrid"):
            result = self.lexical.query(tokenize(query), n + len(excluded))
            lexical_top = result.top_scores.tolist()
            for lhit in result.hits:
                if lhit.chunk_id in excluded:
                    lexical_top.remove(lhit.score)
            lexical_top = lexical_top[:n]
            for rank, lhit in enumerate((h for h in result.hits if h.chunk_id not in excluded), start=1):
                if rank > n:
                    break
                c = candidates.setdefault(lhit.chunk_id, Candidate(lhit.chunk_id))
                c.lexical_rank = rank
            for c in candidates.values():
                c.lexical_score = result.score(c.chunk_id)
        ordered = list(candidates.values())
        if mode == "hybrid":
            ordered = fuse(ordered, dense_top, lexical_top, self.settings.retrieval.fusion_lexical_weight)
        else:
            for c in ordered:
                c.score = (c.dense_score if mode == "dense" else c.lexical_score) or 0.0
        return self._select(ordered, k, vector)

    def _select(self, ordered: list[Candidate], k: int, vector: npt.NDArray[np.float32] | None) -> list[Hit]:
        """Fill the top k in order, skipping near-duplicates of chosen hits; fetch lexical-only chunks."""
        threshold = self.settings.retrieval.dedup_jaccard
        chosen: list[tuple[Candidate, frozenset[str]]] = []
        position = 0
        while len(chosen) < k and position < len(ordered):
            window = ordered[position : position + 2 * k]
            self._fetch([c for c in window if c.chunk is None], vector)
            for c in window:
                position += 1
                if c.chunk is None:
                    continue
                grams = char_bigrams(c.chunk.text)
                if threshold < 1.0 and any(jaccard(grams, g) > threshold for _, g in chosen):
                    continue
                chosen.append((c, grams))
                if len(chosen) == k:
                    break
        return [
            Hit(
                c.chunk,
                c.score,
                rank,
                dense_rank=c.dense_rank,
                dense_score=c.dense_score,
                lexical_rank=c.lexical_rank,
                lexical_score=c.lexical_score,
            )
            for rank, (c, _) in enumerate(chosen, start=1)
            if c.chunk is not None
        ]

    def _fetch(self, candidates: Sequence[Candidate], vector: npt.NDArray[np.float32] | None) -> None:
        """Read lexical-only candidates from Chroma (with their cosine to the query when there is a query
        vector, so every hybrid hit reports a dense score); ids the collection no longer has stay empty."""
        if not candidates:
            return
        found, cosines = self.index.get([c.chunk_id for c in candidates], query=vector)
        for c in candidates:
            c.chunk = found.get(c.chunk_id)
            if c.chunk_id in cosines:
                c.dense_score = cosines[c.chunk_id]  # vectors are unit length: the dot product is the cosine

    def as_langchain(self, k: int = 5) -> BaseRetriever:
        """This retriever as a LangChain `BaseRetriever`: Documents with the chunk's text and metadata."""
        return _langchain_class()(retriever=self, k=k)


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """The metadata a LangChain Document of a hit carries: everything but the text."""
    return {key: value for key, value in hit_to_dict(hit).items() if key != "text"}


@functools.cache
def _langchain_class() -> type[BaseRetriever]:
    """Defined on first use: importing langchain_core costs ~0.5 s that plain searches need not pay."""
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict

    class CoopbotRetriever(BaseRetriever):
        """coopbot's hybrid retriever behind LangChain's retriever interface."""

        model_config = ConfigDict(arbitrary_types_allowed=True)

        retriever: Retriever
        k: int = 5
        mode: RetrieverMode | None = None

        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
            hits = self.retriever.search(query, self.k, mode=self.mode)
            return [Document(page_content=h.chunk.text, metadata=hit_metadata(h), id=h.chunk.chunk_id) for h in hits]

    return CoopbotRetriever
