"""Files -> Documents -> Chunks -> the index, incrementally: only what changed is embedded or removed.

Chunk ids derive from document id + content hash, so the diff between the chunks a file yields now
and the chunks the collection holds for it says exactly what to add, rewrite or delete. Each file is
committed as add-then-delete: a run killed half-way leaves the old and new chunks of at most one
file, and the next run finishes the diff.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from coopbot.config import Settings
from coopbot.index.chroma import ChunkRecord, StoredChunk
from coopbot.index.embedder import Embedder, load_embedder
from coopbot.index.hybrid import HybridIndex, Writes
from coopbot.ingest import chunking, discovery, loaders
from coopbot.schema import Chunk, IngestReport, SkippedFile


class NothingIndexedError(RuntimeError):
    """No file could be read: the report says why for each."""

    def __init__(self, report: IngestReport) -> None:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped) or (
            f"no files found; supported types: {' '.join(loaders.SUPPORTED_SUFFIXES)}"
        )
        super().__init__(f"nothing could be indexed ({reasons})")
        self.report = report


KNOWLEDGE_ROOT = "knowledge-dir"
"""The `root` of every chunk from the knowledge dir: its identity, wherever the folder lives, so moving
or renaming the folder (or the project) never leaves the chunks of files deleted since then behind."""


@dataclass(frozen=True)
class Source:
    """A file to index: its id in the index and the folder it belongs to (`KNOWLEDGE_ROOT` or a path)."""

    path: Path
    doc_id: str
    root: str


@dataclass(frozen=True)
class PruneScope:
    """Chunks a run may prune: those of `root` whose doc id starts with `prefix` (a given subfolder)."""

    root: str
    prefix: str = ""

    def covers(self, record: ChunkRecord, knowledge_path: str) -> bool:
        # An index from before KNOWLEDGE_ROOT stored the knowledge dir's absolute path.
        root = KNOWLEDGE_ROOT if record.root == knowledge_path else record.root
        return root == self.root and record.doc_id.startswith(self.prefix)


def _place(path: Path, settings: Settings) -> tuple[str, str] | None:
    """(root, doc id) of a path inside the knowledge dir, named relative to it; None when outside."""
    try:
        relative = path.resolve().relative_to(settings.knowledge_dir.resolve())
    except ValueError:
        return None
    return KNOWLEDGE_ROOT, relative.as_posix()


def prune_scope(folder: Path, settings: Settings) -> PruneScope:
    """What pruning after ingesting `folder` may remove: its own files' chunks, found by identity."""
    place = _place(folder, settings)
    if place is None:
        return PruneScope(str(folder.resolve()))
    root, relative = place
    return PruneScope(root, "" if relative == "." else relative + "/")


@dataclass
class _Plan:
    """What one changed file needs: new chunks to embed, kept chunks to rewrite, stale ids to delete."""

    source: Source
    to_embed: list[StoredChunk] = field(default_factory=list)
    to_rewrite: list[StoredChunk] = field(default_factory=list)
    to_delete: list[str] = field(default_factory=list)


Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total) with stage "files" or "chunks"."""


def pipeline_fingerprint(settings: Settings) -> str:
    """Changes when the reader, cleaning rules, chunker or chunk settings change, so files get re-cut."""
    digest = hashlib.sha256(
        f"{settings.index.chunk_size}/{settings.index.chunk_min_size}/{settings.index.chunk_overlap}".encode()
    )
    package = resources.files("coopbot")
    readers = sorted(f.name for f in package.joinpath("ingest", "loaders").iterdir() if f.name.endswith(".py"))
    sources = [f"ingest/loaders/{name}" for name in readers]
    sources += ["ingest/chunking.py", "text/normalise.py", "text/sentences.py", "data/furniture.toml"]
    for name in sources:
        digest.update(package.joinpath(*name.split("/")).read_bytes())
    return digest.hexdigest()[:16]


def discover(paths: Sequence[Path], settings: Settings) -> tuple[list[Source], list[SkippedFile]]:
    """Files under the given files and folders; hidden files and `exclude` patterns are left out.

    What a folder holds is bounded to it: a link in it to a file or folder outside is skipped, with the
    reason (`discovery.folder_files`). A file named explicitly is read wherever it is, a link included:
    whoever names a file chose it, while a folder's contents may come from anyone who can write there.
    """
    sources: list[Source] = []
    skipped: list[SkippedFile] = []
    for given in paths:
        if given.is_file():
            root, doc_id = _place(given, settings) or (str(given.parent.resolve()), given.name)
            sources.append(Source(given, doc_id, root))
            continue
        if not given.is_dir():
            skipped.append(SkippedFile(str(given), "no such file or folder: check the path"))
            continue
        files, left_out = discovery.folder_files(given)
        skipped += left_out
        for path in files:
            relative = path.relative_to(given)
            if any(relative.match(pattern) for pattern in settings.index.exclude):
                continue
            root, doc_id = _place(path, settings) or (str(given.resolve()), relative.as_posix())
            sources.append(Source(path, doc_id, root))
    return sources, skipped


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_current(stored: list[ChunkRecord], source: Source, source_hash: str, pipeline: str) -> bool:
    """All of a file's chunks are there, cut from this file version by this pipeline, under its root."""
    return bool(stored) and all(
        r.is_current(source_hash, pipeline, len(stored)) and r.root == source.root for r in stored
    )


def _plan_file(
    source: Source, chunks: list[Chunk], stored: list[ChunkRecord], source_hash: str, pipeline: str
) -> _Plan:
    plan = _Plan(source)
    held = {r.chunk_id: r for r in stored}
    for chunk in chunks:
        wanted = StoredChunk(chunk, source_hash, pipeline, len(chunks), source.root)
        if chunk.chunk_id not in held:
            plan.to_embed.append(wanted)
        elif held[chunk.chunk_id].metadata != wanted.metadata():
            plan.to_rewrite.append(wanted)
    wanted_ids = {c.chunk_id for c in chunks}
    plan.to_delete = [chunk_id for chunk_id in held if chunk_id not in wanted_ids]
    return plan


def ingest(
    settings: Settings,
    paths: Sequence[Path] | None = None,
    *,
    prune: bool | None = None,
    index: HybridIndex | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Bring the index in step with the files. Default: the knowledge dir, pruning deleted files.

    `prune` removes chunks of files that vanished from a given folder (on by default only for the
    knowledge dir: ingesting an extra folder must not delete the rest). Raises NothingIndexedError
    when files were given but none could be read.
    """
    started = time.perf_counter()
    report = IngestReport()
    if paths is None:
        paths = [settings.knowledge_dir]
        prune = True if prune is None else prune
    index = index if index is not None else HybridIndex(settings)
    pipeline = pipeline_fingerprint(settings)
    sources, report.skipped = discover(paths, settings)
    report.files_seen = len(sources)

    with index.writing() as writes:
        by_doc: dict[str, list[ChunkRecord]] = defaultdict(list)
        for record in writes.held.values():
            by_doc[record.doc_id].append(record)

        plans = list(_plan_changes(settings, sources, by_doc, pipeline, report, progress))
        _apply(writes, plans, embedder, settings, report, progress)

        if prune:
            scopes = [prune_scope(p, settings) for p in paths if p.is_dir()]
            knowledge_path = str(settings.knowledge_dir.resolve())
            present = {s.doc_id for s in sources}
            for doc_id, stored in by_doc.items():
                if doc_id not in present and any(scope.covers(stored[0], knowledge_path) for scope in scopes):
                    writes.delete(r.chunk_id for r in stored)
                    report.files_removed += 1
                    report.chunks_removed += len(stored)

    report.seconds = time.perf_counter() - started
    if report.files_indexed + report.files_unchanged + report.files_removed == 0:
        raise NothingIndexedError(report)
    return report


def _plan_changes(
    settings: Settings,
    sources: list[Source],
    by_doc: dict[str, list[ChunkRecord]],
    pipeline: str,
    report: IngestReport,
    progress: Progress | None,
) -> Iterator[_Plan]:
    """Read and chunk only files whose bytes or pipeline changed; report the rest as unchanged."""
    for done, source in enumerate(sources, start=1):
        stored = by_doc.get(source.doc_id, [])
        try:
            source_hash = _file_sha256(source.path)
            if _is_current(stored, source, source_hash, pipeline):
                report.files_unchanged += 1
                report.chunks_unchanged += len(stored)
                report.chunks_total += len(stored)
                continue
            document = loaders.load_document(source.path, source.doc_id)
        except (loaders.LoadError, OSError) as exc:
            kept = f" (its {len(stored)} chunks from the last good version stay in the index)" if stored else ""
            report.skipped.append(SkippedFile(str(source.path), f"{exc}{kept}"))
            continue
        finally:
            if progress:
                progress("files", done, len(sources))
        chunks = chunking.chunk_document(
            document,
            size=settings.index.chunk_size,
            min_size=settings.index.chunk_min_size,
            overlap=settings.index.chunk_overlap,
        )
        if not chunks:
            report.skipped.append(SkippedFile(str(source.path), "no text left after cleaning: nothing to index"))
            continue
        report.chunks_total += len(chunks)
        plan = _plan_file(source, chunks, stored, document.source_hash, pipeline)
        report.chunks_unchanged += len(chunks) - len(plan.to_embed) - len(plan.to_rewrite)
        yield plan


def _apply(
    writes: Writes,
    plans: list[_Plan],
    embedder: Embedder | None,
    settings: Settings,
    report: IngestReport,
    progress: Progress | None,
) -> None:
    """Embed and write in groups of whole files: add the new chunks, rewrite moved ones, delete stale ones.

    Files are grouped so that the encoder sees enough passages to batch them by length (padding is
    most of the cost of small batches); each file is still committed on its own.
    """
    total = sum(len(p.to_embed) for p in plans)
    counter = _Counter(total, progress)
    group: list[_Plan] = []
    for plan in plans:
        group.append(plan)
        if sum(len(p.to_embed) for p in group) >= settings.index.embed_batch_size * _GROUP_BATCHES:
            embedder = _commit(writes, group, embedder, settings, report, counter)
            group = []
    _commit(writes, group, embedder, settings, report, counter)


_GROUP_BATCHES = 16  # batches of embed_batch_size per group: ~1 minute of encoding on two cores


@dataclass
class _Counter:
    """Embedded chunks so far, reported to the progress callback."""

    total: int
    progress: Progress | None
    done: int = 0

    def add(self, count: int) -> None:
        self.done += count
        if self.progress:
            self.progress("chunks", self.done, self.total)


def _embed_sorted(embedder: Embedder, texts: list[str], batch: int, counter: _Counter) -> npt.NDArray[np.float32]:
    """Encode in batches of similar length (less padding), reporting progress after each batch."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors: npt.NDArray[np.float32] | None = None
    for start in range(0, len(order), batch):
        picked = order[start : start + batch]
        encoded = embedder.embed_passages([texts[i] for i in picked])
        if vectors is None:
            vectors = np.empty((len(texts), encoded.shape[1]), dtype=np.float32)
        vectors[picked] = encoded
        counter.add(len(picked))
    assert vectors is not None
    return vectors


def _commit(
    writes: Writes,
    group: list[_Plan],
    embedder: Embedder | None,
    settings: Settings,
    report: IngestReport,
    counter: _Counter,
) -> Embedder | None:
    """Embed a group's new chunks together, then write file by file. Returns the (maybe loaded) embedder."""
    texts = [s.chunk.embed_text for plan in group for s in plan.to_embed]
    vectors = np.zeros((0, 0), dtype=np.float32)
    if texts:
        embedder = embedder or load_embedder(settings)
        begin = time.perf_counter()
        vectors = _embed_sorted(embedder, texts, settings.index.embed_batch_size, counter)
        report.embed_seconds += time.perf_counter() - begin
    offset = 0
    for plan in group:
        if plan.to_embed:
            writes.add(plan.to_embed, vectors[offset : offset + len(plan.to_embed)])
            offset += len(plan.to_embed)
        if plan.to_rewrite:
            writes.update_metadata(plan.to_rewrite)
        if plan.to_delete:
            writes.delete(plan.to_delete)
        report.files_indexed += 1
        report.chunks_added += len(plan.to_embed)
        report.chunks_updated += len(plan.to_rewrite)
        report.chunks_removed += len(plan.to_delete)
    return embedder


def reindex(settings: Settings, *, embedder: Embedder | None = None, progress: Progress | None = None) -> IngestReport:
    """Drop the collection and BM25 and index the knowledge dir from scratch (e.g. after changing the model).

    Nothing of the old index is reused: a BM25 file whose ids are right but whose words are not is rebuilt too.
    """
    index = HybridIndex(settings)
    index.drop()
    return ingest(settings, index=index, embedder=embedder, progress=progress)
