"""The Chroma collection and the BM25 index over the same chunks, kept equal by one owner.

Writes go through `HybridIndex.writing()`: each change reaches Chroma at once, and BM25 follows once
when the block ends (one file write per ingest, not one per file). A block that fails, or a process
killed in the middle of one, leaves BM25 behind the collection; the next block or `refresh` heals it,
because the collection stays the source of truth. Readers in other processes catch up in
`keep_in_step` (the BM25 file was rewritten, or the collection's size moved). On a Chroma server
shared by several app instances, each with its own BM25 file, every write block gives the collection
a new change token (`ChunkStore.mark_changed`, at its start and its end); an instance compares the
token with the one it last synced at every `_SHARED_CHECK_SECONDS` and syncs when it differs.

Writing an embedded index takes the writer lock (`writer_lock`): one writing process at a time. While
another process writes, a reader heals BM25 in memory only and leaves the writer's file alone.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from coopbot.config import Settings
from coopbot.index import writer_lock
from coopbot.index.bm25 import LexicalIndex, SyncReport, index_path
from coopbot.index.chroma import ChunkRecord, ChunkStore, StoredChunk
from coopbot.index.embedder import ModelIdentity, model_identity
from coopbot.schema import Chunk, Hit

_CHECK_SECONDS = 30.0  # how often a long-lived reader checks that BM25 matches the collection
_SHARED_CHECK_SECONDS = 2.0  # how often an instance on a Chroma server asks whether another one changed it


class Writes:
    """One `writing()` block: changes reach Chroma now and are remembered for BM25 to follow at the end."""

    def __init__(self, store: ChunkStore, identity: ModelIdentity) -> None:
        self._store, self._identity = store, identity
        self.held: dict[str, ChunkRecord] = store.records(identity)  # the collection when the block began
        self.ids = set(self.held)  # the collection as the block's writes leave it
        self.texts: dict[str, str] = {}  # embed texts of the chunks written, so BM25 need not read them back
        self.removed: set[str] = set()
        self.touched = False  # chunks were added or deleted: what BM25, here and in other instances, follows

    def _touch(self) -> None:
        """Before the first add or delete, a new change token: other instances resync even if the block dies."""
        if not self.touched:
            self._store.mark_changed(self._identity)
            self.touched = True

    def add(self, chunks: Sequence[StoredChunk], vectors: npt.NDArray[np.float32]) -> None:
        """Write chunks with their vectors (upsert, so a repeated write after a crash is harmless)."""
        self._touch()
        self._store.add(self._identity, chunks, vectors)
        for stored in chunks:
            self.ids.add(stored.chunk.chunk_id)
            self.texts[stored.chunk.chunk_id] = stored.chunk.embed_text

    def update_metadata(self, chunks: Sequence[StoredChunk]) -> None:
        """Rewrite metadata of chunks whose text did not change: their vectors and words stay."""
        self._store.update_metadata(self._identity, chunks)

    def delete(self, ids: Iterable[str]) -> None:
        """Remove chunks by id."""
        ids = list(ids)
        self._touch()
        self._store.delete(self._identity, ids)
        self.ids.difference_update(ids)
        self.removed.update(ids)
        for chunk_id in ids:
            self.texts.pop(chunk_id, None)


class HybridIndex:
    """The collection and its BM25 index, built once from the settings and the model's identity.

    Safe for concurrent searches; writes are expected from one thread at a time (the server holds its
    write lock around them).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.identity = model_identity(settings)
        self._store = ChunkStore(settings)
        self._lexical = self._load_lexical()
        self._lock = threading.Lock()
        self._checked = 0.0
        self._version: str | None = None  # the collection's change token when BM25 last matched it
        self._version_checked = 0.0

    def _load_lexical(self) -> LexicalIndex:
        return LexicalIndex.load(
            index_path(self.settings), k1=self.settings.index.bm25_k1, b=self.settings.index.bm25_b
        )

    @property
    def lexical(self) -> LexicalIndex:
        """BM25 over the collection's chunks, for search and word rarity; changed only by this class."""
        return self._lexical

    # -- the collection ------------------------------------------------------------------------------

    def records(self) -> dict[str, ChunkRecord]:
        """Every chunk's id and metadata (no text, no vectors)."""
        return self._store.records(self.identity)

    def chunks(self) -> list[StoredChunk]:
        """Every chunk with its text, in collection order."""
        return self._store.chunks(self.identity)

    def count(self) -> int:
        return self._store.count(self.identity)

    def dense(self, vector: npt.NDArray[np.float32], n: int) -> list[Hit]:
        """Nearest chunks to a query vector (fewer when the collection holds fewer).

        Hits BM25 lacks were written by another process since the last sync: their texts are at hand.
        """
        hits = self._store.query(self.identity, vector, n)
        unknown = {h.chunk.chunk_id: h.chunk.embed_text for h in hits if h.chunk.chunk_id not in self._lexical}
        if unknown:
            with self._lock:
                self._lexical.update(unknown)
                self._save_if_writer()
        return hits

    def get(
        self, ids: Sequence[str], *, query: npt.NDArray[np.float32] | None = None
    ) -> tuple[dict[str, Chunk], dict[str, float]]:
        """Chunks by id and, given a unit query vector, each one's cosine to it.

        Ids the collection no longer holds (deleted by another process) are left out and leave BM25 too.
        """
        found, cosines = self._store.get(self.identity, ids, query=query)
        gone = [chunk_id for chunk_id in ids if chunk_id not in found]
        if gone:
            with self._lock:
                self._lexical.update({}, gone)
                self._save_if_writer()
        return found, cosines

    def _save_if_writer(self) -> None:
        with writer_lock.if_free(self.settings) as may_write:
            if may_write:
                self._lexical.save()

    # -- keeping BM25 equal to the collection ------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> SyncReport:
        """Reread the BM25 file if another process rewrote it, then match the collection's ids (metadata
        only; just the texts of chunks BM25 lacks are read) and build the BM25 matrices for search.

        Words saved at the collection's current change token are equal to it already: no ids are read
        (at 100k chunks, reading them is most of a server's start). `force` reads them anyway."""
        with self._lock:
            self._store.open(self.identity)  # refuses a collection of another model, synced or not
            version = self._store.version()  # read first: a change made during the sync is caught next time
            if self._lexical.file_changed():
                self._lexical = self._load_lexical()
            if not force and version is not None and self._lexical.collection_version == version:
                report = SyncReport(0, 0, 0)
            else:
                with writer_lock.if_free(self.settings) as may_write:
                    report = self._lexical.sync(self._store, self.identity, persist=may_write, version=version)
            self._lexical.prepare()
            self._checked = self._version_checked = time.monotonic()
            self._version = version
            return report

    def keep_in_step(self) -> None:
        """Cheap checks before a search: the BM25 file was rewritten, another instance changed the shared
        collection (Chroma server), or the collection's size moved."""
        if self._lexical.file_changed():
            self.refresh()
        elif self.settings.index.chroma_mode == "server":
            if time.monotonic() - self._version_checked > _SHARED_CHECK_SECONDS:
                self._version_checked = time.monotonic()
                if self._store.version() != self._version:
                    self.refresh()
        elif time.monotonic() - self._checked > _CHECK_SECONDS:
            self._checked = time.monotonic()
            if self.count() != len(self._lexical):
                self.refresh(force=True)  # the token says equal, the sizes do not: trust the collection

    @contextlib.contextmanager
    def writing(self) -> Iterator[Writes]:
        """Change the collection; when the block ends, BM25 holds exactly the collection's chunks.

        The new chunks are tokenised from the texts written; chunks BM25 missed before (an interrupted
        run) are read back. If the block raises, BM25 is left as it was, to be healed by the next block.
        Raises `writer_lock.IndexBusy` when another process is writing this (embedded) index.
        """
        with writer_lock.writer(self.settings):
            writes = Writes(self._store, self.identity)
            yield writes
            with self._lock:
                if self._lexical.file_changed():
                    self._lexical = self._load_lexical()
                self._lexical.update({}, writes.removed & writes.texts.keys())  # rewritten under the same id
                # After adds or deletes the words are saved with the token the collection gets right after: if this
                # process dies in between, the collection keeps the block's first token and the next start syncs
                # in full. A block of metadata only leaves the token, and BM25, as they were.
                token = secrets.token_hex(8) if writes.touched else self._store.version()
                self._lexical.sync(self._store, self.identity, ids=writes.ids, texts=writes.texts, version=token)
                if writes.touched:
                    self._version = self._store.mark_changed(self.identity, token)

    def rebuild_lexical(self) -> SyncReport:
        """Throw BM25 away and build it again from the collection's texts (`coopbot doctor --repair`)."""
        with writer_lock.writer(self.settings), self._lock:
            index_path(self.settings).unlink(missing_ok=True)
            self._lexical = self._load_lexical()  # the file is gone: empty
        return self.refresh()

    def drop(self) -> None:
        """Delete the collection and BM25 with it, file included (a rebuild from nothing: `reindex --force`)."""
        with writer_lock.writer(self.settings), self._lock:
            self._store.drop()
            index_path(self.settings).unlink(missing_ok=True)
            index_path(self.settings).with_suffix(".bm25.npz").unlink(missing_ok=True)
            self._lexical = self._load_lexical()  # the file is gone: empty
