"""The knowledge base as an admin sees it: list documents, add an uploaded file, re-index, delete.

The UI's knowledge tab, the HTTP API and the CLI all call this; it reads what is indexed from the
Chroma metadata (the collection is the source of truth) and changes the index only through
`coopbot.ingest.pipeline` (uploads go through the same incremental pipeline as `coopbot ingest`) and
`HybridIndex.writing` (deletions), so BM25 always follows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from coopbot.config import Settings
from coopbot.index.embedder import Embedder
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest import loaders, pipeline
from coopbot.schema import IngestReport

_UNSAFE = re.compile(r"[^\w\-. ()（）]+", re.UNICODE)
_MAX_NAME = 120
_STAMPS = "documents.json"
log = logging.getLogger("coopbot.ingest.documents")


class DocumentError(ValueError):
    """An upload or deletion that cannot be done as asked; the message says why (HTTP 4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DocumentInfo:
    """One indexed document: where it came from, its title, how many chunks, when it was last indexed."""

    doc_id: str  # the file's path relative to the folder it was ingested from
    title: str
    chunks: int
    indexed_at: str  # local time this server first saw the current version indexed ('' unknown)
    in_knowledge_dir: bool  # its file is in the knowledge dir (False: from another folder, `coopbot ingest DIR`)


def safe_filename(name: str) -> str:
    """A plain file name for an upload: no folders, no traversal, no hidden files, a supported suffix.

    Raises DocumentError for a name whose type cannot be indexed.
    """
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    stem, dot, suffix = base.rpartition(".")
    suffix = f".{suffix.lower()}" if dot else ""
    if suffix not in loaders.SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"不支持的文件类型“{suffix or '无扩展名'}”：请上传 {' '.join(loaders.SUPPORTED_SUFFIXES)} 文件。", 415
        )
    stem = _UNSAFE.sub("_", stem).strip(" ._")
    stem = re.sub(r"\.{2,}", ".", stem)[: _MAX_NAME - len(suffix)] or "document"
    return stem + suffix


class RWLock:
    """Many readers (asks, searches) or one writer (an index change); a waiting writer goes first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting_writers = 0

    def acquire_read(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._writing and not self._waiting_writers, timeout) and self._add()

    def _add(self) -> bool:
        self._readers += 1
        return True

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            self._waiting_writers += 1
            try:
                self._cond.wait_for(lambda: not self._writing and self._readers == 0)
            finally:
                self._waiting_writers -= 1
            self._writing = True

    def release_write(self) -> None:
        with self._cond:
            self._writing = False
            self._cond.notify_all()

    @property
    def writing(self) -> bool:
        return self._writing


@contextlib.contextmanager
def every_core() -> Iterator[None]:
    """Let torch use every core while an index change runs alone (under the write lock); the server runs
    answers with one thread each (`coopbot.server.tune_threads`), which would make embedding slow here."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class KnowledgeBase:
    """Admin operations on the index of `settings.knowledge_dir`, sharing the server's index and model."""

    def __init__(
        self,
        settings: Settings,
        *,
        index: HybridIndex | None = None,
        embedder: Embedder | None = None,
        lock: RWLock | None = None,
    ) -> None:
        self.settings = settings
        self.index = index if index is not None else HybridIndex(settings)
        self.embedder = embedder
        self.lock = lock or RWLock()
        self._stamps_lock = threading.Lock()
        self._stamps_warned: tuple[int, int] | None = None

    # -- reading -----------------------------------------------------------------------------------

    def list(self) -> list[DocumentInfo]:
        """Every indexed document, by file name (metadata only: cheap even for a large collection)."""
        by_doc: dict[str, list[dict[str, str | int]]] = defaultdict(list)
        for record in self.index.records().values():
            by_doc[record.doc_id].append(record.metadata)
        stamps = self._read_stamps()
        home = self.settings.knowledge_dir.resolve()
        docs = []
        for doc_id, metas in sorted(by_doc.items()):
            stamp = stamps.get(doc_id, {})
            current = stamp.get("source_hash") == metas[0].get("source_hash")
            docs.append(
                DocumentInfo(
                    doc_id=doc_id,
                    title=str(metas[0].get("doc_title", doc_id)),
                    chunks=len(metas),
                    indexed_at=str(stamp.get("indexed_at", "")) if current else "",
                    in_knowledge_dir=(home / doc_id).resolve().is_file(),
                )
            )
        return docs

    # -- changing ----------------------------------------------------------------------------------

    def update(self, *, force: bool = False, progress: pipeline.Progress | None = None) -> IngestReport:
        """Bring the index in step with the knowledge dir (incremental), or rebuild it (`force`)."""
        self.lock.acquire_write()
        try:
            with every_core():
                if force:
                    self.index.drop()  # collection and BM25 emptied; the shared index reopens the collection
                report = pipeline.ingest(self.settings, index=self.index, embedder=self.embedder, progress=progress)
        finally:
            self.lock.release_write()
        self.stamp()
        return report

    def add(self, filename: str, data: bytes, *, progress: pipeline.Progress | None = None) -> tuple[str, IngestReport]:
        """Check an uploaded file, save it under a safe name in the knowledge dir, and index it.

        A same-named document is replaced. Raises DocumentError (with a reason to show) for a file
        that is too large, of an unsupported type, or unreadable.
        """
        name = safe_filename(filename)
        limit = int(self.settings.server.max_upload_mb * 1024 * 1024)
        if len(data) > limit:
            raise DocumentError(
                f"文件太大（{len(data) / 1048576:.1f} MB）：上限是 {self.settings.server.max_upload_mb:g} MB。", 413
            )
        if not data:
            raise DocumentError("文件是空的。")
        folder = self.settings.knowledge_dir
        folder.mkdir(parents=True, exist_ok=True)
        target = (folder / name).resolve()
        if target.parent != folder.resolve():  # belt and braces: safe_filename already removed folders
            raise DocumentError("文件名不安全。")
        handle, temp_name = tempfile.mkstemp(prefix=".upload-", suffix=Path(name).suffix, dir=folder)
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            try:
                loaders.load_document(temp, name)  # refuse what ingestion would skip, with its reason
            except loaders.LoadError as exc:
                raise DocumentError(f"无法读取这个文件：{exc}") from exc
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return name, self.update(progress=progress)

    def delete(self, doc_id: str, *, progress: pipeline.Progress | None = None) -> int:
        """Remove a document from the index (and its file, when it lives in the knowledge dir).

        Returns the number of chunks removed; DocumentError(404) for an unknown document.
        """
        self.lock.acquire_write()
        try:
            with self.index.writing() as writes:
                ids = [r.chunk_id for r in writes.held.values() if r.doc_id == doc_id]
                if not ids:
                    raise DocumentError(f"没有这个文档：{doc_id}", 404)
                folder = self.settings.knowledge_dir.resolve()
                path = (folder / doc_id).resolve()
                if path.is_relative_to(folder) and path.is_file():
                    path.unlink()
                writes.delete(ids)
        finally:
            self.lock.release_write()
        self.stamp()
        return len(ids)

    # -- when each document was last indexed -------------------------------------------------------

    def _read_stamps(self) -> dict[str, dict[str, str]]:
        """documents.json, entry by entry: a bad entry (or file) is skipped and logged, never raised.

        The file only says when each document was first seen indexed; losing an entry costs an "unknown"
        date, so nothing that reads it may fail for it. The next index change rewrites the file whole.
        """
        path = self.settings.data_dir / _STAMPS
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self._warn_stamps(path, f"cannot be read ({exc})")
            return {}
        try:
            data = json.loads(text)
        except ValueError as exc:
            self._warn_stamps(path, f"is not valid JSON ({exc})")
            return {}
        if not isinstance(data, dict):
            self._warn_stamps(path, f"holds a {type(data).__name__}, not an object of documents")
            return {}
        stamps: dict[str, dict[str, str]] = {}
        bad = []
        for doc_id, entry in data.items():
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("source_hash"), str)
                and isinstance(entry.get("indexed_at"), str)
            ):
                stamps[doc_id] = {"source_hash": entry["source_hash"], "indexed_at": entry["indexed_at"]}
            else:
                bad.append(doc_id)
        if bad:
            shown = ", ".join(repr(d) for d in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            self._warn_stamps(path, f"has {len(bad)} malformed entries, skipped: {shown}")
        return stamps

    def _warn_stamps(self, path: Path, problem: str) -> None:
        """Log a problem of documents.json once per version of the file (it is read at every listing)."""
        try:
            version: tuple[int, int] | None = (path.stat().st_mtime_ns, path.stat().st_size)
        except OSError:
            version = None
        if version != self._stamps_warned or version is None:
            self._stamps_warned = version
            log.warning(
                "%s %s; the dates of those documents show as unknown until the next index change rewrites the file",
                path,
                problem,
            )

    def stamp(self) -> None:
        """Record, per document, the file version now indexed and the time this server first saw it."""
        with self._stamps_lock:
            stamps = self._read_stamps()
            now = time.strftime("%Y-%m-%d %H:%M:%S")
            current: dict[str, dict[str, str]] = {}
            for record in self.index.records().values():
                if record.doc_id in current:
                    continue
                source_hash = str(record.metadata.get("source_hash", ""))
                old = stamps.get(record.doc_id, {})
                keep = old.get("source_hash") == source_hash and old.get("indexed_at")
                current[record.doc_id] = {"source_hash": source_hash, "indexed_at": old["indexed_at"] if keep else now}
            path = self.settings.data_dir / _STAMPS
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_suffix(".tmp")
            temp.write_text(json.dumps(current, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(temp, path)
