"""The typed objects the stages hand each other: Document -> Chunk -> (index) -> Hit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Document:
    """One source file after reading and cleaning.

    `text` is the cleaned text in its original characters (what users see and what chunk offsets
    point into); matching code normalises it on the fly with `textnorm.for_matching`.
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
    """A chunk returned by a search, with its score (higher is better) and 1-based rank."""

    chunk: Chunk
    score: float
    rank: int


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
