"""The typed objects the stages hand each other: Document -> Chunk -> (index) -> Hit -> Answer.

An answer streams as `Delta` events (text ready to show) closed by one `Final` (the complete `Answer`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Document:
    """One source file after reading and cleaning.

    `text` is the cleaned text in its original characters (what users see and what chunk offsets
    point into); matching code normalises it on the fly with `text.normalise.for_matching`.
    """

    doc_id: str  # the file's path relative to the folder it was ingested from, POSIX style
    path: Path
    title: str
    text: str
    source_hash: str  # sha256 of the raw file bytes: unchanged bytes -> nothing to re-index
    encoding: str  # how the bytes were decoded ("utf-8", "gb18030", "big5", "pdf", "docx", ...)
    removed: tuple[str, ...] = ()  # page furniture lines that cleaning removed, for the report


@dataclass(frozen=True)
class Chunk:
    """A retrievable passage: never crosses a heading, never cuts a sentence.

    `text == document.text[char_start:char_end]` always holds.
    """

    chunk_id: str
    doc_id: str
    doc_title: str
    heading_path: tuple[str, ...]  # from the document title down to the innermost heading
    text: str
    char_start: int
    char_end: int
    content_hash: str  # sha256 of `embed_text`: identical content -> identical id -> no re-embedding
    ordinal: int  # position of the chunk in its document, 0-based

    @property
    def embed_text(self) -> str:
        """What the embedding model sees: the heading context, then the passage."""
        return embed_text(self.heading_path, self.text)


def embed_text(heading_path: tuple[str, ...], text: str) -> str:
    """The passage as embedded and hashed: its heading path gives a short passage its topic."""
    context = " > ".join(heading_path)
    return f"{context}\n{text}" if context else text


@dataclass(frozen=True)
class Hit:
    """A chunk returned by a search, with its score (higher is better) and 1-based rank.

    `score` is what ranked the hit: cosine similarity for dense search, the BM25 score for lexical
    search, the fused score for hybrid search. The optional fields say where each retriever placed the
    chunk among its own candidates (None: not among them, or that retriever did not run), so callers
    can use rank-based and lexical evidence instead of the bunched cosine scores.
    """

    chunk: Chunk
    score: float
    rank: int
    dense_rank: int | None = None  # 1-based rank in the dense candidates
    dense_score: float | None = None  # cosine similarity of query and chunk vectors
    lexical_rank: int | None = None  # 1-based rank in the BM25 candidates
    lexical_score: float | None = None  # BM25 score (0: no query term in the chunk)


@dataclass(frozen=True)
class SkippedFile:
    """A file the ingestion could not use, and why, in words that say what to do."""

    path: str
    reason: str


@dataclass
class IngestReport:
    """What one `coopbot ingest` did; printed as a summary or as JSON."""

    files_seen: int = 0
    files_indexed: int = 0  # files whose chunks were (re)written
    files_unchanged: int = 0
    files_removed: int = 0  # documents pruned because their file is gone
    chunks_total: int = 0  # chunks of all readable files after this run
    chunks_added: int = 0
    chunks_updated: int = 0  # same content, new position or title: metadata rewritten, not re-embedded
    chunks_removed: int = 0
    chunks_unchanged: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        """Chunks embedded per second of wall time (0 when nothing was embedded)."""
        return self.chunks_added / self.seconds if self.seconds > 0 and self.chunks_added else 0.0


def ingest_report_to_dict(report: IngestReport) -> dict[str, Any]:
    """The ingest summary as plain JSON-able data (the `ingest --json` format and the API's)."""
    data = asdict(report)
    data["seconds"] = round(report.seconds, 3)
    data["embed_seconds"] = round(report.embed_seconds, 3)
    data["chunks_per_second"] = round(report.chunks_per_second, 2)
    return data


@dataclass(frozen=True)
class Turn:
    """One message of a conversation, as chat UIs and the OpenAI API carry it."""

    role: str  # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Citation:
    """`[n]` in an answer: the exact passage text that supports the sentence before it.

    `char_start`/`char_end` locate `quote` in the cleaned text of `doc_file` (a file name in the
    knowledge dir), so a UI can show and highlight it in context.
    """

    n: int
    chunk_id: str
    doc_file: str
    doc_title: str
    heading_path: tuple[str, ...]
    quote: str
    char_start: int
    char_end: int
    passage: str  # the whole chunk the quote comes from


@dataclass(frozen=True)
class SentenceSupport:
    """How well the passages support one sentence of an answer (the citation checker's verdict)."""

    sentence: str
    citations: tuple[int, ...]  # the `n` of each citation kept for this sentence
    supported: bool
    score: float  # 0-1: share of the sentence's character bigrams found in its best passage


@dataclass(frozen=True)
class Answer:
    """What every front end gets: the text with `[n]` markers, the checked citations, or a refusal.

    Built once, when the answer is complete (`Final`); nothing changes it afterwards.
    """

    question: str
    text: str
    citations: list[Citation]
    refused: bool
    related: list[Hit] = field(default_factory=list)  # closest passages of a refusal: shown, not cited
    backend: str = "extractive"  # what answered: extractive, llamacpp or openai
    fallback_from: str = ""  # the generation backend that failed, when this answer fell back to extractive
    query: str = ""  # the standalone query that was searched (differs from `question` for follow-ups)
    support: list[SentenceSupport] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # e.g. "the question was truncated"
    timings: dict[str, float] = field(default_factory=dict)  # retrieve_ms, answer_ms (+ first_token_ms, ...)
    answerability: float | None = None  # refusal gate: P(the passages answer the question); None: not scored
    # Every passage retrieved for the answer, best first: what the evaluation's hit@5 judges. Not part of the
    # JSON form (the cited passages and, for a refusal, the related ones are).
    retrieved: list[Hit] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: the `--json` and HTTP API format."""
        data = asdict(replace(self, related=[], retrieved=[]))
        del data["retrieved"]
        data["related"] = [hit_to_dict(h) for h in self.related]
        data["supported_rate"] = round(self.supported_rate, 4)
        return data

    @property
    def supported_rate(self) -> float:
        """Share of answer sentences the citation checker accepts (1.0 for an empty answer)."""
        return sum(s.supported for s in self.support) / len(self.support) if self.support else 1.0


@dataclass(frozen=True)
class Delta:
    """A piece of answer text, ready to show; the pieces of one stream add up to `Answer.text`."""

    text: str


@dataclass(frozen=True)
class Final:
    """The last event of an answer stream: the complete answer with its checked citations."""

    answer: Answer


AnswerEvent = Delta | Final


def final_answer(events: Iterable[AnswerEvent]) -> Answer:
    """Run an answer stream to its end and return the `Answer` it closes with."""
    final = None
    for event in events:
        if isinstance(event, Final):
            final = event.answer
    if final is None:
        raise RuntimeError("the answer stream ended without a Final event")
    return final


def hit_to_dict(hit: Hit) -> dict[str, Any]:
    """A search hit as plain JSON-able data (the `search --json` format)."""
    chunk = hit.chunk
    return {
        "rank": hit.rank,
        "score": round(hit.score, 4),
        "chunk_id": chunk.chunk_id,
        "doc_id": chunk.doc_id,
        "doc_title": chunk.doc_title,
        "heading_path": list(chunk.heading_path),
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "dense_rank": hit.dense_rank,
        "dense_score": hit.dense_score,
        "lexical_rank": hit.lexical_rank,
        "lexical_score": hit.lexical_score,
        "text": chunk.text,
    }
