"""Retrieval evaluation sets: load a folder of passages and questions, index it, measure a retriever.

A set is a folder with `corpus.jsonl` (`{"id", "title", "text"}` per line) and `queries.jsonl`
(`{"id", "question", "gold_ids", "answers"}`). Each passage becomes one chunk whose id is the passage
id, whose heading path is its title, and whose embed text is title + newline + text, in a collection
of its own; the lexical index follows it. `benchmarks/retrieval.py` and `coopbot eval retrieval` both
use these helpers.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coopbot.config import Settings
from coopbot.index.chroma import StoredChunk
from coopbot.index.embedder import Embedder, load_embedder
from coopbot.index.hybrid import HybridIndex
from coopbot.schema import Chunk, Hit, embed_text

if TYPE_CHECKING:
    from coopbot.retrieval.retriever import Retriever, RetrieverMode

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
PIPELINE = "eval-passage"  # the `pipeline` metadata of passage chunks: one passage, one chunk


class EvalSetError(ValueError):
    """A folder is not a usable evaluation set; the message says what is wrong where."""


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str

    @property
    def heading_path(self) -> tuple[str, ...]:
        return (self.title,) if self.title else ()


@dataclass(frozen=True)
class Query:
    id: str
    question: str
    gold_ids: tuple[str, ...]
    answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalSet:
    name: str
    folder: Path
    passages: list[Passage]
    queries: list[Query]


def _read_jsonl(path: Path, required: Sequence[str]) -> list[dict[str, object]]:
    if not path.is_file():
        raise EvalSetError(f"{path} is missing: an evaluation set needs {CORPUS_FILE} and {QUERIES_FILE}")
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise EvalSetError(f"{path}:{number}: not JSON ({exc})") from exc
            if not isinstance(row, dict) or any(key not in row for key in required):
                raise EvalSetError(f"{path}:{number}: each line must be an object with {', '.join(required)}")
            rows.append(row)
    return rows


def load_eval_set(folder: Path) -> EvalSet:
    """Read and check a set: ids unique, every gold id a passage of the corpus."""
    passages = [
        Passage(str(r["id"]), str(r.get("title") or ""), str(r["text"]))
        for r in _read_jsonl(folder / CORPUS_FILE, ("id", "text"))
    ]
    ids = {p.id for p in passages}
    if len(ids) != len(passages):
        raise EvalSetError(f"{folder / CORPUS_FILE}: passage ids are not unique")
    queries = []
    for row in _read_jsonl(folder / QUERIES_FILE, ("id", "question", "gold_ids")):
        gold = row["gold_ids"]
        answers = row.get("answers") or []
        if not isinstance(gold, list) or not gold or not isinstance(answers, list):
            raise EvalSetError(f"{folder / QUERIES_FILE}: query {row['id']}: gold_ids must be a non-empty list")
        unknown = [g for g in gold if str(g) not in ids]
        if unknown:
            raise EvalSetError(f"{folder / QUERIES_FILE}: query {row['id']}: gold ids {unknown} are not in the corpus")
        queries.append(
            Query(str(row["id"]), str(row["question"]), tuple(str(g) for g in gold), tuple(str(a) for a in answers))
        )
    if not passages or not queries:
        raise EvalSetError(f"{folder}: the corpus and the queries must not be empty")
    return EvalSet(folder.name, folder, passages, queries)


def find_eval_sets(root: Path) -> list[Path]:
    """`root` itself if it is a set, else its sub-folders that are sets, sorted by name."""
    if (root / CORPUS_FILE).is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / CORPUS_FILE).is_file())


def collection_name(name: str) -> str:
    """A valid Chroma collection name (3-63 characters of [a-zA-Z0-9._-]) for a set's name."""
    cleaned = re.sub(r"[^a-zA-Z0-9_-]+", "-", name).strip("-_")[:40] or "set"
    digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
    return f"eval-{cleaned}-{digest}"


def eval_settings(base: Settings, data_dir: Path, name: str) -> Settings:
    """`base` with its own data dir and a collection of the set's own (embedded Chroma)."""
    return base.replace(data_dir=data_dir, collection=collection_name(name), chroma_mode="embedded")


def passage_chunk(passage: Passage, set_name: str) -> StoredChunk:
    """The one chunk a passage becomes: id = passage id, heading path = (title,)."""
    text = embed_text(passage.heading_path, passage.text)
    chunk = Chunk(
        chunk_id=passage.id,
        doc_id=passage.id,
        doc_title=passage.title,
        heading_path=passage.heading_path,
        text=passage.text,
        char_start=0,
        char_end=len(passage.text),
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        ordinal=0,
    )
    return StoredChunk(chunk, source_hash=chunk.content_hash, pipeline=PIPELINE, doc_chunks=1, root=f"eval:{set_name}")


Progress = Callable[[int, int], None]
"""progress(done, total) after each embedded batch."""


def index_eval_set(
    settings: Settings,
    eval_set: EvalSet,
    *,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> HybridIndex:
    """Bring the set's collection and lexical index to exactly its passages; embeds only missing ones.

    Pass a `coopbot.embedding.CachedEmbedder` to make re-indexing in a fresh data dir cheap.
    """
    index = HybridIndex(settings)
    chunks = {p.id: passage_chunk(p, eval_set.name) for p in eval_set.passages}
    with index.writing() as writes:
        held = writes.held
        stale = {
            chunk_id
            for chunk_id, record in held.items()
            if chunk_id not in chunks or record.metadata.get("content_hash") != chunks[chunk_id].chunk.content_hash
        }
        if stale:
            writes.delete(sorted(stale))
        todo = [s for chunk_id, s in chunks.items() if chunk_id not in held or chunk_id in stale]
        if todo:
            embedder = embedder or load_embedder(settings)
            todo.sort(key=lambda s: len(s.chunk.embed_text))  # similar lengths per batch: less padding
            batch = settings.index.embed_batch_size * 8
            for start in range(0, len(todo), batch):
                part = todo[start : start + batch]
                writes.add(part, embedder.embed_passages([s.chunk.embed_text for s in part]))
                if progress:
                    progress(start + len(part), len(todo))
    return index


@dataclass
class RetrievalScores:
    """Recall@k, MRR@10, nDCG@10 and per-query latency of one retriever mode over one set's queries."""

    mode: str
    queries: int = 0
    gold_ranks: list[tuple[int, ...]] = field(default_factory=list)  # 1-based ranks of the gold hits, per query
    gold_counts: list[int] = field(default_factory=list)  # gold passages per query
    seconds: list[float] = field(default_factory=list)

    @property
    def found_at(self) -> list[int | None]:
        """1-based rank of the first gold hit, per query (None: not retrieved)."""
        return [ranks[0] if ranks else None for ranks in self.gold_ranks]

    def recall(self, k: int) -> float:
        """Share of queries with a gold passage in the top k."""
        return sum(1 for r in self.found_at if r is not None and r <= k) / max(len(self.found_at), 1)

    def mrr(self, k: int = 10) -> float:
        """Mean reciprocal rank of the first gold passage, 0 beyond rank k."""
        return sum(1 / r for r in self.found_at if r is not None and r <= k) / max(len(self.found_at), 1)

    def ndcg(self, k: int = 10) -> float:
        """Mean nDCG@k with binary relevance: every gold passage counts, ideally all ranked first."""
        total = 0.0
        for ranks, wanted in zip(self.gold_ranks, self.gold_counts, strict=True):
            dcg = sum(1 / math.log2(r + 1) for r in ranks if r <= k)
            ideal = sum(1 / math.log2(r + 1) for r in range(1, min(wanted, k) + 1))
            total += dcg / ideal if ideal else 0.0
        return total / max(len(self.gold_ranks), 1)

    def latency_ms(self, quantile: float) -> float:
        """Latency quantile in milliseconds (0.5: median)."""
        if not self.seconds:
            return math.nan
        return float(np.quantile(np.asarray(self.seconds), quantile)) * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.seconds) * 1000 if self.seconds else math.nan


def gold_ranks(hits: Iterable[Hit], gold_ids: Sequence[str]) -> tuple[int, ...]:
    """1-based positions of the hits whose chunk is a gold passage, in order."""
    gold = set(gold_ids)
    return tuple(position for position, hit in enumerate(hits, start=1) if hit.chunk.chunk_id in gold)


def evaluate_retrieval(
    retriever: Retriever, queries: Sequence[Query], mode: RetrieverMode, *, k: int = 10
) -> RetrievalScores:
    """Run every query through `retriever.search(mode=mode)`, timing each call."""
    scores = RetrievalScores(mode, len(queries))
    for query in queries:
        begin = time.perf_counter()
        hits = retriever.search(query.question, k, mode=mode)
        scores.seconds.append(time.perf_counter() - begin)
        scores.gold_ranks.append(gold_ranks(hits, query.gold_ids))
        scores.gold_counts.append(len(set(query.gold_ids)))
    return scores


@dataclass
class SetResult:
    """Every mode's scores on one evaluation set, with what indexing it cost."""

    name: str
    passages: int
    scores: dict[str, RetrievalScores]
    index_seconds: float
    cache_hits: int = 0  # passages whose vectors came from the embedding cache
    cache_misses: int = 0

    def best_single(self, k: int = 5) -> float:
        """The better recall@k of the two single retrievers."""
        return max(self.scores[m].recall(k) for m in ("bm25", "dense") if m in self.scores)


def evaluate_set(
    settings: Settings,
    eval_set: EvalSet,
    *,
    modes: Sequence[RetrieverMode] = ("bm25", "dense", "hybrid"),
    k: int = 10,
    passage_embedder: Embedder | None = None,
    query_embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> SetResult:
    """Index a set in `settings`' data dir and collection, then measure every mode on its queries.

    `passage_embedder` may be a `CachedEmbedder` (indexing only); queries go through `query_embedder`
    (default: the plain model), so latencies are those of a real search. One query per mode runs first,
    untimed, to warm up the model, jieba and the BM25 matrices.
    """
    from coopbot.index.embedder import CachedEmbedder
    from coopbot.retrieval.retriever import Retriever

    cache = passage_embedder if isinstance(passage_embedder, CachedEmbedder) else None
    hits, misses = (cache.hits, cache.misses) if cache else (0, 0)
    begin = time.perf_counter()
    index = index_eval_set(settings, eval_set, embedder=passage_embedder, progress=progress)
    result = SetResult(eval_set.name, len(eval_set.passages), {}, time.perf_counter() - begin)
    if cache:
        result.cache_hits, result.cache_misses = cache.hits - hits, cache.misses - misses
    retriever = Retriever(settings, index=index, embedder=query_embedder or load_embedder(settings))
    if eval_set.queries:
        for mode in modes:
            retriever.search(eval_set.queries[0].question, k, mode=mode)  # warm-up, untimed
    for mode in modes:
        result.scores[mode] = evaluate_retrieval(retriever, eval_set.queries, mode, k=k)
    return result


def retrieval_summary(result: SetResult, default: str) -> dict[str, Any]:
    """The stable `coopbot eval retrieval --json` form of one set's result."""
    return {
        "dataset": result.name,
        "corpus_size": result.passages,
        "queries": next(iter(result.scores.values())).queries if result.scores else 0,
        "default": default,
        "retrievers": {
            mode: {
                "recall@1": round(s.recall(1), 4),
                "recall@5": round(s.recall(5), 4),
                "recall@10": round(s.recall(10), 4),
                "mrr@10": round(s.mrr(10), 4),
                "ndcg@10": round(s.ndcg(10), 4),
                "latency_ms": {"p50": round(s.latency_ms(0.5), 1), "p95": round(s.latency_ms(0.95), 1)},
            }
            for mode, s in result.scores.items()
        },
    }
